//! The epoch marker: how a running process notices that Redis lost its data.
//!
//! `<prefix>:epoch` holds a random UUID and the Redis `TIME` it was made at. Each process
//! reads it at start and then every few seconds; the first read only records it (creating it
//! on a brand-new Redis). A later read that finds it missing (Redis restarted empty) or
//! holding another value (an older snapshot restored, a failover to a replica that had not
//! received it, or another process that found it missing first) means what was written before
//! may be gone: the process logs one error, counts it in `vidq_redis_epoch_changes_total`, and
//! reports itself not ready for a while ([`EpochStatus::not_ready_reason`]).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::Script;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use vidq_redis::Conn;

/// The Prometheus counter of epoch changes this process saw.
pub const EPOCH_CHANGES_METRIC: &str = "vidq_redis_epoch_changes_total";
/// How often the marker is read unless [`EpochWatch::with_period`] says otherwise.
pub const DEFAULT_EPOCH_PERIOD: Duration = Duration::from_secs(2);
/// How long a process is not ready after a change unless [`EpochWatch::with_unready_for`]
/// says otherwise.
pub const DEFAULT_EPOCH_UNREADY_FOR: Duration = Duration::from_secs(60);

/// GET the marker; when it is missing, SET it (NX) to `ARGV[1]@<TIME>`. Returns
/// `{created (0|1), value}`.
const CHECK: &str = r"
local seen = redis.call('GET', KEYS[1])
if seen then
  return {0, seen}
end
local now = redis.call('TIME')
local fresh = ARGV[1] .. '@' .. now[1] .. '.' .. string.format('%06d', tonumber(now[2]))
redis.call('SET', KEYS[1], fresh, 'NX')
return {1, fresh}
";

/// How the marker differed from the value this process saw last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EpochChange {
    /// The marker was gone (Redis restarted empty, or the key was deleted); a new one was made.
    Missing {
        /// The marker seen before.
        was: String,
        /// The marker made now.
        created: String,
    },
    /// The marker held another value.
    Replaced {
        /// The marker seen before.
        was: String,
        /// The marker found now.
        now: String,
    },
}

impl EpochChange {
    /// `epoch marker missing` or `epoch marker changed`.
    #[must_use]
    pub fn summary(&self) -> &'static str {
        match self {
            Self::Missing { .. } => "epoch marker missing",
            Self::Replaced { .. } => "epoch marker changed",
        }
    }
}

/// What one read of the marker found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// It was there with this value.
    Present(String),
    /// It was missing; this value was set.
    Created(String),
}

/// The marker this process saw last, and how a new read compares with it.
#[derive(Debug, Default)]
struct Tracker {
    last: Option<String>,
}

impl Tracker {
    /// Records `seen`; a change unless this is the first read.
    fn observe(&mut self, seen: Seen) -> Option<EpochChange> {
        let (value, created) = match seen {
            Seen::Present(value) => (value, false),
            Seen::Created(value) => (value, true),
        };
        match self.last.replace(value.clone()) {
            None => None,
            Some(was) if created => Some(EpochChange::Missing {
                was,
                created: value,
            }),
            Some(was) if was != value => Some(EpochChange::Replaced { was, now: value }),
            Some(_) => None,
        }
    }
}

/// Whether this process saw Redis lose its data lately. Cheap to clone: clones share one
/// state. The default (no watch reporting into it) is always ready.
#[derive(Clone, Default)]
pub struct EpochStatus {
    inner: Arc<Mutex<StatusInner>>,
}

#[derive(Default)]
struct StatusInner {
    marker: Option<String>,
    last: Option<LastChange>,
    changes: u64,
}

struct LastChange {
    change: EpochChange,
    at: Instant,
    unready_for: Duration,
}

impl fmt::Debug for EpochStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpochStatus")
            .field("marker", &self.marker())
            .field("changes", &self.changes())
            .field("not_ready", &self.not_ready_reason())
            .finish()
    }
}

impl EpochStatus {
    /// Why this process is not ready, while it is within `unready_for` of the last epoch
    /// change: e.g. `redis lost its data (epoch marker missing) 12 s ago`.
    #[must_use]
    pub fn not_ready_reason(&self) -> Option<String> {
        self.reason_at(Instant::now())
    }

    /// Epoch changes seen since the process started.
    #[must_use]
    pub fn changes(&self) -> u64 {
        self.lock().changes
    }

    /// The marker as last read (`None` before the first read answered).
    #[must_use]
    pub fn marker(&self) -> Option<String> {
        self.lock().marker.clone()
    }

    fn reason_at(&self, now: Instant) -> Option<String> {
        let inner = self.lock();
        let last = inner.last.as_ref()?;
        let ago = now.saturating_duration_since(last.at);
        (ago < last.unready_for).then(|| {
            format!(
                "redis lost its data ({}) {} s ago",
                last.change.summary(),
                ago.as_secs()
            )
        })
    }

    fn saw(&self, marker: &str) {
        let mut inner = self.lock();
        if inner.marker.as_deref() != Some(marker) {
            inner.marker = Some(marker.to_owned());
        }
    }

    fn record(&self, change: EpochChange, at: Instant, unready_for: Duration) {
        let mut inner = self.lock();
        inner.changes += 1;
        inner.last = Some(LastChange {
            change,
            at,
            unready_for,
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StatusInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reads the epoch marker at start and then every period, until cancelled; see the module
/// docs. Build it, keep [`EpochWatch::status`] for the probes, and run [`EpochWatch::run`] in
/// a task you own.
#[derive(Clone)]
pub struct EpochWatch {
    conn: Conn,
    key: String,
    script: Script,
    period: Duration,
    unready_for: Duration,
    counter: Option<metrics::Counter>,
    status: EpochStatus,
}

impl fmt::Debug for EpochWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpochWatch")
            .field("key", &self.key)
            .field("period", &self.period)
            .field("unready_for", &self.unready_for)
            .finish_non_exhaustive()
    }
}

impl EpochWatch {
    /// A watch of `<prefix>:epoch` on `conn`, every [`DEFAULT_EPOCH_PERIOD`], not ready for
    /// [`DEFAULT_EPOCH_UNREADY_FOR`] after a change, counting changes in
    /// [`EPOCH_CHANGES_METRIC`] of the global metrics recorder.
    #[must_use]
    pub fn new(conn: impl Into<Conn>, prefix: &str) -> Self {
        Self {
            conn: conn.into(),
            key: format!("{prefix}:epoch"),
            script: Script::new(CHECK),
            period: DEFAULT_EPOCH_PERIOD,
            unready_for: DEFAULT_EPOCH_UNREADY_FOR,
            counter: None,
            status: EpochStatus::default(),
        }
    }

    /// Reads the marker every `period` (at least 10 ms).
    #[must_use]
    pub fn with_period(mut self, period: Duration) -> Self {
        self.period = period.max(Duration::from_millis(10));
        self
    }

    /// Stays not ready this long after a change.
    #[must_use]
    pub fn with_unready_for(mut self, unready_for: Duration) -> Self {
        self.unready_for = unready_for;
        self
    }

    /// Counts changes in `counter` instead of the global recorder's
    /// [`EPOCH_CHANGES_METRIC`] (for a process that keeps its own recorder).
    #[must_use]
    pub fn with_counter(mut self, counter: metrics::Counter) -> Self {
        self.counter = Some(counter);
        self
    }

    /// Reports into `status` (one made before the watch, e.g. held by a server's state)
    /// instead of a status of its own.
    #[must_use]
    pub fn with_status(mut self, status: EpochStatus) -> Self {
        self.status = status;
        self
    }

    /// The handle the probes ask.
    #[must_use]
    pub fn status(&self) -> EpochStatus {
        self.status.clone()
    }

    /// The marker's key, `<prefix>:epoch`.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Reads the marker now and then every period until `stop` is cancelled. Redis errors
    /// are logged at debug and the read is tried again next period; nothing here panics or
    /// ends early.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut tracker = Tracker::default();
        let mut ticks = tokio::time::interval(self.period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = ticks.tick() => {}
            }
            let seen = tokio::select! {
                () = stop.cancelled() => break,
                seen = self.read() => seen,
            };
            match seen {
                Ok(seen) => {
                    let first = tracker.last.is_none();
                    let change = tracker.observe(seen);
                    let marker = tracker.last.as_deref().unwrap_or_default();
                    if first {
                        tracing::info!(
                            epoch.key = %self.key,
                            epoch.marker = marker,
                            "redis epoch marker recorded"
                        );
                    }
                    // The change first, so whoever sees the new marker sees the change too.
                    if let Some(change) = change {
                        self.report(change);
                    }
                    self.status.saw(marker);
                }
                Err(error) => tracing::debug!(
                    epoch.key = %self.key,
                    %error,
                    "could not read the redis epoch marker; trying again next period"
                ),
            }
        }
    }

    async fn read(&mut self) -> Result<Seen, redis::RedisError> {
        let fresh = uuid::Uuid::new_v4().to_string();
        let (created, value): (i64, String) = self
            .script
            .key(&self.key)
            .arg(fresh)
            .invoke_async(&mut self.conn)
            .await?;
        Ok(if created == 1 {
            Seen::Created(value)
        } else {
            Seen::Present(value)
        })
    }

    fn report(&self, change: EpochChange) {
        match &change {
            EpochChange::Missing { was, created } => tracing::error!(
                epoch.key = %self.key,
                epoch.was = %was,
                epoch.now = %created,
                epoch.unready_for = ?self.unready_for,
                "redis lost its data: the epoch marker was missing (redis restarted empty?) \
                 — tasks and jobs written before may be gone"
            ),
            EpochChange::Replaced { was, now } => tracing::error!(
                epoch.key = %self.key,
                epoch.was = %was,
                epoch.now = %now,
                epoch.unready_for = ?self.unready_for,
                "redis lost its data: the epoch marker changed (an older snapshot restored, a \
                 failover to a replica that had not received it, or another vidq process found \
                 it missing first) — tasks and jobs written before may be gone"
            ),
        }
        match &self.counter {
            Some(counter) => counter.increment(1),
            None => metrics::counter!(EPOCH_CHANGES_METRIC).increment(1),
        }
        self.status.record(change, Instant::now(), self.unready_for);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn present(v: &str) -> Seen {
        Seen::Present(v.to_owned())
    }

    fn created(v: &str) -> Seen {
        Seen::Created(v.to_owned())
    }

    #[test]
    fn the_first_read_only_records_even_when_it_created_the_marker() {
        let mut fresh = Tracker::default();
        assert_eq!(fresh.observe(created("a")), None);
        assert_eq!(fresh.observe(present("a")), None);
        let mut existing = Tracker::default();
        assert_eq!(existing.observe(present("a")), None);
        assert_eq!(existing.observe(present("a")), None);
    }

    #[test]
    fn a_missing_marker_later_is_a_change_once() {
        let mut tracker = Tracker::default();
        tracker.observe(present("a"));
        assert_eq!(
            tracker.observe(created("b")),
            Some(EpochChange::Missing {
                was: "a".into(),
                created: "b".into()
            })
        );
        assert_eq!(tracker.observe(present("b")), None);
    }

    #[test]
    fn another_value_later_is_a_change_once() {
        let mut tracker = Tracker::default();
        tracker.observe(created("a"));
        assert_eq!(
            tracker.observe(present("c")),
            Some(EpochChange::Replaced {
                was: "a".into(),
                now: "c".into()
            })
        );
        assert_eq!(tracker.observe(present("c")), None);
    }

    #[test]
    fn the_status_is_not_ready_within_unready_for_of_the_last_change() {
        let status = EpochStatus::default();
        let t0 = Instant::now();
        assert_eq!(status.reason_at(t0), None);
        assert_eq!(status.changes(), 0);
        let change = EpochChange::Missing {
            was: "a".into(),
            created: "b".into(),
        };
        status.record(change, t0, Duration::from_secs(60));
        assert_eq!(
            status.reason_at(t0 + Duration::from_secs(12)).as_deref(),
            Some("redis lost its data (epoch marker missing) 12 s ago")
        );
        assert_eq!(status.reason_at(t0 + Duration::from_secs(60)), None);
        assert_eq!(status.changes(), 1);

        let t1 = t0 + Duration::from_secs(100);
        let change = EpochChange::Replaced {
            was: "b".into(),
            now: "c".into(),
        };
        status.clone().record(change, t1, Duration::from_secs(5));
        assert_eq!(
            status.reason_at(t1).as_deref(),
            Some("redis lost its data (epoch marker changed) 0 s ago")
        );
        assert_eq!(status.reason_at(t1 + Duration::from_secs(5)), None);
        assert_eq!(status.changes(), 2);
    }
}
