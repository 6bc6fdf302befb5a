//! The leases one worker holds (claimed tasks, buffered or running), which its renewal task
//! keeps alive and which can be handed back when the worker stops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::QueueError;
use crate::store::Store;

/// One delivery of a task: its id, its fencing token, its attempt and when it was due.
///
/// The backend puts it in every task's data, so a handler can take `Data<Delivery>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Delivery {
    /// The task's id in the queue.
    pub id: String,
    /// The fencing token of this delivery, issued by the claim script: it never repeats for
    /// a task — not after a lost reply, not after Redis lost recent writes (it carries
    /// Redis's clock) — so a worker that lost its lease cannot settle a later delivery.
    pub token: String,
    /// 1 for the first attempt, 2 after one handled failure, ...; counted from 1 again after
    /// the task was [rescheduled](Reschedule) or retried from the dead set. A delivery whose
    /// worker vanished is not an attempt (see `QueueConfig::max_deliveries`).
    pub attempt: u64,
    /// When this delivery was due (Redis time, Unix ms): its push or schedule time, or the
    /// time an expired lease was taken back.
    pub due_ms: u64,
    /// When it was claimed (Redis time, Unix ms); `claimed_ms - due_ms` is how late it ran.
    pub claimed_ms: u64,
}

impl Delivery {
    /// How late the delivery was claimed, by Redis's clock.
    #[must_use]
    pub fn lateness(&self) -> Duration {
        Duration::from_millis(self.claimed_ms.saturating_sub(self.due_ms))
    }
}

/// The lease of the running delivery, in every task's data (`Data<Lease>`): lost when the
/// renewal finds it taken over or expired, or when it could not be renewed in time. The
/// backend then cancels the handler (drops its future) itself; a handler that spawned work it
/// does not own can watch [`Lease::lost`] before each side effect.
#[derive(Debug, Clone, Default)]
pub struct Lease(pub(crate) CancellationToken);

impl Lease {
    /// True once the lease is lost: whatever the handler does next may race another holder.
    #[must_use]
    pub fn is_lost(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Resolves when the lease is lost.
    pub async fn lost(&self) {
        self.0.cancelled().await;
    }
}

/// Lets a handler end a successful run by running the *same* task again later, instead of
/// finishing it: "not ready yet, look again in 5 s".
///
/// The backend puts a fresh one in every task's data (`Data<Reschedule>`). If the handler
/// calls [`Reschedule::after`] and then returns `Ok`, the task goes back to the queue with
/// its payload, due after the delay, in the same fenced script call that would have acked it
/// (batched with other acks): the step is atomic, costs no extra round trip, and its next
/// delivery counts as attempt 1. If the handler returns an error, the request is ignored and
/// the retry policy applies.
///
/// ```
/// use std::time::Duration;
/// use vidq_queue::{Reschedule, TaskError};
///
/// async fn poll(ready: bool, again: Reschedule) -> Result<(), TaskError> {
///     if !ready {
///         again.after(Duration::from_secs(5));
///     }
///     Ok(())
/// }
/// # let _ = poll;
/// ```
#[derive(Debug, Clone, Default)]
pub struct Reschedule(Arc<Mutex<Option<Again>>>);

/// How a successful run asked to run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Again {
    /// The same task, due after the delay.
    After(Duration),
    /// The same task, due at once in its place, with the whole (fair) queue held that long.
    Hold(Duration),
}

impl Reschedule {
    /// Run this task again `delay` from now (millisecond precision) once the handler returns
    /// `Ok`. A second call replaces the first.
    pub fn after(&self, delay: Duration) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(Again::After(delay));
    }

    /// On a fair queue: "nothing in this queue can go now" (a resource every task needs is
    /// busy). Once the handler returns `Ok`, the task goes back to its place — its group's
    /// turn and its order within the group kept, as if it had not been claimed — and no
    /// claim takes any task of the queue for `delay` (the hold ends early for nobody; a later
    /// hold may extend it). On any other queue it is [`Reschedule::after`].
    pub fn hold_queue(&self, delay: Duration) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(Again::Hold(delay));
    }

    /// What was asked for, if anything (and clears it).
    pub(crate) fn take(&self) -> Option<Again> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

#[derive(Debug)]
struct Held {
    token: String,
    /// Until when (this host's monotonic clock) the lease surely holds: the send time of the
    /// claim or of the last renewal that found it, plus the lease.
    valid_until: Instant,
    lost: CancellationToken,
    /// The task's future was dropped before it finished (drain timeout): stop renewing.
    abandoned: bool,
    /// The task finished and its outcome is being written: the lease is about to go, so a
    /// renewal that finds it gone is no loss.
    settling: bool,
}

/// Why a held lease was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LossCause {
    /// The renewal found it gone: expired and taken back, or settled by someone else.
    TakenOver,
    /// Renewals failed (Redis unreachable) until it could expire before the next one.
    NotRenewed,
}

/// Leases held by one worker.
#[derive(Debug, Default)]
pub(crate) struct HeldLeases {
    map: Mutex<HashMap<String, Held>>,
}

impl HeldLeases {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Held>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hold a claimed delivery whose claim was sent at `sent`; its lease token.
    pub(crate) fn hold(&self, d: &Delivery, sent: Instant, lease: Duration) -> Lease {
        let lost = CancellationToken::new();
        self.lock().insert(
            d.id.clone(),
            Held {
                token: d.token.clone(),
                valid_until: sent + lease,
                lost: lost.clone(),
                abandoned: false,
                settling: false,
            },
        );
        Lease(lost)
    }

    fn with<R>(&self, d: &Delivery, f: impl FnOnce(&mut Held) -> R) -> Option<R> {
        let mut map = self.lock();
        map.get_mut(&d.id).filter(|h| h.token == d.token).map(f)
    }

    /// Forget a lease, unless a newer delivery of the same id replaced it.
    pub(crate) fn forget(&self, d: &Delivery) {
        let mut map = self.lock();
        if map.get(&d.id).is_some_and(|h| h.token == d.token) {
            map.remove(&d.id);
        }
    }

    pub(crate) fn abandon(&self, d: &Delivery) {
        self.with(d, |h| h.abandoned = true);
    }

    /// The task finished; its ack, retry or dead-lettering is being written.
    pub(crate) fn settling(&self, d: &Delivery) {
        self.with(d, |h| h.settling = true);
    }

    /// After a renewal sent at `sent`: the leases it renewed hold until `sent + lease`; those
    /// it reported missing (`lost_ids`) that this worker still runs are lost. Then, whether
    /// the renewal worked or not (`lost_ids` = `None`), every lease that could expire before
    /// the next renewal (`next_in`) is given up too. Returns the lost leases' ids and causes;
    /// their handlers are cancelled.
    pub(crate) fn renewed(
        &self,
        sent: Instant,
        lease: Duration,
        next_in: Duration,
        renewed: &[(String, String)],
        lost_ids: Option<Vec<String>>,
    ) -> Vec<(String, LossCause)> {
        let mut map = self.lock();
        let mut lost = Vec::new();
        if let Some(ids) = lost_ids {
            for id in &ids {
                if let Some(h) = map.get_mut(id)
                    && !h.settling
                    && !h.abandoned
                    && !h.lost.is_cancelled()
                {
                    h.lost.cancel();
                    lost.push((id.clone(), LossCause::TakenOver));
                }
            }
            for (id, token) in renewed {
                if let Some(h) = map.get_mut(id)
                    && &h.token == token
                    && !ids.contains(id)
                {
                    h.valid_until = h.valid_until.max(sent + lease);
                }
            }
        }
        let horizon = Instant::now() + next_in;
        for (id, h) in map.iter_mut() {
            if !h.settling && !h.abandoned && !h.lost.is_cancelled() && h.valid_until <= horizon {
                h.lost.cancel();
                lost.push((id.clone(), LossCause::NotRenewed));
            }
        }
        lost
    }

    /// Leases to renew.
    pub(crate) fn live(&self) -> Vec<(String, String)> {
        self.lock()
            .iter()
            .filter(|(_, h)| !h.abandoned && !h.settling && !h.lost.is_cancelled())
            .map(|(id, h)| (id.clone(), h.token.clone()))
            .collect()
    }

    fn take_all(&self) -> Vec<(String, String)> {
        self.lock()
            .drain()
            .filter(|(_, h)| !h.lost.is_cancelled())
            .map(|(id, h)| (id, h.token))
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The leases of one worker, for handing them back after a drain timeout.
///
/// Get it with [`RedisQueue::leases`](crate::RedisQueue::leases) before building the worker.
/// When the worker did not finish its in-flight tasks within the grace period and its future
/// was dropped, [`WorkerLeases::hand_back`] returns those tasks to the queue at once instead
/// of waiting for their leases to expire.
#[derive(Debug, Clone)]
pub struct WorkerLeases {
    pub(crate) store: Arc<Store>,
    pub(crate) held: Arc<HeldLeases>,
}

impl WorkerLeases {
    /// How many leases the worker holds now.
    #[must_use]
    pub fn count(&self) -> usize {
        self.held.len()
    }

    /// Return every lease still held to the queue (neither a failure nor a crash). Leases that
    /// were meanwhile acked or taken over are left alone (fenced). Returns how many went back.
    pub async fn hand_back(&self) -> Result<u64, QueueError> {
        let items = self.held.take_all();
        if items.is_empty() {
            return Ok(0);
        }
        self.store.release(&items).await
    }
}
