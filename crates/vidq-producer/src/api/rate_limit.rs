//! Per-token rate limit, shared by every API replica: GCRA in one Redis script on Redis's
//! clock (`<prefix>:api:rate:<token name>:<its place in the settings>`: tokens sharing a name
//! are limited each on its own), so N replicas admit one token's rate, not N times it. One
//! script call per request (the one Redis round trip the limit costs).
//!
//! When Redis does not answer within [`SHARED_CHECK_TIMEOUT`], each replica falls back to a
//! token bucket in its own memory with the same rate and burst: the API keeps protecting
//! itself (and a request that needs Redis fails on its own with 503).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::Script;
use vidq_redis::Conn;

/// Longest the shared check may take before the in-memory fallback decides.
pub(crate) const SHARED_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// The shared limit, with its in-memory fallback.
pub(crate) struct RateLimiter {
    conn: Conn,
    prefix: String,
    script: Script,
    interval_ms: f64,
    tolerance_ms: f64,
    local: LocalBuckets,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("interval_ms", &self.interval_ms)
            .field("tolerance_ms", &self.tolerance_ms)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// `per_second` on average and `burst` at once per token name, held under `prefix`.
    pub(crate) fn new(conn: Conn, prefix: &str, per_second: f64, burst: u32) -> Self {
        let interval_ms = 1000.0 / per_second;
        Self {
            conn,
            prefix: prefix.to_owned(),
            script: Script::new(include_str!("rate.lua")),
            interval_ms,
            tolerance_ms: f64::from(burst.max(1) - 1) * interval_ms,
            local: LocalBuckets::new(per_second, burst),
        }
    }

    /// Takes one request from `token`'s allowance, or says how long until one is available.
    pub(crate) async fn check(&self, token: &str) -> Result<(), Duration> {
        let mut conn = self.conn.clone();
        let mut call = self.script.key(format!("{}:api:rate:{token}", self.prefix));
        call.arg(self.interval_ms).arg(self.tolerance_ms);
        let reply =
            tokio::time::timeout(SHARED_CHECK_TIMEOUT, call.invoke_async::<u64>(&mut conn)).await;
        match reply {
            Ok(Ok(0)) => Ok(()),
            Ok(Ok(wait_ms)) => Err(Duration::from_millis(wait_ms)),
            Ok(Err(error)) => {
                tracing::warn!(%error, "the shared rate limit is unreachable; limiting in memory");
                self.local.check(token, Instant::now())
            }
            Err(_) => {
                tracing::warn!("the shared rate limit did not answer in time; limiting in memory");
                self.local.check(token, Instant::now())
            }
        }
    }
}

/// Token buckets keyed by caller, in this replica's memory: the fallback.
#[derive(Debug)]
struct LocalBuckets {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl LocalBuckets {
    fn new(per_second: f64, burst: u32) -> Self {
        Self {
            per_second,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn check(&self, caller: &str, now: Instant) -> Result<(), Duration> {
        // A poisoned lock only means another request panicked mid-update; the map is still
        // usable (at worst one bucket is slightly off).
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets.entry(caller.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_second,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_bursts_then_refills_at_the_rate() {
        let limiter = LocalBuckets::new(2.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check("a", t0).is_ok());
        }
        let wait = limiter.check("a", t0).unwrap_err();
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500));
        assert!(limiter.check("b", t0).is_ok(), "buckets are per caller");
        assert!(limiter.check("a", t0 + Duration::from_millis(500)).is_ok());
        assert!(limiter.check("a", t0 + Duration::from_millis(500)).is_err());
    }
}
