//! The leases one worker holds (claimed tasks, buffered or running), which its renewal task
//! keeps alive and which can be handed back when the worker stops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::error::QueueError;
use crate::store::Store;

/// A delivery number is `round * ROUND + attempt`; the scripts use the same constant.
pub(crate) const ROUND: u64 = 1_000_000;

/// One delivery of a task: its id, its fencing token and when it was due.
///
/// The backend puts it in every task's data, so a handler can take `Data<Delivery>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Delivery {
    /// The task's id in the queue.
    pub id: String,
    /// The fencing token: it grows with every delivery of the task and never repeats, so a
    /// worker that lost its lease cannot settle a later delivery.
    pub number: u64,
    /// When this delivery was due (Unix ms): its enqueue or schedule time, or the time an
    /// expired lease was taken back.
    pub due_ms: u64,
}

impl Delivery {
    /// 1 for the first delivery, 2 for the second, ...; counted from 1 again after the
    /// task was [rescheduled](Reschedule) or retried from the dead set.
    #[must_use]
    pub fn attempt(&self) -> u64 {
        self.number % ROUND
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
pub struct Reschedule(Arc<Mutex<Option<Duration>>>);

impl Reschedule {
    /// Run this task again `delay` from now (millisecond precision) once the handler returns
    /// `Ok`. A second call replaces the first.
    pub fn after(&self, delay: Duration) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(delay);
    }

    /// The delay asked for, if any (and clears it).
    pub(crate) fn take(&self) -> Option<Duration> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

#[derive(Debug, Clone, Copy)]
struct Held {
    delivery: u64,
    /// The task's future was dropped before it finished (drain timeout): stop renewing.
    abandoned: bool,
    /// The task finished and its outcome is being written: the lease is about to go, so a
    /// renewal that finds it gone is no loss.
    settling: bool,
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

    pub(crate) fn hold(&self, d: &Delivery) {
        self.lock().insert(
            d.id.clone(),
            Held {
                delivery: d.number,
                abandoned: false,
                settling: false,
            },
        );
    }

    /// Forget a lease, unless a newer delivery of the same id replaced it.
    pub(crate) fn forget(&self, d: &Delivery) {
        let mut map = self.lock();
        if map.get(&d.id).is_some_and(|h| h.delivery == d.number) {
            map.remove(&d.id);
        }
    }

    pub(crate) fn abandon(&self, d: &Delivery) {
        if let Some(h) = self.lock().get_mut(&d.id)
            && h.delivery == d.number
        {
            h.abandoned = true;
        }
    }

    /// The task finished; its ack, retry or dead-lettering is being written.
    pub(crate) fn settling(&self, d: &Delivery) {
        if let Some(h) = self.lock().get_mut(&d.id)
            && h.delivery == d.number
        {
            h.settling = true;
        }
    }

    /// Of `ids` reported missing by a renewal, those this worker still holds and was not
    /// settling: leases really lost (expired and possibly delivered elsewhere).
    pub(crate) fn really_lost(&self, ids: Vec<String>) -> Vec<String> {
        let map = self.lock();
        ids.into_iter()
            .filter(|id| map.get(id).is_some_and(|h| !h.settling && !h.abandoned))
            .collect()
    }

    /// Leases to renew.
    pub(crate) fn live(&self) -> Vec<(String, u64)> {
        self.lock()
            .iter()
            .filter(|(_, h)| !h.abandoned && !h.settling)
            .map(|(id, h)| (id.clone(), h.delivery))
            .collect()
    }

    fn take_all(&self) -> Vec<(String, u64)> {
        self.lock()
            .drain()
            .map(|(id, h)| (id, h.delivery))
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

    /// Return every lease still held to the queue; the deliveries stay counted. Leases that
    /// were meanwhile acked or taken over are left alone (fenced). Returns how many went back.
    pub async fn hand_back(&self) -> Result<u64, QueueError> {
        let items = self.held.take_all();
        if items.is_empty() {
            return Ok(0);
        }
        self.store.release(&items, false).await
    }
}
