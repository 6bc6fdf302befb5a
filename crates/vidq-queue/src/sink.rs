//! `Sink<Task<T>>` for [`RedisQueue`], which gives it apalis's `TaskSink` (`push`,
//! `push_bulk`, `push_task`, ...). Tasks are buffered by `start_send` and written in batches of
//! up to 1,000 per round trip on flush.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use apalis_core::task::Task;
use futures::Sink;
use serde::Serialize;

use crate::config::MAX_BATCH;
use crate::error::QueueError;
use crate::queue::{RedisQueue, RunAfter, check_created, encode, new_id};

type PushFuture = Pin<Box<dyn Future<Output = Result<(), QueueError>> + Send>>;

/// Buffered pushes of one handle: id, delay, payload, and when it was handed to the sink
/// (a delay counts from then, not from the flush: the time spent in the buffer is taken off,
/// by this host's monotonic clock).
#[derive(Default)]
pub(crate) struct SinkState {
    pending: Vec<(String, Duration, Vec<u8>, Instant)>,
    flushing: Option<PushFuture>,
}

/// The task's delay: [`RunAfter`], else apalis's `run_at` (whole seconds, an absolute time
/// turned into a delay by this host's clock), else none.
fn delay<T>(task: &Task<T>) -> Duration {
    if let Some(RunAfter(after)) = task.data().get::<RunAfter>() {
        return *after;
    }
    match task.run_at() {
        Some(secs) if secs > 0 => (UNIX_EPOCH + Duration::from_secs(secs))
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
        _ => Duration::ZERO,
    }
}

impl<T> RedisQueue<T> {
    fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), QueueError>> {
        let store = self.store.clone();
        let sink = self.sink.get();
        loop {
            if let Some(fut) = sink.flushing.as_mut() {
                let result = std::task::ready!(fut.as_mut().poll(cx));
                sink.flushing = None;
                result?;
            }
            if sink.pending.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let n = sink.pending.len().min(MAX_BATCH);
            let batch: Vec<_> = sink
                .pending
                .drain(..n)
                .map(|(id, delay, payload, fed)| (id, delay.saturating_sub(fed.elapsed()), payload))
                .collect();
            let store = store.clone();
            sink.flushing = Some(Box::pin(async move {
                check_created(&batch, &store.push(&batch, false).await?)
            }));
        }
    }
}

impl<T: Serialize> Sink<Task<T>> for RedisQueue<T> {
    type Error = QueueError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), QueueError>> {
        let this = self.get_mut();
        if this.sink.get().pending.len() >= MAX_BATCH {
            return this.poll_flush_inner(cx);
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, task: Task<T>) -> Result<(), QueueError> {
        let this = self.get_mut();
        // A task id set with `TaskBuilder::task_id` must be fresh: a push that finds it
        // taken fails the flush (nothing is overwritten).
        let id = task
            .ctx()
            .task_id()
            .map_or_else(new_id, ToString::to_string);
        let item = (id, delay(&task), encode(&task.args)?, Instant::now());
        this.sink.get().pending.push(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), QueueError>> {
        self.get_mut().poll_flush_inner(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), QueueError>> {
        self.get_mut().poll_flush_inner(cx)
    }
}
