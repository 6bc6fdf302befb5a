//! `Sink<Task<T>>` for [`RedisQueue`], which gives it apalis's `TaskSink` (`push`,
//! `push_bulk`, `push_task`, ...). Tasks are buffered by `start_send` and written in batches of
//! up to 1,000 per round trip on flush.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::UNIX_EPOCH;

use apalis_core::task::Task;
use futures::Sink;
use serde::Serialize;

use crate::config::MAX_BATCH;
use crate::error::QueueError;
use crate::queue::{DueAt, RedisQueue, encode};
use crate::store::{now_ms, to_ms};

type PushFuture = Pin<Box<dyn Future<Output = Result<(), QueueError>> + Send>>;

/// Buffered pushes of one handle.
#[derive(Default)]
pub(crate) struct SinkState {
    pending: Vec<(String, u64, Vec<u8>)>,
    flushing: Option<PushFuture>,
}

fn due_ms<T>(task: &Task<T>) -> u64 {
    if let Some(DueAt(at)) = task.data().get::<DueAt>() {
        return to_ms(*at);
    }
    match task.run_at() {
        Some(secs) if secs > 0 => to_ms(UNIX_EPOCH + std::time::Duration::from_secs(secs)),
        _ => now_ms(),
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
            let batch: Vec<_> = if sink.pending.len() > MAX_BATCH {
                sink.pending.drain(..MAX_BATCH).collect()
            } else {
                std::mem::take(&mut sink.pending)
            };
            let store = store.clone();
            sink.flushing = Some(Box::pin(async move { store.push(&batch).await }));
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
        let item = encode(&task.args, due_ms(&task))?;
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
