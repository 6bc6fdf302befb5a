//! [`RedisQueue`] as an apalis backend: claims in batches into a local buffer, sleeps on its
//! own clock until the next due time or a push wakes it, never returns an error from
//! `poll_next` (Redis failures are retried with backoff), and hands back unstarted leases on
//! close.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis_core::backend::finalize::Ephemeral;
use apalis_core::backend::{Backend, BackendConfig};
use apalis_core::task::Task;
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::task_id::TaskId;
use apalis_core::worker::context::WorkerContext;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::time::Sleep;

use crate::background::{AckMsg, Background, WakeSignal};
use crate::config::QueueConfig;
use crate::error::QueueError;
use crate::leases::{Delivery, HeldLeases, Reschedule};
use crate::middleware::AckLayer;
use crate::queue::RedisQueue;
use crate::store::{Finish, RawClaim, Store};

type BoxFuture<O> = Pin<Box<dyn Future<Output = O> + Send>>;

/// A claim's outcome, decoded.
pub(crate) struct Claimed<T> {
    tasks: Vec<Task<T>>,
    /// How long until the earliest due time or lease deadline, by Redis's clock.
    next_in: Option<Duration>,
    full: bool,
}

/// Per-worker state of a backend, created on first use.
pub(crate) struct WorkerState<T> {
    wake: Arc<WakeSignal>,
    acks_tx: mpsc::UnboundedSender<AckMsg>,
    acks_rx: Option<mpsc::UnboundedReceiver<AckMsg>>,
    background: Option<Background>,
    buffer: VecDeque<Task<T>>,
    claim: Option<BoxFuture<Result<Claimed<T>, QueueError>>>,
    /// When to claim next; `None` means now.
    next_claim: Option<Pin<Box<Sleep>>>,
    /// The last claim was full: more is probably due.
    more: bool,
    errors: u32,
    close: Option<BoxFuture<()>>,
    closed: bool,
}

impl<T> WorkerState<T> {
    fn new() -> Self {
        let (acks_tx, acks_rx) = mpsc::unbounded_channel();
        Self {
            wake: Arc::default(),
            acks_tx,
            acks_rx: Some(acks_rx),
            background: None,
            buffer: VecDeque::new(),
            claim: None,
            next_claim: None,
            more: false,
            errors: 0,
            close: None,
            closed: false,
        }
    }

    fn start(&mut self, store: &Arc<Store>, held: &Arc<HeldLeases>) {
        if self.background.is_none()
            && !self.closed
            && let Some(rx) = self.acks_rx.take()
        {
            self.background = Some(Background::spawn(store, held, &self.wake, rx));
        }
    }

    fn claimed(&mut self, c: Claimed<T>, config: &QueueConfig) {
        self.errors = 0;
        self.more = c.full;
        self.buffer.extend(c.tasks);
        self.next_claim = if c.full {
            None
        } else {
            let wait = c.next_in.unwrap_or(config.idle_poll).min(config.idle_poll);
            Some(Box::pin(tokio::time::sleep(wait)))
        };
    }

    fn failed(&mut self, e: &QueueError, queue: &str) {
        self.errors = self.errors.saturating_add(1);
        self.more = false;
        let wait = Duration::from_millis(100)
            .saturating_mul(2u32.saturating_pow(self.errors.min(5)))
            .min(Duration::from_secs(2));
        if self.errors == 1 || self.errors.is_multiple_of(20) {
            tracing::warn!(queue, error = %e, failures = self.errors, "claiming tasks failed; retrying");
        }
        self.next_claim = Some(Box::pin(tokio::time::sleep(wait)));
    }
}

/// Decode claimed payloads; the ones that do not decode go to the dead set.
pub(crate) async fn decode_all<T: DeserializeOwned>(
    store: &Store,
    raw: Vec<RawClaim>,
    claimed_ms: u64,
) -> Result<Vec<(Delivery, T)>, QueueError> {
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        let delivery = Delivery {
            id: r.id,
            token: r.token,
            attempt: r.attempt,
            due_ms: r.due_ms,
            claimed_ms,
        };
        match serde_json::from_slice::<T>(&r.payload) {
            Ok(args) => out.push((delivery, args)),
            Err(e) => {
                let reason = format!("undecodable payload: {e}");
                tracing::warn!(queue = %store.config.queue, task.id = %delivery.id, %reason, "task moved to the dead set");
                if let Err(e) = store
                    .finish(
                        &delivery.id,
                        &delivery.token,
                        Finish::Dead { reason: &reason },
                    )
                    .await
                {
                    // Its lease expires and a later claim tries again.
                    tracing::warn!(queue = %store.config.queue, task.id = %delivery.id, error = %e, "could not bury an undecodable task");
                }
            }
        }
    }
    Ok(out)
}

fn start_claim<T: DeserializeOwned + Send + 'static>(
    store: Arc<Store>,
    held: Arc<HeldLeases>,
) -> BoxFuture<Result<Claimed<T>, QueueError>> {
    Box::pin(async move {
        let max = store.config.claim_batch;
        let sent = tokio::time::Instant::now();
        let reply = store.claim(max).await?;
        let full = reply.tasks.len() >= max;
        let next_in = reply
            .next
            .map(|n| Duration::from_millis(n.saturating_sub(reply.now)));
        let decoded = decode_all::<T>(&store, reply.tasks, reply.now).await?;
        let tasks = decoded
            .into_iter()
            .map(|(d, args)| {
                let lease = held.hold(&d, sent, store.config.lease);
                TaskBuilder::new(args)
                    .task_id(TaskId::from_string(d.id.clone()))
                    // apalis adds one when the task starts: handlers see 1, 2, 3...
                    .attempt(usize::try_from(d.attempt.saturating_sub(1)).unwrap_or(usize::MAX))
                    .data(d)
                    .data(lease)
                    .data(Reschedule::default())
                    .build()
            })
            .collect();
        Ok(Claimed {
            tasks,
            next_in,
            full,
        })
    })
}

impl<T: DeserializeOwned + Send + 'static> RedisQueue<T> {
    fn state(&mut self) -> (&mut WorkerState<T>, &Arc<Store>, &Arc<HeldLeases>) {
        let st = self.worker.get().get_or_insert_with(WorkerState::new);
        st.start(&self.store, &self.held);
        (st, &self.store, &self.held)
    }
}

impl<T: DeserializeOwned + Send + 'static> Backend for RedisQueue<T> {
    type Task = Task<T>;
    type Error = QueueError;

    fn poll_ready(
        &mut self,
        _cx: &mut Context<'_>,
        _w: &WorkerContext,
    ) -> Poll<Result<(), QueueError>> {
        let _ = self.state();
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _w: &WorkerContext,
    ) -> Poll<Option<Result<Task<T>, QueueError>>> {
        let (st, store, held) = self.state();
        let config = &store.config;
        loop {
            if let Some(fut) = st.claim.as_mut()
                && let Poll::Ready(result) = fut.as_mut().poll(cx)
            {
                st.claim = None;
                match result {
                    Ok(c) => st.claimed(c, config),
                    Err(e) => st.failed(&e, &config.queue),
                }
            }
            if let Some(task) = st.buffer.pop_front() {
                // Prefetch while the buffer still feeds the worker.
                if st.claim.is_none() && st.more && st.buffer.len() < config.claim_batch / 2 {
                    st.claim = Some(start_claim(store.clone(), held.clone()));
                }
                return Poll::Ready(Some(Ok(task)));
            }
            if st.claim.is_some() {
                return Poll::Pending;
            }
            let timer_due = match st.next_claim.as_mut() {
                None => true,
                Some(sleep) => sleep.as_mut().poll(cx).is_ready(),
            };
            if st.more || timer_due || st.wake.take() {
                st.claim = Some(start_claim(store.clone(), held.clone()));
                continue;
            }
            st.wake.register(cx);
            if st.wake.take() {
                st.claim = Some(start_claim(store.clone(), held.clone()));
                continue;
            }
            return Poll::Pending;
        }
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        _w: &WorkerContext,
    ) -> Poll<Result<(), QueueError>> {
        let store = self.store.clone();
        let held = self.held.clone();
        let Some(st) = self.worker.get().as_mut() else {
            return Poll::Ready(Ok(()));
        };
        if st.closed {
            return Poll::Ready(Ok(()));
        }
        if st.close.is_none() {
            let claim = st.claim.take();
            let buffered: Vec<Delivery> = st
                .buffer
                .drain(..)
                .filter_map(|t| t.data().get::<Delivery>().cloned())
                .collect();
            st.close = Some(Box::pin(hand_back_unstarted(store, held, claim, buffered)));
        }
        if let Some(fut) = st.close.as_mut()
            && fut.as_mut().poll(cx).is_pending()
        {
            return Poll::Pending;
        }
        st.close = None;
        st.closed = true;
        st.background = None;
        Poll::Ready(Ok(()))
    }
}

/// Return claimed-but-unstarted tasks at once.
async fn hand_back_unstarted<T>(
    store: Arc<Store>,
    held: Arc<HeldLeases>,
    claim: Option<BoxFuture<Result<Claimed<T>, QueueError>>>,
    mut items: Vec<Delivery>,
) {
    if let Some(claim) = claim
        && let Ok(c) = claim.await
    {
        items.extend(
            c.tasks
                .iter()
                .filter_map(|t| t.data().get::<Delivery>().cloned()),
        );
    }
    if items.is_empty() {
        return;
    }
    for d in &items {
        held.forget(d);
    }
    let pairs: Vec<(String, String)> = items.into_iter().map(|d| (d.id, d.token)).collect();
    for attempt in 1..=3 {
        match store.release(&pairs).await {
            Ok(n) => {
                tracing::debug!(queue = %store.config.queue, handed_back = n, "unstarted tasks handed back");
                return;
            }
            Err(e) if attempt < 3 => {
                tracing::debug!(queue = %store.config.queue, error = %e, "hand-back failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => tracing::warn!(
                queue = %store.config.queue, error = %e,
                "could not hand back unstarted tasks; they run again when their leases expire"
            ),
        }
    }
}

impl<T: DeserializeOwned + Send + 'static> BackendConfig for RedisQueue<T> {
    type Args = T;
    type Id = String;
    type Kind = Ephemeral;
    type Config = QueueConfig;
    type Layer = AckLayer;

    fn config(&self) -> &QueueConfig {
        &self.store.config
    }

    fn middleware(&mut self, _worker: &mut WorkerContext) -> AckLayer {
        let st = self.worker.get().get_or_insert_with(WorkerState::new);
        AckLayer {
            store: self.store.clone(),
            held: self.held.clone(),
            acks: st.acks_tx.clone(),
        }
    }
}
