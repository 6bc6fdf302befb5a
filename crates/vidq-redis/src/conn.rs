//! `Conn`: one cheap-clone connection for every shape, retrying the error replies that say
//! "not executed, try again".

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, Pipeline, RedisFuture, RedisResult, ServerErrorKind, Value};

use crate::sentinel::SentinelShared;

/// How long one command keeps being retried while Redis answers READONLY, LOADING,
/// CLUSTERDOWN, TRYAGAIN, MASTERDOWN or NOREPLICAS (or, in Sentinel mode, while no primary
/// can be reached) before the error goes to the caller.
pub const RETRY_FOR: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A connection to the deployment: standalone (a reconnecting `ConnectionManager`), cluster
/// (`cluster-async`, following MOVED/ASK) or Sentinel (the current primary, re-resolved
/// through the Sentinels on READONLY and on connection loss). Clones share the connection.
#[derive(Clone)]
pub struct Conn {
    pub(crate) inner: Inner,
}

#[derive(Clone)]
pub(crate) enum Inner {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(Arc<SentinelShared>),
}

/// A standalone `Conn` over an existing `ConnectionManager` (tests and tools that made one).
impl From<ConnectionManager> for Conn {
    fn from(manager: ConnectionManager) -> Self {
        Self {
            inner: Inner::Standalone(manager),
        }
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shape = match self.inner {
            Inner::Standalone(_) => "standalone",
            Inner::Cluster(_) => "cluster",
            Inner::Sentinel(_) => "sentinel",
        };
        f.debug_struct("Conn").field("mode", &shape).finish()
    }
}

/// What one try gave.
pub(crate) enum Try<T> {
    /// The request never left (no connection could be made): safe to try again.
    NotSent(redis::RedisError),
    /// The request was sent; this is the answer.
    Sent(RedisResult<T>),
}

/// Whether an error reply says the command was not executed and may succeed later.
pub(crate) fn transient_kind(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Server(
            ServerErrorKind::ReadOnly
                | ServerErrorKind::BusyLoading
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::TryAgain
                | ServerErrorKind::MasterDown
        )
    )
}

/// The reply of a primary with `min-replicas-to-write` set and too few replicas in reach: the
/// write (a command, or a script at its first write, before anything was written) was refused.
/// The redis crate has no kind for it.
const NOREPLICAS: &str = "NOREPLICAS";

fn transient_server(error: &redis::ServerError) -> bool {
    matches!(
        error.kind(),
        Some(
            ServerErrorKind::ReadOnly
                | ServerErrorKind::BusyLoading
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::TryAgain
                | ServerErrorKind::MasterDown
        )
    ) || error.code() == NOREPLICAS
}

/// An error worth retrying: a transient reply, or a pipeline/transaction whose every failed
/// command failed with one (a transaction aborted by READONLY ran nothing).
pub(crate) fn transient_error(error: &redis::RedisError) -> bool {
    if transient_kind(error.kind()) || error.code() == Some(NOREPLICAS) {
        return true;
    }
    match error.clone().into_server_errors() {
        Some(errors) if !errors.is_empty() => errors.iter().all(|(_, e)| transient_server(e)),
        _ => false,
    }
}

fn transient_value(value: &Value) -> bool {
    matches!(value, Value::ServerError(e) if transient_server(e))
}

/// Pipelines answer errors inline: retry when there is at least one and all are transient.
fn transient_values(values: &[Value]) -> bool {
    let mut any = false;
    for value in values {
        if let Value::ServerError(e) = value {
            if !transient_server(e) {
                return false;
            }
            any = true;
        }
    }
    any
}

/// Exponential backoff with jitter, within `RETRY_FOR`.
pub(crate) struct Backoff {
    started: Instant,
    next: Duration,
    tries: u32,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Self {
            started: Instant::now(),
            next: FIRST_BACKOFF,
            tries: 0,
        }
    }

    /// The pause before the next try, or `None` when the budget is spent.
    pub(crate) fn next(&mut self) -> Option<Duration> {
        if self.started.elapsed() >= RETRY_FOR {
            return None;
        }
        let base = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        self.tries += 1;
        let jitter = rand::random_range(0..=base.as_millis() as u64 / 2);
        Some(base + Duration::from_millis(jitter))
    }
}

impl Conn {
    async fn try_cmd(&mut self, cmd: &Cmd) -> Try<Value> {
        match &mut self.inner {
            Inner::Standalone(c) => Try::Sent(c.req_packed_command(cmd).await),
            Inner::Cluster(c) => Try::Sent(c.req_packed_command(cmd).await),
            Inner::Sentinel(s) => s.cmd(cmd).await,
        }
    }

    async fn try_pipeline(&mut self, p: &Pipeline, offset: usize, count: usize) -> Try<Vec<Value>> {
        match &mut self.inner {
            Inner::Standalone(c) => Try::Sent(c.req_packed_commands(p, offset, count).await),
            Inner::Cluster(c) => Try::Sent(c.req_packed_commands(p, offset, count).await),
            Inner::Sentinel(s) => s.pipeline(p, offset, count).await,
        }
    }

    /// The cluster connection, when this is one (routing WAIT to a key's node).
    pub(crate) fn cluster(&mut self) -> Option<&mut ClusterConnection> {
        match &mut self.inner {
            Inner::Cluster(c) => Some(c),
            _ => None,
        }
    }
}

fn note_retry(what: &str, error: &str, pause: Duration) {
    metrics::counter!("vidq_redis_retries_total").increment(1);
    tracing::debug!(
        error,
        pause_ms = pause.as_millis() as u64,
        "redis {what} retried"
    );
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut backoff = Backoff::new();
            loop {
                let (retry, result) = match self.try_cmd(cmd).await {
                    Try::NotSent(e) => (true, Err(e)),
                    Try::Sent(Err(e)) => (transient_error(&e), Err(e)),
                    Try::Sent(Ok(v)) => (transient_value(&v), Ok(v)),
                };
                if retry && let Some(pause) = backoff.next() {
                    let shown = match &result {
                        Err(e) => e.to_string(),
                        Ok(v) => format!("{v:?}"),
                    };
                    note_retry("command", &shown, pause);
                    tokio::time::sleep(pause).await;
                    continue;
                }
                return result;
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut backoff = Backoff::new();
            loop {
                let (retry, result) = match self.try_pipeline(pipeline, offset, count).await {
                    Try::NotSent(e) => (true, Err(e)),
                    Try::Sent(Err(e)) => (transient_error(&e), Err(e)),
                    Try::Sent(Ok(v)) => (transient_values(&v), Ok(v)),
                };
                if retry && let Some(pause) = backoff.next() {
                    let shown = match &result {
                        Err(e) => e.to_string(),
                        Ok(_) => "a transient error reply in the pipeline".to_owned(),
                    };
                    note_retry("pipeline", &shown, pause);
                    tokio::time::sleep(pause).await;
                    continue;
                }
                return result;
            }
        })
    }

    fn get_db(&self) -> i64 {
        match &self.inner {
            Inner::Standalone(c) => c.get_db(),
            Inner::Cluster(c) => c.get_db(),
            Inner::Sentinel(s) => s.db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(code: &str) -> redis::RedisError {
        // Parse a real error reply, as the connection would.
        let reply = format!("-{code} some detail\r\n");
        match redis::parse_redis_value(reply.as_bytes()) {
            Ok(Value::ServerError(e)) => e.into(),
            other => panic!("not an error reply: {other:?}"),
        }
    }

    #[test]
    fn transient_replies_are_retried_and_others_are_not() {
        for code in [
            "READONLY",
            "LOADING",
            "CLUSTERDOWN",
            "TRYAGAIN",
            "MASTERDOWN",
            "NOREPLICAS",
        ] {
            assert!(transient_error(&server_error(code)), "{code}");
        }
        for code in [
            "ERR",
            "NOSCRIPT",
            "WRONGTYPE",
            "CROSSSLOT",
            "MOVED 1 127.0.0.1:1",
        ] {
            assert!(!transient_error(&server_error(code)), "{code}");
        }
        let io: redis::RedisError =
            std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset").into();
        assert!(!transient_error(&io), "a lost reply may have been executed");
    }

    #[test]
    fn pipelines_retry_only_when_every_error_is_transient() {
        let readonly = redis::parse_redis_value(b"-READONLY You can't write\r\n").unwrap();
        let err = redis::parse_redis_value(b"-ERR wrong\r\n").unwrap();
        let ok = Value::Okay;
        assert!(transient_values(&[ok.clone(), readonly.clone()]));
        assert!(!transient_values(&[ok.clone(), ok.clone()]));
        assert!(!transient_values(&[readonly, err]));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut b = Backoff::new();
        let first = b.next().unwrap();
        assert!(first >= FIRST_BACKOFF && first <= FIRST_BACKOFF * 3 / 2);
        for _ in 0..20 {
            assert!(b.next().unwrap() <= MAX_BACKOFF * 3 / 2);
        }
    }
}
