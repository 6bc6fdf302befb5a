//! The tasks a worker runs beside apalis: lease renewal, the ack batcher, and the wake-up
//! listener. All are owned by [`Background`] and stop when it is dropped or closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Context;

use futures::StreamExt;
use futures::task::AtomicWaker;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::leases::{Again, HeldLeases, LossCause};
use crate::store::Store;

/// Set by the wake-up listener when work became due; read by the worker's `poll_next`.
#[derive(Debug, Default)]
pub(crate) struct WakeSignal {
    flag: AtomicBool,
    waker: AtomicWaker,
}

impl WakeSignal {
    pub(crate) fn wake(&self) {
        self.flag.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// True (once) if a wake-up arrived since the last call.
    pub(crate) fn take(&self) -> bool {
        self.flag.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn register(&self, cx: &Context<'_>) {
        self.waker.register(cx.waker());
    }
}

/// One ack (or reschedule, with `again`) waiting for the batcher; the reply is
/// `Some(applied)` or `None` if Redis failed.
pub(crate) struct AckMsg {
    pub(crate) id: String,
    pub(crate) token: String,
    pub(crate) again: Option<Again>,
    pub(crate) reply: oneshot::Sender<Option<bool>>,
}

/// Owner of a worker's background tasks.
#[derive(Debug)]
pub(crate) struct Background {
    cancel: CancellationToken,
    handles: Vec<JoinHandle<()>>,
}

impl Background {
    pub(crate) fn spawn(
        store: &Arc<Store>,
        held: &Arc<HeldLeases>,
        wake: &Arc<WakeSignal>,
        acks: mpsc::UnboundedReceiver<AckMsg>,
    ) -> Self {
        let cancel = CancellationToken::new();
        let handles = vec![
            tokio::spawn(renew_loop(store.clone(), held.clone(), cancel.clone())),
            tokio::spawn(ack_batcher(store.clone(), acks, cancel.clone())),
            tokio::spawn(wake_listener(store.clone(), wake.clone(), cancel.clone())),
        ];
        Self { cancel, handles }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.cancel.cancel();
        for h in &self.handles {
            h.abort();
        }
    }
}

async fn renew_loop(store: Arc<Store>, held: Arc<HeldLeases>, cancel: CancellationToken) {
    let every = store.config.renew_every;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let live = held.live();
        if live.is_empty() {
            continue;
        }
        let sent = tokio::time::Instant::now();
        let reply = store.renew(&live).await;
        if let Err(e) = &reply {
            tracing::warn!(queue = %store.config.queue, error = %e, "lease renewal failed");
        }
        // A renewal slower than a tick leaves less time before the next one.
        let next_in = every.saturating_sub(sent.elapsed()) + every / 4;
        let lost = held.renewed(sent, store.config.lease, next_in, &live, reply.ok());
        for (id, cause) in lost {
            let why = match cause {
                LossCause::TakenOver => "the lease expired and the task was taken back",
                LossCause::NotRenewed => "the lease could not be renewed before it would expire",
            };
            tracing::warn!(
                queue = %store.config.queue, task.id = %id, reason = why,
                "lease lost: the running task is stopped; it runs again from the queue"
            );
            metrics::counter!("vidq_queue_leases_lost_total", "queue" => store.config.queue.clone())
                .increment(1);
        }
    }
}

async fn ack_batcher(
    store: Arc<Store>,
    mut rx: mpsc::UnboundedReceiver<AckMsg>,
    cancel: CancellationToken,
) {
    let max = store.config.ack_batch;
    let mut batch = Vec::with_capacity(max);
    loop {
        let n = tokio::select! {
            () = cancel.cancelled() => return,
            n = rx.recv_many(&mut batch, max) => n,
        };
        if n == 0 {
            return;
        }
        let items: Vec<(&str, &str, Option<Again>)> = batch
            .iter()
            .map(|m| (m.id.as_str(), m.token.as_str(), m.again))
            .collect();
        let result = store.ack(&items).await;
        drop(items);
        match result {
            Ok(flags) => {
                for (msg, ok) in batch.drain(..).zip(flags) {
                    let _ = msg.reply.send(Some(ok));
                }
            }
            Err(e) => {
                tracing::warn!(queue = %store.config.queue, error = %e, "ack batch failed; acks will be retried");
                for msg in batch.drain(..) {
                    let _ = msg.reply.send(None);
                }
            }
        }
    }
}

async fn wake_listener(store: Arc<Store>, wake: Arc<WakeSignal>, cancel: CancellationToken) {
    // Sharded (SSUBSCRIBE on the node holding the wake channel's slot); it subscribes again
    // on its own after a lost connection or a failover, saying so with `Subscribed`.
    let mut deliveries = store.redis.subscribe_sharded(vec![store.keys.wake.clone()]);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            delivery = deliveries.next() => match delivery {
                // A message, or (re)subscribed: anything pushed meanwhile — look once.
                Some(_) => wake.wake(),
                None => return,
            },
        }
    }
}
