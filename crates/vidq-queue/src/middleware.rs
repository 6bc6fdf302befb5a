//! The backend's layer around every task: it turns the handler's result into an ack, a
//! reschedule, a retry with backoff, or a dead-set entry, and awaits that write before the
//! task completes.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis_core::error::{AbortError, BoxDynError, RetryAfterError};
use apalis_core::task::Task;
use tokio::sync::{mpsc, oneshot};
use tower::{Layer, Service};

use crate::background::AckMsg;
use crate::error::{QueueError, TaskError};
use crate::leases::{Again, Delivery, HeldLeases, Lease, Reschedule};
use crate::store::{Finish, Store};

/// Longest reason kept in the dead set.
const MAX_REASON: usize = 1000;

/// Layer returned by the backend's `BackendConfig::middleware`.
#[derive(Debug, Clone)]
pub struct AckLayer {
    pub(crate) store: Arc<Store>,
    pub(crate) held: Arc<HeldLeases>,
    pub(crate) acks: mpsc::UnboundedSender<AckMsg>,
}

impl<S> Layer<S> for AckLayer {
    type Service = AckService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AckService {
            inner,
            layer: self.clone(),
        }
    }
}

/// Service that settles each delivery in Redis once the inner service finished it.
#[derive(Debug, Clone)]
pub struct AckService<S> {
    inner: S,
    layer: AckLayer,
}

impl<S, T> Service<Task<T>> for AckService<S>
where
    S: Service<Task<T>>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxDynError> + Send + 'static,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxDynError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<T>) -> Self::Future {
        let delivery = task.data().get::<Delivery>().cloned();
        let again = task.data().get::<Reschedule>().cloned();
        let lease = task.data().get::<Lease>().cloned().unwrap_or_default();
        let fut = self.inner.call(task);
        let layer = self.layer.clone();
        Box::pin(async move {
            let Some(delivery) = delivery else {
                // Not one of ours (should not happen): nothing to settle.
                return fut.await.map_err(Into::into);
            };
            let mut guard = DropGuard {
                held: &layer.held,
                delivery: &delivery,
                finished: false,
            };
            // A lost lease stops the work: the handler's future is dropped at its next await,
            // before it can do anything another holder may be doing too.
            let result = tokio::select! {
                biased;
                () = lease.lost() => {
                    guard.finished = true;
                    return Err(Box::new(QueueError::LeaseLost {
                        queue: layer.store.config.queue.clone(),
                        id: delivery.id.clone(),
                    }) as BoxDynError);
                }
                r = fut => r.map_err(Into::into),
            };
            layer.held.settling(&delivery);
            let outcome = match &result {
                Ok(_) => Outcome::Done {
                    again: again.and_then(|a| a.take()),
                },
                Err(e) => Outcome::Failed(e),
            };
            settle(&layer, &delivery, outcome).await;
            guard.finished = true;
            result
        })
    }
}

/// Marks the lease abandoned if the task's future is dropped before it finished.
struct DropGuard<'a> {
    held: &'a HeldLeases,
    delivery: &'a Delivery,
    finished: bool,
}

impl Drop for DropGuard<'_> {
    fn drop(&mut self) {
        if self.finished {
            self.held.forget(self.delivery);
        } else {
            self.held.abandon(self.delivery);
        }
    }
}

/// How a delivery ended.
#[derive(Clone, Copy)]
enum Outcome<'a> {
    /// Success: finished, or to run again after `again`.
    Done {
        again: Option<Again>,
    },
    Failed(&'a BoxDynError),
}

/// What the handler's error asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    Retry(Option<Duration>),
    Permanent,
}

fn classify(err: &BoxDynError) -> Verdict {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err.as_ref());
    while let Some(e) = cur {
        if let Some(te) = e.downcast_ref::<TaskError>() {
            return match te {
                TaskError::RetryAfter { after, .. } => Verdict::Retry(Some(*after)),
                TaskError::Permanent(_) => Verdict::Permanent,
            };
        }
        if let Some(r) = e.downcast_ref::<RetryAfterError>() {
            return Verdict::Retry(Some(r.get_duration()));
        }
        if e.downcast_ref::<AbortError>().is_some() {
            return Verdict::Permanent;
        }
        cur = e.source();
    }
    Verdict::Retry(None)
}

fn reason(prefix: &str, err: &BoxDynError) -> String {
    let mut s = format!("{prefix}: {err}");
    if s.len() > MAX_REASON {
        let mut cut = MAX_REASON;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Write the outcome of a delivery, retrying Redis failures until the lease would have
/// expired anyway (after that, the task is simply delivered again).
async fn settle(layer: &AckLayer, d: &Delivery, outcome: Outcome<'_>) {
    let store = &layer.store;
    let give_up = tokio::time::Instant::now() + store.config.lease;
    let mut pause = Duration::from_millis(50);
    loop {
        let attempt = match outcome {
            Outcome::Done { again } => ack(layer, d, again).await,
            Outcome::Failed(e) => fail(store, d, e).await,
        };
        match attempt {
            Ok(true) => return,
            Ok(false) => {
                tracing::info!(
                    queue = %store.config.queue, task.id = %d.id, task.token = %d.token,
                    "outcome ignored: the lease was lost and the task was taken over"
                );
                return;
            }
            Err(e) if tokio::time::Instant::now() + pause < give_up => {
                tracing::debug!(queue = %store.config.queue, task.id = %d.id, error = %e, "settling a task failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                tracing::warn!(
                    queue = %store.config.queue, task.id = %d.id, error = %e,
                    "could not settle a task; it will be delivered again when its lease expires"
                );
                return;
            }
        }
    }
}

async fn ack(layer: &AckLayer, d: &Delivery, again: Option<Again>) -> Result<bool, QueueError> {
    let (tx, rx) = oneshot::channel();
    let msg = AckMsg {
        id: d.id.clone(),
        token: d.token.clone(),
        again,
        reply: tx,
    };
    if layer.acks.send(msg).is_ok() {
        match rx.await {
            Ok(Some(applied)) => return Ok(applied),
            Ok(None) => return Err(QueueError::Protocol("ack batch failed".to_owned())),
            Err(_) => {} // batcher gone: ack directly
        }
    }
    let flags = layer
        .store
        .ack(&[(d.id.as_str(), d.token.as_str(), again)])
        .await?;
    Ok(flags.first().copied().unwrap_or(false))
}

async fn fail(store: &Store, d: &Delivery, err: &BoxDynError) -> Result<bool, QueueError> {
    let policy = &store.config.retry;
    let (dead, after) = match classify(err) {
        Verdict::Permanent => (Some(reason("permanent failure", err)), None),
        Verdict::Retry(_) if d.attempt >= policy.max_attempts => (
            Some(reason(
                &format!("gave up after {} attempts", d.attempt),
                err,
            )),
            None,
        ),
        Verdict::Retry(after) => (None, after),
    };
    let how = match &dead {
        Some(reason) => {
            tracing::warn!(queue = %store.config.queue, task.id = %d.id, %reason, "task moved to the dead set");
            Finish::Dead { reason }
        }
        // The attempts of this round set the backoff; a delay the handler asked for (an
        // upstream's Retry-After) is capped by the same maximum.
        None => Finish::Retry {
            delay: after.map_or_else(|| policy.backoff(d.attempt), |a| a.min(policy.max)),
        },
    };
    store.finish(&d.id, &d.token, how).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("wrapped")]
    struct Wrapper(#[source] TaskError);

    #[test]
    fn classifies_handler_errors() {
        let boxed = |e: BoxDynError| e;
        assert_eq!(classify(&boxed("plain".into())), Verdict::Retry(None));
        assert_eq!(
            classify(&boxed(Box::new(TaskError::permanent("no")))),
            Verdict::Permanent
        );
        let d = Duration::from_millis(1500);
        assert_eq!(
            classify(&boxed(Box::new(Wrapper(TaskError::retry_after(d))))),
            Verdict::Retry(Some(d))
        );
        assert_eq!(
            classify(&boxed(Box::new(AbortError::new("panicked")))),
            Verdict::Permanent
        );
        assert_eq!(
            classify(&boxed(Box::new(RetryAfterError::new("slow", d)))),
            Verdict::Retry(Some(d))
        );
    }

    #[test]
    fn reasons_are_capped_on_a_char_boundary() {
        let long: BoxDynError = "é".repeat(2000).into();
        let r = reason("x", &long);
        assert!(r.len() <= MAX_REASON && r.starts_with("x: "));
    }
}
