//! Waiting on a condition with a deadline (never a bare sleep for synchronisation).

use std::future::Future;
use std::time::{Duration, Instant};

/// Checks `cond` every `every` until it gives `Some`, or fails after `timeout` naming `what`.
pub(crate) async fn until<T, F, Fut>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut cond: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond().await? {
            return Ok(v);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(every).await;
    }
}
