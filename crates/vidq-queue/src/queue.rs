//! [`RedisQueue`]: the handle to one queue. It pushes tasks, reads depths, manages dead tasks,
//! and is the apalis backend a worker runs on (see `backend.rs`).

use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::WorkerState;
use crate::config::{MAX_BATCH, QueueConfig};
use crate::error::QueueError;
use crate::fair::Place;
use crate::leases::{Again, Delivery, HeldLeases, WorkerLeases};
use crate::sink::SinkState;
use crate::store::{PushState, Store};

/// A reliable Redis queue of tasks with payload `T`, and an apalis backend for it.
///
/// Cloning is cheap (the connection is shared); each clone used as a worker backend keeps its
/// own leases, buffer and background tasks. See the crate docs for an example.
pub struct RedisQueue<T> {
    pub(crate) store: Arc<Store>,
    pub(crate) held: Arc<HeldLeases>,
    pub(crate) worker: SyncCell<Option<WorkerState<T>>>,
    pub(crate) sink: SyncCell<SinkState>,
    _payload: PhantomData<fn() -> T>,
}

// Nothing in the queue is structurally pinned.
impl<T> Unpin for RedisQueue<T> {}

impl<T> Clone for RedisQueue<T> {
    fn clone(&self) -> Self {
        Self::from_store(self.store.clone())
    }
}

impl<T> std::fmt::Debug for RedisQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// How many tasks are in each state. Every figure is O(1) or O(log n) to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Depth {
    /// Due now, waiting for a worker.
    pub due: u64,
    /// Scheduled for later (including retries waiting out their backoff).
    pub scheduled: u64,
    /// Claimed by a worker (buffered or running).
    pub leased: u64,
    /// In the dead set.
    pub dead: u64,
    /// Paused ([`RedisQueue::pause`]): nothing is claimed, the figures above still count.
    pub paused: bool,
}

/// A task in the dead set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadTask {
    /// The task's id.
    pub id: String,
    /// Why it died.
    pub reason: String,
    /// When it died.
    pub died_at: SystemTime,
    /// Its payload as stored (JSON), which may no longer decode.
    pub payload: Vec<u8>,
}

/// Delays a task pushed through apalis's `TaskSink` by a millisecond-precise delay
/// (`TaskBuilder::new(args).data(RunAfter(delay))`), counted by Redis's clock from the push.
/// apalis's own `run_at` is an absolute time in whole seconds: the sink turns it into a delay
/// by the pushing host's clock, so prefer this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAfter(pub Duration);

/// What a push with a caller-chosen id did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// The task was stored under that id.
    Created,
    /// A dead task had that id: it is due again (payload kept), attempts counted from 1.
    Revived,
    /// A task with that id exists already; nothing changed.
    Exists(TaskState),
}

/// Where an existing task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Due or scheduled, waiting for a worker.
    Waiting,
    /// Claimed by a worker.
    Leased,
    /// In the dead set.
    Dead,
}

impl From<PushState> for Pushed {
    fn from(s: PushState) -> Self {
        match s {
            PushState::Created => Self::Created,
            PushState::Waiting => Self::Exists(TaskState::Waiting),
            PushState::Leased => Self::Exists(TaskState::Leased),
            PushState::Dead => Self::Exists(TaskState::Dead),
            PushState::Revived => Self::Revived,
        }
    }
}

/// Longest task id accepted.
const MAX_ID: usize = 512;

impl<T> RedisQueue<T> {
    fn from_store(store: Arc<Store>) -> Self {
        Self {
            store,
            held: Arc::default(),
            worker: SyncCell::new(None),
            sink: SyncCell::new(SinkState::default()),
            _payload: PhantomData,
        }
    }

    /// Connect to Redis at `url` (reconnecting on its own after failures).
    pub async fn connect(url: &str, config: QueueConfig) -> Result<Self, QueueError> {
        Self::connect_with(&vidq_redis::RedisSettings::standalone(url), config).await
    }

    /// Connect to the Redis deployment of `settings` (standalone, cluster or Sentinel).
    pub async fn connect_with(
        settings: &vidq_redis::RedisSettings,
        config: QueueConfig,
    ) -> Result<Self, QueueError> {
        let redis = vidq_redis::Redis::connect(settings)
            .await
            .map_err(|e| match e {
                vidq_redis::RedisError::Redis { source, .. } => QueueError::Redis(source),
                other => QueueError::Config(other.to_string()),
            })?;
        Self::from_redis(&redis, config)
    }

    /// Build on the process's connection layer (its connection and sharded wake-ups).
    pub fn from_redis(redis: &vidq_redis::Redis, config: QueueConfig) -> Result<Self, QueueError> {
        config.validate()?;
        Ok(Self::from_store(Arc::new(Store::new(
            redis.clone(),
            config,
        ))))
    }

    /// The queue's settings.
    #[must_use]
    pub fn settings(&self) -> &QueueConfig {
        &self.store.config
    }

    /// Client round trips made through this queue's connection so far (all clones).
    #[must_use]
    pub fn round_trips(&self) -> u64 {
        self.store.round_trips()
    }

    /// The leases this handle holds as a worker backend, to hand back after a drain timeout.
    #[must_use]
    pub fn leases(&self) -> WorkerLeases {
        WorkerLeases {
            store: self.store.clone(),
            held: self.held.clone(),
        }
    }

    /// Depth of each state and whether the queue is paused, in one round trip.
    pub async fn depth(&self) -> Result<Depth, QueueError> {
        let [due, scheduled, leased, dead, paused] = self.store.depth().await?;
        Ok(Depth {
            due,
            scheduled,
            leased,
            dead,
            paused: paused == 1,
        })
    }

    /// A page of the dead set, newest first (`limit` is capped at 1000).
    pub async fn dead_tasks(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<DeadTask>, QueueError> {
        let page = self.store.dead_page(offset, limit).await?;
        Ok(page
            .into_iter()
            .map(|d| DeadTask {
                id: d.id,
                reason: d.reason,
                died_at: UNIX_EPOCH + Duration::from_millis(d.died_ms),
                payload: d.payload,
            })
            .collect())
    }

    /// Put one dead task back in the queue, due now, with its attempts reset.
    /// `false` if no dead task has this id.
    pub async fn retry_dead(&self, id: &str) -> Result<bool, QueueError> {
        Ok(self.store.dead_retry(Some(id), 1).await? == 1)
    }

    /// Put every task dead now back in the queue, in batches of 500; returns how many.
    /// Stops at the dead set's size read at the start: tasks that die again meanwhile wait
    /// for the next call.
    pub async fn retry_all_dead(&self) -> Result<u64, QueueError> {
        let mut left = self.store.dead_count().await?;
        let mut total = 0;
        while left > 0 {
            let n = self
                .store
                .dead_retry(None, usize::try_from(left.min(500)).unwrap_or(500))
                .await?;
            if n == 0 {
                break;
            }
            total += n;
            left = left.saturating_sub(n);
        }
        Ok(total)
    }

    /// Delete every task dead now, in batches of 500; returns how many. Stops at the dead
    /// set's size read at the start.
    pub async fn purge_dead(&self) -> Result<u64, QueueError> {
        let mut left = self.store.dead_count().await?;
        let mut total = 0;
        while left > 0 {
            let n = self
                .store
                .dead_purge(usize::try_from(left.min(500)).unwrap_or(500))
                .await?;
            if n == 0 {
                break;
            }
            total += n;
            left = left.saturating_sub(n);
        }
        Ok(total)
    }

    /// Settle a delivery claimed with [`RedisQueue::claim`] as done. `false` when the
    /// delivery no longer holds its lease (it expired and the task was claimed again, or was
    /// settled already): then nothing changes.
    pub async fn ack(&self, delivery: &Delivery) -> Result<bool, QueueError> {
        let flags = self
            .store
            .ack(&[(delivery.id.as_str(), delivery.token.as_str(), None)])
            .await?;
        Ok(flags.first().copied().unwrap_or(false))
    }

    /// Hand a delivery claimed with [`RedisQueue::claim`] back to the queue, due now: neither
    /// a failure nor a crash. `false` when it no longer holds its lease; retrying after a
    /// lost reply is safe (the next claim issues a new token).
    pub async fn release(&self, delivery: &Delivery) -> Result<bool, QueueError> {
        let items = [(delivery.id.clone(), delivery.token.clone())];
        Ok(self.store.release(&items).await? == 1)
    }

    /// Settle a delivery claimed with [`RedisQueue::claim`] by running the same task again
    /// `after` from now (see [`Reschedule`](crate::Reschedule)): payload kept, attempts
    /// counted from 1 again, fenced like [`RedisQueue::ack`]. `false` when the delivery no
    /// longer holds its lease.
    pub async fn reschedule(
        &self,
        delivery: &Delivery,
        after: Duration,
    ) -> Result<bool, QueueError> {
        let flags = self
            .store
            .ack(&[(
                delivery.id.as_str(),
                delivery.token.as_str(),
                Some(Again::After(after)),
            )])
            .await?;
        Ok(flags.first().copied().unwrap_or(false))
    }
}

impl<T> RedisQueue<T> {
    /// Settle a delivery claimed with [`RedisQueue::claim`] like
    /// [`Reschedule::hold_queue`](crate::Reschedule::hold_queue): back in its place, and the
    /// (fair) queue held for `after`. `false` when the delivery no longer holds its lease.
    pub async fn hold_queue(
        &self,
        delivery: &Delivery,
        after: Duration,
    ) -> Result<bool, QueueError> {
        let flags = self
            .store
            .ack(&[(
                delivery.id.as_str(),
                delivery.token.as_str(),
                Some(Again::Hold(after)),
            )])
            .await?;
        Ok(flags.first().copied().unwrap_or(false))
    }
}

impl<T> RedisQueue<T> {
    /// The key whose presence pauses the queue: `<prefix>:{<queue>}:paused`, in the queue's
    /// slot (`claim.lua` and `claim_fair.lua` derive it from the `due` key).
    fn paused_key(&self) -> String {
        let due = &self.store.keys.due;
        format!("{}paused", due.strip_suffix("due").unwrap_or(due))
    }

    /// Pause the queue: until [`RedisQueue::resume`], no worker claims its tasks (claims
    /// return nothing and workers wait their idle poll, or a wake-up), while pushes, depth,
    /// and the tasks already leased (renewed, settled, retried) go on. Wakes idle workers.
    /// `true` if it was running.
    pub async fn pause(&self) -> Result<bool, QueueError> {
        self.set_paused(true).await
    }

    /// Resume a paused queue and wake idle workers so they claim at once. `true` if it was
    /// paused.
    pub async fn resume(&self) -> Result<bool, QueueError> {
        self.set_paused(false).await
    }

    /// Whether the queue is paused.
    pub async fn is_paused(&self) -> Result<bool, QueueError> {
        let mut conn = self.store.redis.conn();
        let n: u64 = redis::cmd("EXISTS")
            .arg(self.paused_key())
            .query_async(&mut conn)
            .await?;
        Ok(n == 1)
    }

    async fn set_paused(&self, paused: bool) -> Result<bool, QueueError> {
        let mut conn = self.store.redis.conn();
        let key = self.paused_key();
        let mut pipe = redis::pipe();
        pipe.atomic();
        if paused {
            pipe.cmd("SET").arg(&key).arg("1").arg("NX");
        } else {
            pipe.cmd("DEL").arg(&key);
        }
        pipe.cmd("SPUBLISH")
            .arg(&self.store.keys.wake)
            .arg("")
            .ignore();
        let (changed,): (redis::Value,) = pipe.query_async(&mut conn).await?;
        Ok(match changed {
            redis::Value::Int(n) => n == 1,
            redis::Value::Okay => true,
            _ => false,
        })
    }

    /// End the queue's hold (see [`Reschedule::hold_queue`](crate::Reschedule::hold_queue))
    /// now, because the busy resource freed up, and wake idle workers: the next task in the
    /// fair order goes at once. `true` if the queue was held.
    pub async fn end_hold(&self) -> Result<bool, QueueError> {
        self.store.end_hold().await
    }

    /// How long the queue's hold (see [`RedisQueue::end_hold`]) still lasts, by Redis's clock;
    /// `None` when the queue is not held.
    pub async fn held_for(&self) -> Result<Option<Duration>, QueueError> {
        self.store.held_for().await
    }
}

impl<T: Serialize> RedisQueue<T> {
    /// Push one task under the caller's id `id`, due after `delay` (millisecond precision,
    /// by Redis's clock). If a task with this id exists — due, scheduled, leased or dead —
    /// nothing changes and the answer says where it is: one live task per id, however often
    /// it is pushed.
    pub async fn enqueue_unique(
        &self,
        id: &str,
        payload: &T,
        delay: Duration,
    ) -> Result<Pushed, QueueError> {
        self.push_one(id, payload, delay, false).await
    }

    /// Make sure a live task with the id `id` exists: like [`RedisQueue::enqueue_unique`],
    /// except that a task of that id in the dead set goes back to due after `delay` (payload
    /// kept, attempts counted from 1), in the same atomic step. For re-enqueueing a step that
    /// must run (a reconciler, an operator's retry).
    pub async fn enqueue_or_revive(
        &self,
        id: &str,
        payload: &T,
        delay: Duration,
    ) -> Result<Pushed, QueueError> {
        self.push_one(id, payload, delay, true).await
    }

    /// [`RedisQueue::enqueue_unique`] into `place` (its group and priority) of a fair queue
    /// (see [`QueueConfig::with_fair_share`]). A task of that id that exists keeps its place.
    pub async fn enqueue_unique_in(
        &self,
        id: &str,
        payload: &T,
        delay: Duration,
        place: Place<'_>,
    ) -> Result<Pushed, QueueError> {
        self.push_placed(id, payload, delay, Some(place), false)
            .await
    }

    /// [`RedisQueue::enqueue_or_revive`] into `place` (its group and priority) of a fair
    /// queue. A task of that id that exists (or is revived) keeps its place.
    pub async fn enqueue_or_revive_in(
        &self,
        id: &str,
        payload: &T,
        delay: Duration,
        place: Place<'_>,
    ) -> Result<Pushed, QueueError> {
        self.push_placed(id, payload, delay, Some(place), true)
            .await
    }

    async fn push_one(
        &self,
        id: &str,
        payload: &T,
        delay: Duration,
        revive: bool,
    ) -> Result<Pushed, QueueError> {
        self.push_placed(id, payload, delay, None, revive).await
    }

    async fn push_placed(
        &self,
        id: &str,
        payload: &T,
        delay: Duration,
        place: Option<Place<'_>>,
        revive: bool,
    ) -> Result<Pushed, QueueError> {
        if id.is_empty() || id.len() > MAX_ID {
            return Err(QueueError::InvalidId(id.to_owned()));
        }
        let place = place.map(|p| p.encode()).transpose()?;
        let item = (id.to_owned(), delay, encode(payload)?);
        let got = self
            .store
            .push_placed(&[item], place.as_ref().map(std::slice::from_ref), revive)
            .await?;
        got.first()
            .copied()
            .map(Pushed::from)
            .ok_or_else(|| QueueError::Protocol("empty push reply".to_owned()))
    }

    /// Push one task under a fresh random id, due now. Returns its id.
    pub async fn enqueue(&self, payload: &T) -> Result<String, QueueError> {
        self.enqueue_after(payload, Duration::ZERO).await
    }

    /// Push one task under a fresh random id, due after `delay` (millisecond precision, by
    /// Redis's clock). Returns its id.
    pub async fn enqueue_after(&self, payload: &T, delay: Duration) -> Result<String, QueueError> {
        let id = new_id();
        match self
            .store
            .push(&[(id.clone(), delay, encode(payload)?)], false)
            .await?[..]
        {
            [PushState::Created] => Ok(id),
            _ => Err(QueueError::IdTaken(id)),
        }
    }

    /// Push many tasks due now under fresh random ids, atomically per 1,000, one round trip
    /// per 1,000. Returns their ids.
    pub async fn enqueue_batch(&self, payloads: &[T]) -> Result<Vec<String>, QueueError> {
        let items = payloads
            .iter()
            .map(|p| Ok((new_id(), Duration::ZERO, encode(p)?)))
            .collect::<Result<Vec<_>, QueueError>>()?;
        let ids: Vec<String> = items.iter().map(|i| i.0.clone()).collect();
        for chunk in items.chunks(MAX_BATCH) {
            check_created(chunk, &self.store.push(chunk, false).await?)?;
        }
        Ok(ids)
    }
}

/// Random ids that a push found taken (a collision): an error naming the first.
pub(crate) fn check_created(
    items: &[(String, Duration, Vec<u8>)],
    states: &[PushState],
) -> Result<(), QueueError> {
    match items
        .iter()
        .zip(states)
        .find(|(_, s)| **s != PushState::Created)
    {
        Some((item, _)) => Err(QueueError::IdTaken(item.0.clone())),
        None => Ok(()),
    }
}

impl<T: DeserializeOwned> RedisQueue<T> {
    /// Claim up to `max` due tasks by hand (outside an apalis worker). Each must be settled
    /// with [`RedisQueue::ack`] before its lease runs out, or it will be delivered again.
    /// Payloads that do not decode go to the dead set.
    pub async fn claim(&self, max: usize) -> Result<Vec<(Delivery, T)>, QueueError> {
        let reply = self.store.claim(max).await?;
        crate::backend::decode_all(&self.store, reply.tasks, reply.now)
            .await
            .map(|tasks| tasks.into_iter().collect())
    }
}

pub(crate) fn encode<T: Serialize>(payload: &T) -> Result<Vec<u8>, QueueError> {
    serde_json::to_vec(payload).map_err(QueueError::Encode)
}

/// A random 128-bit id in base 62 (at most 22 characters).
pub(crate) fn new_id() -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut n: u128 = rand::random();
    let mut out = Vec::with_capacity(22);
    loop {
        out.push(ALPHABET[(n % 62) as usize]);
        n /= 62;
        if n == 0 {
            break;
        }
    }
    String::from_utf8(out).unwrap_or_default()
}

/// A `Mutex` used only through `&mut self`, which makes its content `Sync` at no cost.
pub(crate) struct SyncCell<X>(Mutex<X>);

impl<X> SyncCell<X> {
    pub(crate) fn new(x: X) -> Self {
        Self(Mutex::new(x))
    }

    pub(crate) fn get(&mut self) -> &mut X {
        self.0.get_mut().unwrap_or_else(PoisonError::into_inner)
    }
}
