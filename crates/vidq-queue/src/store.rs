//! Redis operations of one queue: every method is one round trip per batch. No method reads
//! the host clock: the scripts take relative delays and use Redis's `TIME`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use vidq_redis::Conn;

use crate::config::{MAX_BATCH, QueueConfig};
use crate::error::QueueError;
use crate::fair::escape_group;
use crate::keys::Keys;
use crate::leases::Again;
use crate::scripts::Scripts;

pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Dead tasks trimmed per claim or depth read, at most.
const TRIM_LIMIT: usize = 100;

/// One task as a claim returns it, payload still encoded.
pub(crate) struct RawClaim {
    pub(crate) id: String,
    pub(crate) token: String,
    pub(crate) due_ms: u64,
    pub(crate) attempt: u64,
    pub(crate) payload: Vec<u8>,
}

/// What a claim brought back.
pub(crate) struct ClaimReply {
    pub(crate) tasks: Vec<RawClaim>,
    /// Earliest due time or lease deadline (Redis ms), if any task is queued or leased.
    pub(crate) next: Option<u64>,
    /// Redis's time when the claim ran (ms).
    pub(crate) now: u64,
}

/// How an unsuccessful delivery ends.
pub(crate) enum Finish<'a> {
    Retry { delay: Duration },
    Dead { reason: &'a str },
}

/// What a push found for one id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushState {
    Created,
    Waiting,
    Leased,
    Dead,
    Revived,
}

/// A dead-set entry, encoded.
pub(crate) struct RawDead {
    pub(crate) id: String,
    pub(crate) died_ms: u64,
    pub(crate) reason: String,
    pub(crate) payload: Vec<u8>,
}

/// Connection, key names and scripts of one queue, shared by its handles and workers.
pub(crate) struct Store {
    pub(crate) redis: vidq_redis::Redis,
    conn: Conn,
    pub(crate) keys: Keys,
    pub(crate) config: QueueConfig,
    scripts: Scripts,
    round_trips: AtomicU64,
    /// A fair queue's weights, group names escaped.
    fair_weights: Vec<(String, u32)>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("queue", &self.config.queue)
            .field("prefix", &self.config.prefix)
            .finish_non_exhaustive()
    }
}

impl Store {
    pub(crate) fn new(redis: vidq_redis::Redis, config: QueueConfig) -> Self {
        let fair_weights = config
            .fair
            .iter()
            .flat_map(|f| f.weights.iter())
            .filter_map(|(g, w)| Some((escape_group(g).ok()?, *w)))
            .collect();
        Self {
            conn: redis.conn(),
            redis,
            keys: Keys::new(&config.prefix, &config.queue),
            config,
            scripts: Scripts::new(),
            round_trips: AtomicU64::new(0),
            fair_weights,
        }
    }

    pub(crate) fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    fn conn(&self) -> Conn {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        self.conn.clone()
    }

    /// Store a batch of encoded tasks (id, delay, payload) atomically, each unless its id
    /// exists (with `revive`, a dead one goes back to due), and wake idle workers so they
    /// re-read the earliest due time.
    pub(crate) async fn push(
        &self,
        items: &[(String, Duration, Vec<u8>)],
        revive: bool,
    ) -> Result<Vec<PushState>, QueueError> {
        self.push_placed(items, None, revive).await
    }

    /// [`Store::push`], each task with its place in a fair queue (encoded, see
    /// `Place::encode`) when `places` is given (one per item).
    pub(crate) async fn push_placed(
        &self,
        items: &[(String, Duration, Vec<u8>)],
        places: Option<&[String]>,
        revive: bool,
    ) -> Result<Vec<PushState>, QueueError> {
        let mut out = Vec::with_capacity(items.len());
        for (n, chunk) in items.chunks(MAX_BATCH).enumerate() {
            let k = &self.keys;
            let mut inv = self.scripts.push.key(&k.data);
            inv.key(&k.due)
                .key(&k.lease)
                .key(&k.dead)
                .key(&k.why)
                .key(&k.dlv)
                .key(&k.ready)
                .key(&k.gm)
                .key(&k.vt);
            inv.arg(&k.wake)
                .arg(if revive { "1" } else { "0" })
                .arg(if places.is_some() { "1" } else { "0" });
            for (i, (id, delay, payload)) in chunk.iter().enumerate() {
                inv.arg(id).arg(ms(*delay)).arg(payload.as_slice());
                if let Some(places) = places {
                    let place = places
                        .get(n * MAX_BATCH + i)
                        .ok_or_else(|| protocol("a task without its place"))?;
                    inv.arg(place);
                }
            }
            let states: Vec<String> = inv.invoke_async(&mut self.conn()).await?;
            for s in states {
                out.push(match s.as_str() {
                    "created" => PushState::Created,
                    "waiting" => PushState::Waiting,
                    "leased" => PushState::Leased,
                    "dead" => PushState::Dead,
                    "revived" => PushState::Revived,
                    _ => return Err(protocol("unknown push outcome")),
                });
            }
        }
        Ok(out)
    }

    pub(crate) async fn claim(&self, max: usize) -> Result<ClaimReply, QueueError> {
        let c = &self.config;
        let k = &self.keys;
        let script = if c.fair.is_some() {
            &self.scripts.claim_fair
        } else {
            &self.scripts.claim
        };
        let mut inv = script.key(&k.due);
        inv.key(&k.lease)
            .key(&k.data)
            .key(&k.dlv)
            .key(&k.dead)
            .key(&k.why)
            .arg(max.min(MAX_BATCH))
            .arg(ms(c.lease))
            .arg(c.max_deliveries)
            .arg(ms(c.dead_ttl))
            .arg(TRIM_LIMIT);
        if c.fair.is_some() {
            inv.key(&k.ready)
                .key(&k.gm)
                .key(&k.groups)
                .key(&k.vt)
                .key(&k.hold)
                .arg(&k.group_prefix)
                .arg(MAX_BATCH);
            for (group, weight) in &self.fair_weights {
                inv.arg(group).arg(*weight);
            }
        }
        let reply: Vec<Vec<u8>> = inv.invoke_async(&mut self.conn()).await?;
        let mut it = reply.into_iter();
        let next = it.next().and_then(|n| parse_u64(&n));
        let now = it
            .next()
            .and_then(|n| parse_u64(&n))
            .ok_or_else(|| protocol("claim without a time"))?;
        let mut tasks = Vec::new();
        while let (Some(id), Some(token), Some(due), Some(attempt), Some(payload)) =
            (it.next(), it.next(), it.next(), it.next(), it.next())
        {
            let id = String::from_utf8(id).map_err(|_| protocol("task id is not UTF-8"))?;
            let token = String::from_utf8(token).map_err(|_| protocol("bad token"))?;
            let due_ms = parse_u64(&due).ok_or_else(|| protocol("bad due time"))?;
            let attempt = parse_u64(&attempt).ok_or_else(|| protocol("bad attempt"))?;
            tasks.push(RawClaim {
                id,
                token,
                due_ms,
                attempt,
                payload,
            });
        }
        Ok(ClaimReply { tasks, next, now })
    }

    /// Settle a batch of successful deliveries: done, or (with a delay) rescheduled.
    /// `true` where the delivery still held its lease.
    pub(crate) async fn ack(
        &self,
        items: &[(&str, &str, Option<Again>)],
    ) -> Result<Vec<bool>, QueueError> {
        let mut out = Vec::with_capacity(items.len());
        for chunk in items.chunks(MAX_BATCH) {
            let k = &self.keys;
            let mut inv = self.scripts.ack.key(&k.lease);
            // A nonce per call: the script knows itself run again (see ack.lua).
            inv.key(&k.data)
                .key(&k.dlv)
                .key(&k.due)
                .arg(&k.wake)
                .arg(nonce());
            if self.config.fair.is_some() {
                inv.key(&k.gm).key(&k.hold).key(&k.vt).key(&k.ready);
            }
            for (id, token, again) in chunk {
                inv.arg(*id).arg(*token);
                match again {
                    Some(Again::After(delay)) => inv.arg(ms(*delay)),
                    Some(Again::Hold(delay)) => inv.arg(format!("h{}", ms(*delay))),
                    None => inv.arg(""),
                };
            }
            let flags: Vec<i64> = inv.invoke_async(&mut self.conn()).await?;
            out.extend(flags.into_iter().map(|f| f == 1));
        }
        Ok(out)
    }

    /// Retry or bury one delivery; `false` if its token was stale (the same call resent after a
    /// lost reply answers `true` again, see finish.lua).
    pub(crate) async fn finish(
        &self,
        id: &str,
        token: &str,
        how: Finish<'_>,
    ) -> Result<bool, QueueError> {
        let k = &self.keys;
        let (mode, delay, reason) = match how {
            Finish::Retry { delay } => ("retry", ms(delay), ""),
            Finish::Dead { reason } => ("dead", 0, reason),
        };
        let applied: i64 = self
            .scripts
            .finish
            .key(&k.lease)
            .key(&k.dlv)
            .key(&k.due)
            .key(&k.dead)
            .key(&k.why)
            .arg(id)
            .arg(token)
            .arg(mode)
            .arg(delay)
            .arg(reason)
            .arg(&k.wake)
            .arg(nonce())
            .invoke_async(&mut self.conn())
            .await?;
        Ok(applied == 1)
    }

    /// Hand leases back to due now (neither a failure nor a crash).
    pub(crate) async fn release(&self, items: &[(String, String)]) -> Result<u64, QueueError> {
        let mut n = 0;
        for chunk in items.chunks(MAX_BATCH) {
            let mut inv = self.scripts.release.key(&self.keys.lease);
            inv.key(&self.keys.dlv).key(&self.keys.due);
            inv.arg(&self.keys.wake);
            for (id, token) in chunk {
                inv.arg(id).arg(token);
            }
            let got: u64 = inv.invoke_async(&mut self.conn()).await?;
            n += got;
        }
        Ok(n)
    }

    /// Extend the leases still held; returns the ids whose lease was lost.
    pub(crate) async fn renew(
        &self,
        items: &[(String, String)],
    ) -> Result<Vec<String>, QueueError> {
        let mut lost = Vec::new();
        for chunk in items.chunks(MAX_BATCH) {
            let mut inv = self.scripts.renew.key(&self.keys.lease);
            inv.key(&self.keys.dlv);
            inv.arg(ms(self.config.lease));
            for (id, token) in chunk {
                inv.arg(id).arg(token);
            }
            let got: Vec<String> = inv.invoke_async(&mut self.conn()).await?;
            lost.extend(got);
        }
        Ok(lost)
    }

    /// Sizes of due-now, scheduled-later, leased and dead, and 1 when the queue is paused
    /// (else 0), in one round trip (by Redis time); dead tasks past their retention are
    /// trimmed on the way.
    pub(crate) async fn depth(&self) -> Result<[u64; 5], QueueError> {
        let k = &self.keys;
        let mut inv = self.scripts.depth.key(&k.due);
        inv.key(&k.lease)
            .key(&k.dead)
            .key(&k.why)
            .key(&k.data)
            .key(&k.dlv)
            .arg(ms(self.config.dead_ttl))
            .arg(TRIM_LIMIT);
        // Always: a handle that does not claim (a producer's) reads a fair queue's depth too.
        inv.key(&k.ready).key(&k.gm).key(&k.hold);
        let got: Vec<u64> = inv.invoke_async(&mut self.conn()).await?;
        match got[..] {
            [due, later, leased, dead, paused] => Ok([due, later, leased, dead, paused]),
            _ => Err(protocol("depth")),
        }
    }

    /// End the queue's hold now; `true` if it was held.
    pub(crate) async fn end_hold(&self) -> Result<bool, QueueError> {
        let held: i64 = self
            .scripts
            .end_hold
            .key(&self.keys.hold)
            .arg(&self.keys.wake)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(held == 1)
    }

    /// How long the queue's hold still lasts, by Redis's clock; `None` when it is not held.
    pub(crate) async fn held_for(&self) -> Result<Option<Duration>, QueueError> {
        let left: i64 = self
            .scripts
            .held_for
            .key(&self.keys.hold)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(u64::try_from(left)
            .ok()
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis))
    }

    /// Number of dead tasks now.
    pub(crate) async fn dead_count(&self) -> Result<u64, QueueError> {
        Ok(redis::cmd("ZCARD")
            .arg(&self.keys.dead)
            .query_async(&mut self.conn())
            .await?)
    }

    pub(crate) async fn dead_page(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<RawDead>, QueueError> {
        let k = &self.keys;
        let reply: Vec<Vec<u8>> = self
            .scripts
            .dead_page
            .key(&k.dead)
            .key(&k.why)
            .key(&k.data)
            .arg(offset)
            .arg(limit.clamp(1, MAX_BATCH))
            .invoke_async(&mut self.conn())
            .await?;
        let mut out = Vec::new();
        let mut it = reply.into_iter();
        while let (Some(id), Some(at), Some(why), Some(payload)) =
            (it.next(), it.next(), it.next(), it.next())
        {
            out.push(RawDead {
                id: String::from_utf8_lossy(&id).into_owned(),
                died_ms: parse_u64(&at).unwrap_or_default(),
                reason: String::from_utf8_lossy(&why).into_owned(),
                payload,
            });
        }
        Ok(out)
    }

    /// Move one dead task (`Some(id)`) or up to `limit` of the oldest back to due.
    pub(crate) async fn dead_retry(
        &self,
        id: Option<&str>,
        limit: usize,
    ) -> Result<u64, QueueError> {
        let k = &self.keys;
        let mut inv = self.scripts.dead_retry.key(&k.dead);
        inv.key(&k.why).key(&k.dlv).key(&k.due);
        inv.arg(&k.wake).arg(limit.clamp(1, MAX_BATCH));
        if let Some(id) = id {
            inv.arg(id);
        }
        Ok(inv.invoke_async(&mut self.conn()).await?)
    }

    pub(crate) async fn dead_purge(&self, limit: usize) -> Result<u64, QueueError> {
        let k = &self.keys;
        let mut inv = self.scripts.dead_purge.key(&k.dead);
        inv.key(&k.why).key(&k.data).key(&k.dlv).key(&k.gm);
        Ok(inv
            .arg(limit.clamp(1, MAX_BATCH))
            .invoke_async(&mut self.conn())
            .await?)
    }
}

fn parse_u64(bytes: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(bytes).ok()?;
    s.parse::<u64>()
        .ok()
        .or_else(|| s.parse::<f64>().ok().map(|f| f.max(0.0) as u64))
}

fn protocol(what: &str) -> QueueError {
    QueueError::Protocol(what.to_owned())
}

/// A settle call's nonce, kept in the task's meta so the script knows itself run again.
fn nonce() -> String {
    format!("{:016x}", rand::random::<u64>())
}
