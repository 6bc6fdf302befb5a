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
