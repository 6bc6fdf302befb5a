//! The reuse index: `<prefix>:reuse:<tenant>:{<sha256 of canonical upstream args>}` (or
//! `<prefix>:reuse:{<sha256>}` when reuse spans tenants, or for jobs without an owner) → the
//! id of the newest job asked to do that work, with a TTL. It lets identical requests share
//! one upstream generation.

use std::sync::LazyLock;
use std::time::Duration;

use redis::AsyncCommands as _;
use vidq_core::{JobId, JobRecord, JobState, Output, TransformRequest, Transition, unix_ms_now};
use vidq_redis::Conn;

/// The Redis key for `request`'s upstream arguments, within `tenant` when given.
pub(crate) fn key(prefix: &str, tenant: Option<&str>, request: &TransformRequest) -> String {
    let sha = request.upstream_args_sha256();
    match tenant {
        Some(tenant) => format!("{prefix}:reuse:{tenant}:{{{sha}}}"),
        None => format!("{prefix}:reuse:{{{sha}}}"),
    }
}

/// The job the index points at for `key`, if any (an unreadable entry counts as none).
pub(crate) async fn lookup(conn: &Conn, key: &str) -> Result<Option<JobId>, redis::RedisError> {
    let mut conn = conn.clone();
    let held: Option<String> = conn.get(key).await?;
    Ok(held.and_then(|id| id.parse().ok()))
}

/// Points `key` at `id` for `ttl`, only if it still points where the caller saw it (`seen`,
/// or nowhere): of two identical requests racing, one job wins and the other follows it.
static CLAIM: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local cur = redis.call('GET', KEYS[1])
if (ARGV[1] == '' and not cur) or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
",
    )
});

/// Drops `key` if it still points at `id` (a job that was claimed for reuse but not created).
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
",
    )
});

/// Points `key` at `id` for `ttl` if it still holds `seen`; `false` when another job took it.
pub(crate) async fn claim(
    conn: &Conn,
    key: &str,
    seen: Option<&JobId>,
    id: &JobId,
    ttl: Duration,
) -> Result<bool, redis::RedisError> {
    let mut conn = conn.clone();
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    let seen = seen.map(ToString::to_string).unwrap_or_default();
    let won: i64 = CLAIM
        .key(key)
        .arg(seen)
        .arg(id.to_string())
        .arg(ttl_ms)
        .invoke_async(&mut conn)
        .await?;
    Ok(won == 1)
}

/// Undoes [`claim`] for a job that was not created after all.
pub(crate) async fn release(conn: &Conn, key: &str, id: &JobId) {
    let mut conn = conn.clone();
    let done: Result<i64, _> = RELEASE
        .key(key)
        .arg(id.to_string())
        .invoke_async(&mut conn)
        .await;
    if let Err(error) = done {
        tracing::warn!(job.id = %id, %error, "could not withdraw a job from reuse");
    }
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
