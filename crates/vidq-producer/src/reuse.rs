//! The reuse index: `<prefix>:reuse:{<sha256 of canonical upstream args>}` → the id of the
//! newest job asked to do that work, with a TTL. It lets identical requests share one
//! upstream generation.

use std::time::Duration;

use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;
use vidq_core::{JobId, JobRecord, JobState, Output, TransformRequest, Transition, unix_ms_now};

/// The Redis key for `request`'s upstream arguments.
pub(crate) fn key(prefix: &str, request: &TransformRequest) -> String {
    format!("{prefix}:reuse:{{{}}}", request.upstream_args_sha256())
}

/// The job the index points at for `key`, if any (an unreadable entry counts as none).
pub(crate) async fn lookup(
    conn: &ConnectionManager,
    key: &str,
) -> Result<Option<JobId>, redis::RedisError> {
    let mut conn = conn.clone();
    let held: Option<String> = conn.get(key).await?;
    Ok(held.and_then(|id| id.parse().ok()))
}

/// Points `key` at `id` for `ttl` (the newest job wins).
pub(crate) async fn remember(
    conn: &ConnectionManager,
    key: &str,
    id: &JobId,
    ttl: Duration,
) -> Result<(), redis::RedisError> {
    let mut conn = conn.clone();
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    conn.pset_ex::<_, _, ()>(key, id.to_string(), ttl_ms).await
}

/// A new job for `request` that is `succeeded` from birth with `source`'s video.
pub(crate) fn reused_record(
    request: TransformRequest,
    deadline: Duration,
    source: &JobId,
    output: Output,
) -> JobRecord {
    let mut record = JobRecord::new(request, deadline);
    let now = unix_ms_now();
    record.state = JobState::Succeeded;
    record.output = Some(output);
    record.updated_at = now;
    record.history = vec![Transition {
        from: JobState::Queued,
        to: JobState::Succeeded,
        at_ms: now,
        note: Some(format!("reused {source}")),
    }];
    record
}
