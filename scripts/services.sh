# shellcheck shell=bash
# Shared by scripts/test and scripts/demo: find or install the tools vidq's tests and demo need,
# start private services on free ports, and stop exactly what was started.
#
# Source it, then call `services_start_redis`, `services_start_s3`, ...; `services_stop` (run from
# an EXIT trap) stops only the processes this shell started.

VIDQ_RUN_DIR=${VIDQ_RUN_DIR:-"$(pwd)/.vidq-run"}
_SERVICE_PIDS=()
_SERVICE_DIRS=()
_APT_UPDATED=0

log() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }

# apt-get install, with one `apt-get update` before the first install of this run.
apt_install() {
  if [ "$_APT_UPDATED" = 0 ]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    _APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

ensure_cargo_path() {
  case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) export PATH="$HOME/.cargo/bin:$PATH" ;; esac
}

ensure_redis_server() {
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
}

# Debian's libfaketime, which the skewed-clock incident tests preload into a worker; exports
# VIDQ_TEST_FAKETIME_LIB with the path of its multi-threaded library.
ensure_faketime() {
  local lib
  lib=$(dpkg -L libfaketime 2>/dev/null | grep '/libfaketimeMT\.so\.1$' | head -n 1 || true)
  if [ -z "$lib" ] || [ ! -e "$lib" ]; then
    apt_install faketime
    lib=$(dpkg -L libfaketime | grep '/libfaketimeMT\.so\.1$' | head -n 1)
  fi
  export VIDQ_TEST_FAKETIME_LIB="$lib"
  log "libfaketime: $VIDQ_TEST_FAKETIME_LIB"
}

ensure_s3s_fs() {
  ensure_cargo_path
  if ! command -v s3s-fs >/dev/null 2>&1; then
    log "cargo install s3s-fs@0.14.1 (once per machine)"
    cargo install s3s-fs@0.14.1 --features binary --locked >&2
  fi
}

# A TCP port nobody listens on right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# True when a Redis answers PING on host:port (no redis-cli needed). The subshell keeps the
# probe's redirections from touching this shell's own descriptors.
redis_answers() {
  local host=$1 port=$2
  (
    exec 9<>"/dev/tcp/$host/$port" || exit 1
    printf 'PING\r\n' >&9
    IFS= read -r -t 2 reply <&9 || exit 1
    [[ "$reply" == "+PONG"* ]]
  ) 2>/dev/null
}

# Waits until host:port accepts TCP connections, for at most $3 seconds (default 30).
wait_port() {
  local host=$1 port=$2 deadline=$((SECONDS + ${3:-30}))
  until (exec 9<>"/dev/tcp/$host/$port") 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "nothing listens on $host:$port after ${3:-30}s"
      return 1
    fi
    sleep 0.1
  done
}

_track() { _SERVICE_PIDS+=("$1"); }

# Sets VIDQ_REDIS_URL: the Redis on 127.0.0.1:6379 when it answers, else a private one.
services_start_redis() {
  if [ -z "${VIDQ_FORCE_PRIVATE_REDIS:-}" ] && redis_answers 127.0.0.1 6379; then
    export VIDQ_REDIS_URL="redis://127.0.0.1:6379"
    log "using the Redis on 127.0.0.1:6379"
  else
    ensure_redis_server
    local port dir
    port=$(free_port)
    dir="$VIDQ_RUN_DIR/redis-$port"
    mkdir -p "$dir"
    _SERVICE_DIRS+=("$dir")
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
      --maxmemory-policy noeviction --dir "$dir" --logfile "$dir/redis.log" &
    _track $!
    wait_port 127.0.0.1 "$port" 30
    export VIDQ_REDIS_URL="redis://127.0.0.1:$port"
    log "started a private Redis on 127.0.0.1:$port"
  fi
}

# Starts s3s-fs on a free port with its own credentials and data folder; sets VIDQ_S3_*.
services_start_s3() {
  ensure_s3s_fs
  local port dir
  port=$(free_port)
  dir="$VIDQ_RUN_DIR/s3-$port"
  mkdir -p "$dir"
  _SERVICE_DIRS+=("$dir" "$dir.log")
  export VIDQ_S3_ACCESS_KEY="vidq-$(python3 -c 'import secrets; print(secrets.token_hex(6))')"
  export VIDQ_S3_SECRET_KEY="$(python3 -c 'import secrets; print(secrets.token_hex(20))')"
  export VIDQ_S3_REGION="us-east-1"
  s3s-fs --host 127.0.0.1 --port "$port" --access-key "$VIDQ_S3_ACCESS_KEY" \
    --secret-key "$VIDQ_S3_SECRET_KEY" "$dir" >"$dir.log" 2>&1 &
  _track $!
  wait_port 127.0.0.1 "$port" 30
  export VIDQ_S3_ENDPOINT="http://127.0.0.1:$port"
  log "started s3s-fs on $VIDQ_S3_ENDPOINT (data in $dir)"
}

# Starts a tracked background process; its output goes to $VIDQ_RUN_DIR/<name>.log.
services_spawn() {
  local name=$1
  shift
  mkdir -p "$VIDQ_RUN_DIR"
  "$@" >"$VIDQ_RUN_DIR/$name.log" 2>&1 &
  _track $!
  echo $!
}

# Stops exactly the processes started through this file, children first asked politely.
services_stop() {
  local pid
  for pid in "${_SERVICE_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${_SERVICE_PIDS[@]}"; do
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  done
  _SERVICE_PIDS=()
  if [ -z "${VIDQ_KEEP_DATA:-}" ] && [ "${#_SERVICE_DIRS[@]}" -gt 0 ]; then
    rm -rf "${_SERVICE_DIRS[@]}"
  fi
  _SERVICE_DIRS=()
}

# Two free loopback ports (a node's client port and its cluster-bus port), printed "P B".
_free_port_pair() {
  python3 -c '
import socket
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])
a.close(); b.close()'
}

# Waits for the shell condition "$2..." to succeed, every 0.1 s, for at most $1 seconds.
_wait_for() {
  local seconds=$1 deadline
  shift
  deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "timed out after ${seconds}s waiting for: $*"
      return 1
    fi
    sleep 0.1
  done
}

# True when every node on the ports given answers cluster_state:ok with all 16384 slots
# assigned and ok, knows the other nodes, and each replica's link to its primary is up.
_cluster_ok() {
  local port info repl n=$#
  for port in "$@"; do
    info=$(redis-cli -h 127.0.0.1 -p "$port" CLUSTER INFO 2>/dev/null) || return 1
    grep -q '^cluster_state:ok' <<<"$info" || return 1
    grep -q '^cluster_slots_ok:16384' <<<"$info" || return 1
    grep -q "^cluster_known_nodes:$n" <<<"$info" || return 1
    repl=$(redis-cli -h 127.0.0.1 -p "$port" INFO replication 2>/dev/null) || return 1
    if grep -q '^role:slave' <<<"$repl"; then
      grep -q '^master_link_status:up' <<<"$repl" || return 1
    fi
  done
}

# A 3-primary, 3-replica Redis Cluster (Redis >= 7.0) on free loopback ports, each node in its
# own folder, memory-only (`--save "" --appendonly no`) with `noeviction`; stopped by
# services_stop. Exports VIDQ_TEST_REDIS_CLUSTER_URLS (comma-separated seed URLs).
services_start_redis_cluster() {
  ensure_redis_server
  local ports=() port bus dir i urls=()
  for i in 1 2 3 4 5 6; do
    read -r port bus < <(_free_port_pair)
    dir="$VIDQ_RUN_DIR/redis-cluster-$port"
    mkdir -p "$dir"
    _SERVICE_DIRS+=("$dir")
    redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes --cluster-port "$bus" \
      --cluster-config-file nodes.conf --cluster-node-timeout 2000 --save "" --appendonly no \
      --maxmemory-policy noeviction --dir "$dir" --logfile "$dir/redis.log" &
    _track $!
    ports+=("$port")
  done
  for port in "${ports[@]}"; do
    wait_port 127.0.0.1 "$port" 30
    urls+=("redis://127.0.0.1:$port")
  done
  redis-cli --cluster create $(printf '127.0.0.1:%s ' "${ports[@]}") --cluster-replicas 1 \
    --cluster-yes >"$VIDQ_RUN_DIR/redis-cluster-create-${ports[0]}.log" 2>&1 || {
    log "redis-cli --cluster create failed:"
    cat "$VIDQ_RUN_DIR/redis-cluster-create-${ports[0]}.log" >&2
    return 1
  }
  _SERVICE_DIRS+=("$VIDQ_RUN_DIR/redis-cluster-create-${ports[0]}.log")
  _wait_for 60 _cluster_ok "${ports[@]}"
  VIDQ_TEST_REDIS_CLUSTER_URLS=$(IFS=,; echo "${urls[*]}")
  export VIDQ_TEST_REDIS_CLUSTER_URLS
  log "started a Redis Cluster (3 primaries, 3 replicas): $VIDQ_TEST_REDIS_CLUSTER_URLS"
}

# True when the sentinel on port $1 sees primary $2 with 1 replica and 2 other sentinels, and
# the quorum is reachable.
_sentinel_ready() {
  local port=$1 name=$2 master
  master=$(redis-cli -h 127.0.0.1 -p "$port" SENTINEL MASTER "$name" 2>/dev/null) || return 1
  grep -A1 -x 'num-slaves' <<<"$master" | tail -n 1 | grep -qx 1 || return 1
  grep -A1 -x 'num-other-sentinels' <<<"$master" | tail -n 1 | grep -qx 2 || return 1
  redis-cli -h 127.0.0.1 -p "$port" SENTINEL CKQUORUM "$name" 2>/dev/null | grep -q '^OK'
}

# One primary, one replica and three sentinels (quorum 2) on free loopback ports, memory-only
# with `noeviction`; a primary is declared down after 1 s and a failover may take 5 s, to suit
# tests. Stopped by services_stop. Exports VIDQ_TEST_REDIS_SENTINELS (comma-separated
# redis:// URLs of the sentinels) and VIDQ_TEST_REDIS_SENTINEL_MASTER (the primary's name).
services_start_redis_sentinel() {
  ensure_redis_server
  local name=vidq-test primary replica port dir i urls=()
  primary=$(free_port)
  replica=$(free_port)
  for port in "$primary" "$replica"; do
    dir="$VIDQ_RUN_DIR/redis-sentinel-data-$port"
    mkdir -p "$dir"
    _SERVICE_DIRS+=("$dir")
    local extra=()
    [ "$port" = "$replica" ] && extra=(--replicaof 127.0.0.1 "$primary")
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
      --maxmemory-policy noeviction --dir "$dir" --logfile "$dir/redis.log" "${extra[@]}" &
    _track $!
    wait_port 127.0.0.1 "$port" 30
  done
  for i in 1 2 3; do
    port=$(free_port)
    dir="$VIDQ_RUN_DIR/redis-sentinel-$port"
    mkdir -p "$dir"
    _SERVICE_DIRS+=("$dir")
    cat >"$dir/sentinel.conf" <<CONF
port $port
bind 127.0.0.1
dir $dir
logfile $dir/sentinel.log
sentinel monitor $name 127.0.0.1 $primary 2
sentinel down-after-milliseconds $name 1000
sentinel failover-timeout $name 5000
sentinel parallel-syncs $name 1
CONF
    redis-server "$dir/sentinel.conf" --sentinel &
    _track $!
    wait_port 127.0.0.1 "$port" 30
    urls+=("redis://127.0.0.1:$port")
  done
  for port in "${urls[@]##*:}"; do
    _wait_for 60 _sentinel_ready "$port" "$name"
  done
  VIDQ_TEST_REDIS_SENTINELS=$(IFS=,; echo "${urls[*]}")
  export VIDQ_TEST_REDIS_SENTINELS VIDQ_TEST_REDIS_SENTINEL_MASTER=$name
  log "started Sentinel: primary 127.0.0.1:$primary, replica 127.0.0.1:$replica, sentinels $VIDQ_TEST_REDIS_SENTINELS (master name $name)"
}
