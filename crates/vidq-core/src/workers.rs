//! The registry of live worker processes, by Redis time.
//!
//! Each worker process beats every few seconds: [`WorkerRegistry::beat`] stores its
//! [`WorkerInfo`] (host, version, queues with their concurrency and the tasks it holds now,
//! started at and last seen as Redis `TIME` in ms) and pushes its expiry `ttl` past Redis'
//! clock. A process killed with SIGKILL stops beating and drops out of [`WorkerRegistry::list`]
//! once its expiry passed; a clean stop calls [`WorkerRegistry::remove`] and is gone at once.
//!
//! Keys (one hash tag, so every script touches one slot):
//! - `<prefix>:{workers}`: sorted set, member = worker id, score = expiry (Redis ms);
//! - `<prefix>:{workers}:info`: hash, field = worker id, value = the [`WorkerInfo`] JSON.
//!
//! Every script (beat, list, remove) first drops the members whose expiry passed by Redis
//! time, and a beat sets both keys to expire with the latest member, so a fleet that is gone
//! altogether leaves nothing behind.

use std::time::Duration;

use redis::Script;
use serde::{Deserialize, Serialize};
use vidq_redis::Conn;

/// How often a worker beats by default.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// How many missed beats make a worker gone: the TTL is this many intervals.
pub const HEARTBEAT_TTL_BEATS: u32 = 3;

const PRUNE: &str = r"
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #gone > 0 then
  redis.call('HDEL', KEYS[2], unpack(gone))
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
end
";

/// KEYS: zset, info hash. ARGV: id, ttl ms, the record's JSON object without its times,
/// started_at ms or ''. The times are appended as integers (no float rounding by cjson).
/// Returns `[started_at_ms, last_seen_ms]`.
const BEAT: &str = r#"
local ttl = tonumber(ARGV[2])
local started = tonumber(ARGV[4]) or now
local body = string.sub(ARGV[3], 1, -2)
local times = string.format(',"started_at_ms":%d,"last_seen_ms":%d,"expires_at_ms":%d}',
  started, now, now + ttl)
redis.call('HSET', KEYS[2], ARGV[1], body .. times)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local keep = math.max(tonumber(last[2]) - now, 1)
redis.call('PEXPIRE', KEYS[1], keep)
redis.call('PEXPIRE', KEYS[2], keep)
return {started, now}
"#;

/// KEYS: zset, info hash. Returns the live workers' JSON, soonest to expire first.
const LIST: &str = r"
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
if #ids == 0 then return {} end
local out = {}
for _, v in ipairs(redis.call('HMGET', KEYS[2], unpack(ids))) do
  if v then table.insert(out, v) end
end
return out
";

/// KEYS: zset, info hash. ARGV: id. Returns 1 when the worker was listed.
const REMOVE: &str = r"
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('ZREM', KEYS[1], ARGV[1])
";

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkersError {
    /// Redis could not be reached or refused the command.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A stored worker record does not decode.
    #[error("corrupt worker record in {key}: {reason}")]
    Corrupt {
        /// The hash holding it.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A beat the registry cannot store.
    #[error("invalid worker heartbeat: {0}")]
    Invalid(String),
}

/// One queue a worker process runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueLoad {
    /// The queue name (`submit`, `poll`, `transfer`, `notify`).
    pub queue: String,
    /// How many tasks of this queue the process runs at once.
    pub concurrency: usize,
    /// Tasks of this queue the process holds now (running, or claimed to run next).
    pub running: usize,
}

/// One live worker process as its last beat described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Unique per process: `<host>-<pid>-<random>`.
    pub id: String,
    /// The host name the process runs on.
    pub host: String,
    /// The process id on that host.
    pub pid: u32,
    /// The vidq version of the process.
    pub version: String,
    /// Its queues, with concurrency and tasks held now.
    pub queues: Vec<QueueLoad>,
    /// When it first beat (Redis `TIME`, Unix ms).
    #[serde(default)]
    pub started_at_ms: u64,
    /// Its last beat (Redis `TIME`, Unix ms).
    #[serde(default)]
    pub last_seen_ms: u64,
    /// When it drops out of the list unless it beats again (Redis `TIME`, Unix ms).
    #[serde(default)]
    pub expires_at_ms: u64,
}

impl WorkerInfo {
    /// A record for this process: a fresh unique id, the host name, the pid and vidq's
    /// version; `queues` as given. The times are set by Redis on each beat.
    #[must_use]
    pub fn for_this_process(queues: Vec<QueueLoad>) -> Self {
        let host = host_name();
        let pid = std::process::id();
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        Self {
            id: format!("{host}-{pid}-{}", &suffix[..8]),
            host,
            pid,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            queues,
            started_at_ms: 0,
            last_seen_ms: 0,
            expires_at_ms: 0,
        }
    }
}

/// This machine's host name: `$HOSTNAME`, else `/proc/sys/kernel/hostname` or `/etc/hostname`,
/// else `unknown`.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Reads and writes the worker registry under one key prefix; see the module docs.
#[derive(Clone)]
pub struct WorkerRegistry {
    conn: Conn,
    set_key: String,
    info_key: String,
    beat: Script,
    list: Script,
    remove: Script,
}

impl std::fmt::Debug for WorkerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerRegistry")
            .field("set_key", &self.set_key)
            .finish_non_exhaustive()
    }
}

impl WorkerRegistry {
    /// The registry at `<prefix>:{workers}` and `<prefix>:{workers}:info`.
    #[must_use]
    pub fn new(conn: impl Into<Conn>, prefix: &str) -> Self {
        Self {
            conn: conn.into(),
            set_key: format!("{prefix}:{{workers}}"),
            info_key: format!("{prefix}:{{workers}}:info"),
            beat: Script::new(&format!("{PRUNE}{BEAT}")),
            list: Script::new(&format!("{PRUNE}{LIST}")),
            remove: Script::new(&format!("{PRUNE}{REMOVE}")),
        }
    }

    /// The two keys, sorted set first.
    #[must_use]
    pub fn keys(&self) -> [&str; 2] {
        [&self.set_key, &self.info_key]
    }

    /// Stores `info` as live for `ttl` past Redis' clock. Sets `info.started_at_ms` on the
    /// first beat (when it is 0) and `info.last_seen_ms` on every beat.
    pub async fn beat(&self, info: &mut WorkerInfo, ttl: Duration) -> Result<(), WorkersError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        if ttl_ms == 0 {
            return Err(WorkersError::Invalid("ttl must be at least 1 ms".into()));
        }
        if info.id.is_empty() {
            return Err(WorkersError::Invalid("the worker id is empty".into()));
        }
        let body = serde_json::json!({
            "id": info.id,
            "host": info.host,
            "pid": info.pid,
            "version": info.version,
            "queues": info.queues,
        });
        let json = body.to_string();
        let started = if info.started_at_ms == 0 {
            String::new()
        } else {
            info.started_at_ms.to_string()
        };
        let mut conn = self.conn.clone();
        let (started_at, now): (u64, u64) = self
            .beat
            .key(&self.set_key)
            .key(&self.info_key)
            .arg(&info.id)
            .arg(ttl_ms)
            .arg(json)
            .arg(started)
            .invoke_async(&mut conn)
            .await?;
        info.started_at_ms = started_at;
        info.last_seen_ms = now;
        info.expires_at_ms = now.saturating_add(ttl_ms);
        Ok(())
    }

    /// The live workers (expiry not passed by Redis time), soonest to expire first.
    pub async fn list(&self) -> Result<Vec<WorkerInfo>, WorkersError> {
        let mut conn = self.conn.clone();
        let raw: Vec<String> = self
            .list
            .key(&self.set_key)
            .key(&self.info_key)
            .invoke_async(&mut conn)
            .await?;
        raw.iter()
            .map(|json| {
                serde_json::from_str(json).map_err(|e| WorkersError::Corrupt {
                    key: self.info_key.clone(),
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    /// Removes worker `id` at once (a clean stop). Returns whether it was listed.
    pub async fn remove(&self, id: &str) -> Result<bool, WorkersError> {
        let mut conn = self.conn.clone();
        let removed: i64 = self
            .remove
            .key(&self.set_key)
            .key(&self.info_key)
            .arg(id)
            .invoke_async(&mut conn)
            .await?;
        Ok(removed == 1)
    }
}
