//! Private Redis Cluster and Sentinel rigs for the tests that fail over or kill nodes (the
//! shared rigs of `scripts/test` must stay whole for the other tests): real `redis-server`
//! processes on free loopback ports, each in its own folder, memory-only with `noeviction`.
//! Dropping a rig kills its processes and removes its folders. Every wait has a deadline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::process::{Child, Command};

use crate::redis_server::wait_listening;
use crate::{free_port, unique, wait_until};

/// How long one command to a rig node may take before the node counts as unreachable.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// One `redis-server` (or sentinel) process of a rig.
struct Node {
    child: Child,
    port: u16,
    alive: bool,
}

impl Node {
    /// Starts `redis-server <args(port, folder)>` in a fresh folder under `root` on a free
    /// port, retrying a port taken in between.
    async fn start(
        root: &Path,
        what: &str,
        mut args: impl FnMut(u16, &Path) -> anyhow::Result<Vec<String>>,
    ) -> anyhow::Result<Self> {
        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port()?;
            let dir = root.join(format!("{what}-{port}"));
            std::fs::create_dir_all(&dir)?;
            let mut child = Command::new("redis-server")
                .args(args(port, &dir)?)
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .context("starting redis-server (scripts/test installs it)")?;
            match wait_listening(&mut child, port, &format!("{what} to listen")).await {
                Ok(()) => {
                    return Ok(Self {
                        child,
                        port,
                        alive: true,
                    });
                }
                Err(err) => {
                    let _ = child.kill().await;
                    last_error = Some(err.context(format!("{what} on port {port}")));
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("{what} did not start")))
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn kill9(&mut self) -> anyhow::Result<()> {
        self.alive = false;
        self.child.kill().await.context("SIGKILL of redis-server")
    }
}

/// The memory-only, `noeviction` arguments every data node gets.
fn data_args(port: u16, dir: &Path) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--maxmemory-policy",
        "noeviction",
        "--dir",
        &dir.display().to_string(),
        "--logfile",
        "redis.log",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Runs `cmd` on the node at `url` within [`COMMAND_TIMEOUT`].
pub(crate) async fn query<T: redis::FromRedisValue>(
    url: &str,
    cmd: &redis::Cmd,
) -> anyhow::Result<T> {
    let client = redis::Client::open(url)?;
    tokio::time::timeout(COMMAND_TIMEOUT, async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        cmd.query_async::<T>(&mut conn).await
    })
    .await
    .with_context(|| format!("{url} did not answer within {COMMAND_TIMEOUT:?}"))?
    .with_context(|| url.to_owned())
}

/// The `field:value` lines of an `INFO`-style reply.
fn info_fields(text: &str) -> BTreeMap<&str, &str> {
    text.lines()
        .filter_map(|line| line.trim_end().split_once(':'))
        .collect()
}

/// One line of `CLUSTER NODES`, as far as the rig needs it.
#[derive(Debug, Clone)]
pub(crate) struct ClusterNodeLine {
    id: String,
    pub(crate) port: u16,
    pub(crate) primary: bool,
    pub(crate) failed: bool,
    /// The primary's id, for a replica.
    primary_id: Option<String>,
    /// Slot ranges served, for a primary.
    pub(crate) slots: Vec<(u16, u16)>,
}

pub(crate) fn parse_cluster_nodes(text: &str) -> anyhow::Result<Vec<ClusterNodeLine>> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        anyhow::ensure!(fields.len() >= 8, "unexpected CLUSTER NODES line {line:?}");
        let addr = fields[1].split('@').next().unwrap_or_default();
        let port = addr
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .with_context(|| format!("no port in CLUSTER NODES line {line:?}"))?;
        let flags: Vec<&str> = fields[2].split(',').collect();
        let mut slots = Vec::new();
        for range in &fields[8..] {
            if range.starts_with('[') {
                continue; // a slot being migrated or imported
            }
            let (start, end) = range.split_once('-').unwrap_or((range, range));
            slots.push((start.parse()?, end.parse()?));
        }
        out.push(ClusterNodeLine {
            id: fields[0].to_owned(),
            port,
            primary: flags.contains(&"master"),
            failed: flags.contains(&"fail") || flags.contains(&"fail?"),
            primary_id: (fields[3] != "-").then(|| fields[3].to_owned()),
            slots,
        });
    }
    Ok(out)
}

/// A 3-primary, 3-replica Redis Cluster of one test. Nodes are named by their index in
/// [`ClusterRig::urls`] (0..6), which stays the same through failovers and kills.
pub struct ClusterRig {
    nodes: Vec<Node>,
    root: PathBuf,
}

impl ClusterRig {
    /// Starts six nodes, creates the cluster (`redis-cli --cluster create ... --cluster-replicas
    /// 1`) and waits until it is ok (see [`ClusterRig::wait_ok`]).
    pub async fn start() -> anyhow::Result<Self> {
        let root = std::env::temp_dir().join(unique("vidq-test-cluster"));
        std::fs::create_dir_all(&root)?;
        let mut rig = Self {
            nodes: Vec::new(),
            root,
        };
        for i in 0..6 {
            let bus = free_port()?;
            let node = Node::start(&rig.root, &format!("node{i}"), |port, dir| {
                let mut args = data_args(port, dir);
                args.extend(
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-port",
                        &bus.to_string(),
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ]
                    .map(str::to_owned),
                );
                Ok(args)
            })
            .await?;
            rig.nodes.push(node);
        }
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(rig.nodes.iter().map(Node::addr))
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .await
            .context("running redis-cli --cluster create (scripts/test installs redis-tools)")?;
        anyhow::ensure!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        rig.wait_ok(Duration::from_secs(60)).await?;
        Ok(rig)
    }

    /// The seed URLs of every node started (`redis://127.0.0.1:<port>`), killed ones too (a
    /// client skips a seed that does not answer).
    #[must_use]
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// [`ClusterRig::urls`] comma-separated, as `VIDQ__REDIS__URLS` takes them.
    #[must_use]
    pub fn urls_joined(&self) -> String {
        self.urls().join(",")
    }

    /// The URL of node `node`.
    #[must_use]
    pub fn url(&self, node: usize) -> String {
        self.nodes[node].url()
    }

    /// Whether node `node` was not killed.
    #[must_use]
    pub fn is_alive(&self, node: usize) -> bool {
        self.nodes[node].alive
    }

    fn index_of_port(&self, port: u16) -> anyhow::Result<usize> {
        self.nodes
            .iter()
            .position(|n| n.port == port)
            .with_context(|| format!("port {port} is no node of this rig"))
    }

    /// `CLUSTER NODES` as the first live node that answers sees it.
    async fn cluster_nodes(&self) -> anyhow::Result<Vec<ClusterNodeLine>> {
        let mut last_error = None;
        for node in self.nodes.iter().filter(|n| n.alive) {
            match query::<String>(&node.url(), redis::cmd("CLUSTER").arg("NODES")).await {
                Ok(text) => return parse_cluster_nodes(&text),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no live node in the cluster rig")))
    }

    /// The slot of `key` (`CLUSTER KEYSLOT` on a live node).
    pub async fn slot_of(&self, key: &str) -> anyhow::Result<u16> {
        let node = self
            .nodes
            .iter()
            .find(|n| n.alive)
            .context("no live node in the cluster rig")?;
        query(&node.url(), redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)).await
    }

    /// The node serving `key`'s slot as primary now.
    pub async fn primary_for_key(&self, key: &str) -> anyhow::Result<usize> {
        let slot = self.slot_of(key).await?;
        let nodes = self.cluster_nodes().await?;
        let owner = nodes
            .iter()
            .find(|n| {
                n.primary && !n.failed && n.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
            })
            .with_context(|| format!("no live primary serves slot {slot} (key {key})"))?;
        self.index_of_port(owner.port)
    }

    /// The live replicas of primary `node`.
    pub async fn replicas_of(&self, node: usize) -> anyhow::Result<Vec<usize>> {
        let nodes = self.cluster_nodes().await?;
        let port = self.nodes[node].port;
        let id = nodes
            .iter()
            .find(|n| n.port == port)
            .map(|n| n.id.clone())
            .with_context(|| format!("node {node} is not in CLUSTER NODES"))?;
        nodes
            .iter()
            .filter(|n| !n.failed && n.primary_id.as_deref() == Some(id.as_str()))
            .map(|n| self.index_of_port(n.port))
            .filter(|i| i.as_ref().map_or(true, |i| self.nodes[*i].alive))
            .collect()
    }

    /// `CLUSTER FAILOVER` on a replica of primary `node` (a coordinated switch, no write
    /// lost), then waits until that replica serves the slots and the cluster is ok. Returns
    /// the new primary.
    pub async fn failover(&self, node: usize) -> anyhow::Result<usize> {
        let replica = *self
            .replicas_of(node)
            .await?
            .first()
            .with_context(|| format!("node {node} has no live replica to fail over to"))?;
        query::<String>(
            &self.nodes[replica].url(),
            redis::cmd("CLUSTER").arg("FAILOVER"),
        )
        .await
        .context("CLUSTER FAILOVER")?;
        let url = self.nodes[replica].url();
        wait_until(
            "the replica to take over after CLUSTER FAILOVER",
            Duration::from_secs(30),
            || async {
                let role = query::<String>(&url, redis::cmd("INFO").arg("replication"))
                    .await
                    .ok();
                Ok(role
                    .is_some_and(|r| info_fields(&r).get("role") == Some(&"master"))
                    .then_some(()))
            },
        )
        .await?;
        self.wait_ok(Duration::from_secs(30)).await?;
        Ok(replica)
    }

    /// SIGKILL of node `node` (no failover asked: the cluster notices it after the node
    /// timeout, 2 s, and promotes a replica of a killed primary).
    pub async fn kill(&mut self, node: usize) -> anyhow::Result<()> {
        self.nodes[node].kill9().await
    }

    /// Waits up to `timeout` until every live node says `cluster_state:ok` with all 16384
    /// slots ok, every slot is served by a live primary, and every live replica's link to its
    /// primary is up.
    pub async fn wait_ok(&self, timeout: Duration) -> anyhow::Result<()> {
        let result = wait_until("the cluster to be ok", timeout, || async {
            Ok(self.ok_now().await.ok().filter(|ok| *ok).map(|_| ()))
        })
        .await;
        if result.is_err() {
            let mut seen = String::new();
            for node in self.nodes.iter().filter(|n| n.alive) {
                let nodes = query::<String>(&node.url(), redis::cmd("CLUSTER").arg("NODES"))
                    .await
                    .unwrap_or_else(|e| format!("{e:#}"));
                seen.push_str(&format!("\n{}:\n{nodes}", node.addr()));
            }
            return result.context(format!("what the live nodes see:{seen}"));
        }
        result
    }

    async fn ok_now(&self) -> anyhow::Result<bool> {
        // Every live node must also see the same roles (which node replicates which) for the
        // live nodes: right after `--cluster create` or a failover, gossip may not have
        // reached every node yet, and one that still sees the old roles names other replicas.
        let mut roles_seen: Option<Vec<(u16, bool, Option<u16>)>> = None;
        for node in self.nodes.iter().filter(|n| n.alive) {
            let url = node.url();
            let info: String = query(&url, redis::cmd("CLUSTER").arg("INFO")).await?;
            let info = info_fields(&info);
            if info.get("cluster_state") != Some(&"ok")
                || info.get("cluster_slots_ok") != Some(&"16384")
            {
                return Ok(false);
            }
            let nodes = parse_cluster_nodes(
                &query::<String>(&url, redis::cmd("CLUSTER").arg("NODES")).await?,
            )?;
            let roles = live_roles(&nodes, |port| {
                self.index_of_port(port).is_ok_and(|i| self.nodes[i].alive)
            });
            match &roles_seen {
                Some(seen) if *seen != roles => return Ok(false),
                Some(_) => {}
                None => roles_seen = Some(roles),
            }
            let mut served = 0u32;
            for line in nodes.iter().filter(|n| n.primary && !n.slots.is_empty()) {
                let live = self
                    .index_of_port(line.port)
                    .is_ok_and(|i| self.nodes[i].alive);
                if line.failed || !live {
                    return Ok(false);
                }
                served += line
                    .slots
                    .iter()
                    .map(|(a, b)| u32::from(*b) - u32::from(*a) + 1)
                    .sum::<u32>();
            }
            if served != 16384 {
                return Ok(false);
            }
            let repl: String = query(&url, redis::cmd("INFO").arg("replication")).await?;
            let repl = info_fields(&repl);
            if repl.get("role") == Some(&"slave") {
                let primary_alive = repl
                    .get("master_port")
                    .and_then(|p| p.parse::<u16>().ok())
                    .and_then(|p| self.index_of_port(p).ok())
                    .is_some_and(|i| self.nodes[i].alive);
                if primary_alive && repl.get("master_link_status") != Some(&"up") {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
}

/// `(port, is primary, its primary's port)` of each live node in one node's `CLUSTER NODES`,
/// sorted by port.
fn live_roles(
    nodes: &[ClusterNodeLine],
    alive: impl Fn(u16) -> bool,
) -> Vec<(u16, bool, Option<u16>)> {
    let port_of = |id: &str| nodes.iter().find(|n| n.id == id).map(|n| n.port);
    let mut roles: Vec<_> = nodes
        .iter()
        .filter(|n| alive(n.port))
        .map(|n| (n.port, n.primary, n.primary_id.as_deref().and_then(port_of)))
        .collect();
    roles.sort_unstable();
    roles
}

impl Drop for ClusterRig {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// One primary with one replica and no sentinel, for the tests of the primary's own
/// `min-replicas-to-write` (its extra arguments): the replica can be stopped (SIGSTOP) and
/// continued, which makes the primary refuse writes with `NOREPLICAS` and accept them again.
pub struct ReplicatedRig {
    primary: Node,
    replica: Node,
    root: PathBuf,
}

impl ReplicatedRig {
    /// Starts both, the primary with `primary_args` added, and waits until the replica is in
    /// sync and the primary takes writes.
    pub async fn start(primary_args: &[&str]) -> anyhow::Result<Self> {
        let root = std::env::temp_dir().join(unique("vidq-test-replicated"));
        std::fs::create_dir_all(&root)?;
        let primary = Node::start(&root, "primary", |port, dir| {
            let mut args = data_args(port, dir);
            args.extend(primary_args.iter().map(|a| (*a).to_owned()));
            Ok(args)
        })
        .await?;
        let primary_port = primary.port.to_string();
        let replica = Node::start(&root, "replica", |port, dir| {
            let mut args = data_args(port, dir);
            args.extend(["--replicaof", "127.0.0.1", &primary_port].map(str::to_owned));
            Ok(args)
        })
        .await?;
        let rig = Self {
            primary,
            replica,
            root,
        };
        let url = rig.primary_url();
        wait_until(
            "the replica to sync and the primary to take writes",
            Duration::from_secs(60),
            || {
                let url = url.clone();
                async move {
                    let probe = redis::cmd("SET").arg("vidq-rig:probe").arg("1").clone();
                    Ok(query::<String>(&url, &probe).await.is_ok().then_some(()))
                }
            },
        )
        .await?;
        Ok(rig)
    }

    /// The primary's URL.
    #[must_use]
    pub fn primary_url(&self) -> String {
        self.primary.url()
    }

    /// Sends `signal` (`STOP`, `CONT`) to the replica.
    fn signal_replica(&self, signal: &str) -> anyhow::Result<()> {
        let pid = self
            .replica
            .child
            .id()
            .context("the replica's redis-server has exited")?;
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .context("running kill")?;
        anyhow::ensure!(status.success(), "kill -{signal} {pid} failed");
        Ok(())
    }

    /// Freezes the replica (SIGSTOP): it stops acknowledging the primary's stream.
    pub fn stop_replica(&self) -> anyhow::Result<()> {
        self.signal_replica("STOP")
    }

    /// Lets a frozen replica go on (SIGCONT).
    pub fn continue_replica(&self) -> anyhow::Result<()> {
        self.signal_replica("CONT")
    }

    /// Whether a write to the primary is refused with `NOREPLICAS` now.
    pub async fn refuses_writes(&self) -> anyhow::Result<bool> {
        let probe = redis::cmd("SET").arg("vidq-rig:probe").arg("1").clone();
        match query::<String>(&self.primary_url(), &probe).await {
            Ok(_) => Ok(false),
            Err(err) if format!("{err:#}").contains("NOREPLICAS") => Ok(true),
            Err(err) => Err(err),
        }
    }
}

impl Drop for ReplicatedRig {
    fn drop(&mut self) {
        for node in [&mut self.primary, &mut self.replica] {
            let _ = node.child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// One primary, one replica and three sentinels (quorum 2) of one test: a primary is down
/// after [`SentinelRig::DOWN_AFTER`] and a failover may take [`SentinelRig::FAILOVER_TIMEOUT`].
pub struct SentinelRig {
    data: Vec<Node>,
    sentinels: Vec<Node>,
    master_name: String,
    root: PathBuf,
}

impl SentinelRig {
    /// `down-after-milliseconds`.
    pub const DOWN_AFTER: Duration = Duration::from_millis(1000);
    /// `failover-timeout`.
    pub const FAILOVER_TIMEOUT: Duration = Duration::from_millis(5000);

    /// Starts them and waits until every sentinel sees the replica, the two other sentinels,
    /// and a reachable quorum.
    pub async fn start() -> anyhow::Result<Self> {
        let root = std::env::temp_dir().join(unique("vidq-test-sentinel"));
        std::fs::create_dir_all(&root)?;
        let mut rig = Self {
            data: Vec::new(),
            sentinels: Vec::new(),
            master_name: "vidq-rig".to_owned(),
            root,
        };
        let primary =
            Node::start(&rig.root, "primary", |port, dir| Ok(data_args(port, dir))).await?;
        let primary_port = primary.port.to_string();
        rig.data.push(primary);
        let replica = Node::start(&rig.root, "replica", |port, dir| {
            let mut args = data_args(port, dir);
            args.extend(["--replicaof", "127.0.0.1", &primary_port].map(str::to_owned));
            Ok(args)
        })
        .await?;
        rig.data.push(replica);
        let name = rig.master_name.clone();
        for i in 0..3 {
            let node = Node::start(&rig.root, &format!("sentinel{i}"), |port, dir| {
                let conf = dir.join("sentinel.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile sentinel.log\n\
                         sentinel monitor {name} 127.0.0.1 {primary_port} 2\n\
                         sentinel down-after-milliseconds {name} {down}\n\
                         sentinel failover-timeout {name} {failover}\n\
                         sentinel parallel-syncs {name} 1\n",
                        dir = dir.display(),
                        down = Self::DOWN_AFTER.as_millis(),
                        failover = Self::FAILOVER_TIMEOUT.as_millis(),
                    ),
                )?;
                Ok(vec![conf.display().to_string(), "--sentinel".to_owned()])
            })
            .await?;
            rig.sentinels.push(node);
        }
        for sentinel in &rig.sentinels {
            let url = sentinel.url();
            let name = rig.master_name.clone();
            wait_until(
                "a sentinel to see the replica, the other sentinels and a quorum",
                Duration::from_secs(60),
                || {
                    let (url, name) = (url.clone(), name.clone());
                    async move { Ok(sentinel_ready(&url, &name).await.then_some(())) }
                },
            )
            .await?;
        }
        Ok(rig)
    }

    /// The sentinels' URLs.
    #[must_use]
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels.iter().map(Node::url).collect()
    }

    /// [`SentinelRig::sentinel_urls`] comma-separated, as `VIDQ__REDIS__SENTINELS` takes them.
    #[must_use]
    pub fn sentinels_joined(&self) -> String {
        self.sentinel_urls().join(",")
    }

    /// The monitored primary's name.
    #[must_use]
    pub fn master_name(&self) -> &str {
        &self.master_name
    }

    /// The primary's `host:port` as the first sentinel that answers tells it.
    pub async fn current_primary(&self) -> anyhow::Result<String> {
        let mut last_error = None;
        for sentinel in self.sentinels.iter().filter(|s| s.alive) {
            let asked = query::<Option<(String, String)>>(
                &sentinel.url(),
                redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(&self.master_name),
            )
            .await;
            match asked {
                Ok(Some((host, port))) => return Ok(format!("{host}:{port}")),
                Ok(None) => last_error = Some(anyhow::anyhow!("sentinel knows no primary")),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no sentinel answered")))
    }

    /// The URL of the primary now (per the sentinels).
    pub async fn primary_url(&self) -> anyhow::Result<String> {
        Ok(format!("redis://{}", self.current_primary().await?))
    }

    /// SIGKILL of the current primary; returns its `host:port` and when it died.
    pub async fn kill_primary(&mut self) -> anyhow::Result<(String, Instant)> {
        let primary = self.current_primary().await?;
        let node = self
            .data
            .iter_mut()
            .find(|n| n.alive && n.addr() == primary)
            .with_context(|| format!("the primary {primary} is no live node of this rig"))?;
        node.kill9().await?;
        Ok((primary, Instant::now()))
    }

    /// Waits up to `timeout` until a sentinel names a primary other than `old` and that node
    /// answers as a primary; returns it.
    pub async fn wait_switch(&self, old: &str, timeout: Duration) -> anyhow::Result<String> {
        wait_until("the sentinels to switch the primary", timeout, || async {
            let Ok(now) = self.current_primary().await else {
                return Ok(None);
            };
            if now == old {
                return Ok(None);
            }
            let role = query::<String>(
                &format!("redis://{now}"),
                redis::cmd("INFO").arg("replication"),
            )
            .await
            .ok();
            Ok(role
                .is_some_and(|r| info_fields(&r).get("role") == Some(&"master"))
                .then_some(now))
        })
        .await
    }
}

impl Drop for SentinelRig {
    fn drop(&mut self) {
        for node in self.data.iter_mut().chain(self.sentinels.iter_mut()) {
            let _ = node.child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Whether the sentinel at `url` sees `name` with one replica and two other sentinels, and a
/// quorum (`SENTINEL CKQUORUM`).
async fn sentinel_ready(url: &str, name: &str) -> bool {
    let Ok(fields) =
        query::<Vec<String>>(url, redis::cmd("SENTINEL").arg("MASTER").arg(name)).await
    else {
        return false;
    };
    let get = |key: &str| {
        fields
            .chunks(2)
            .find(|pair| pair[0] == key)
            .and_then(|pair| pair.get(1))
            .cloned()
    };
    get("num-slaves").as_deref() == Some("1")
        && get("num-other-sentinels").as_deref() == Some("2")
        && query::<String>(url, redis::cmd("SENTINEL").arg("CKQUORUM").arg(name))
            .await
            .is_ok_and(|ok| ok.starts_with("OK"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_lines_parse() {
        let text = "\
07c3 127.0.0.1:30004@31004,hostname4 slave e7d1 0 1426238317239 4 connected
e7d1 127.0.0.1:30001@31001,hostname1 myself,master - 0 0 1 connected 0-5460 6000 [5461->-292]
9fd8 127.0.0.1:30002@31002 master,fail - 1426238316232 1426238315000 2 disconnected
";
        let nodes = parse_cluster_nodes(text).unwrap();
        assert_eq!(nodes.len(), 3);
        assert!(!nodes[0].primary);
        assert_eq!(nodes[0].primary_id.as_deref(), Some("e7d1"));
        assert_eq!(nodes[1].port, 30001);
        assert_eq!(nodes[1].slots, vec![(0, 5460), (6000, 6000)]);
        assert!(nodes[2].failed && nodes[2].slots.is_empty());
    }
}
