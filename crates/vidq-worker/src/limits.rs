//! Limits shared by every replica, held in Redis: the upstream request rate (GCRA), a cap on
//! jobs processing upstream at once (the plan's queue limit), and a daily submission budget.
//! One script decides each admission atomically; a task that is not admitted is scheduled
//! again for when it may go, so nothing waits in memory.

use std::sync::Arc;
use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;
use serde::Deserialize;
use vidq_core::{JobId, unix_ms_now};

use crate::pipeline::millis;

/// `[limits]`: 0 switches a limit off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Upstream requests per second, all replicas together.
    pub upstream_rps: f64,
    /// Requests allowed above the steady rate in a burst.
    pub upstream_burst: u32,
    /// Jobs processing upstream at once (the plan's queue limit).
    pub max_processing: u32,
    /// Submissions per UTC day.
    pub daily_submissions: u64,
    /// How long a job may hold a concurrent-job slot without leaving `processing` (a safety
    /// net for jobs canceled or lost while processing).
    #[serde(with = "humantime_serde")]
    pub slot_ttl: Duration,
    /// How often the credit balance is read from upstream (`user/tokens`).
    #[serde(with = "humantime_serde")]
    pub credits_poll: Duration,
}

/// Whether an upstream call may go now.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Admission {
    /// Go ahead.
    Go,
    /// Not before `after`, because of `reason`.
    Wait { after: Duration, reason: String },
}

/// The shared limits. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Limits {
    conn: ConnectionManager,
    keys: Arc<[String; 3]>,
    prefix: String,
    settings: LimitSettings,
    inflight_ttl: Duration,
    script: Arc<Script>,
}

impl Limits {
    pub(crate) fn new(conn: ConnectionManager, prefix: &str, settings: LimitSettings) -> Self {
        Self {
            conn,
            keys: Arc::new([
                format!("{prefix}:{{limits}}:rate"),
                format!("{prefix}:{{limits}}:processing"),
                String::new(),
            ]),
            prefix: prefix.to_owned(),
            inflight_ttl: settings.slot_ttl,
            settings,
            script: Arc::new(Script::new(include_str!("lua/admit.lua"))),
        }
    }

    /// Admission of a submission of `job` (rate, in-flight cap, daily budget).
    pub(crate) async fn admit_submit(&self, job: &JobId) -> redis::RedisResult<Admission> {
        self.admit("submit", &job.to_string()).await
    }

    /// Admission of any other upstream call (rate only).
    pub(crate) async fn admit_call(&self) -> redis::RedisResult<Admission> {
        self.admit("call", "").await
    }

    /// The job no longer holds one of the upstream's concurrent job slots.
    pub(crate) async fn release(&self, job: &JobId) -> redis::RedisResult<()> {
        if self.settings.max_processing == 0 {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        redis::cmd("ZREM")
            .arg(&self.keys[1])
            .arg(job.to_string())
            .query_async(&mut conn)
            .await
    }

    /// Adds `cost` credits to today's spending (for `vidq usage`).
    pub(crate) async fn record_spend(&self, cost: f64) -> redis::RedisResult<()> {
        let day = unix_ms_now() / 86_400_000;
        let key = format!("{}:{{limits}}:spent:{day}", self.prefix);
        let mut conn = self.conn.clone();
        redis::pipe()
            .cmd("INCRBYFLOAT")
            .arg(&key)
            .arg(cost)
            .ignore()
            .expire(&key, 8 * 86_400)
            .ignore()
            .query_async(&mut conn)
            .await
    }

    /// Stores the last balance read from upstream (JSON), for `vidq usage`.
    pub(crate) async fn record_balance(&self, json: &str) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(format!("{}:{{limits}}:credits", self.prefix))
            .arg(json)
            .query_async(&mut conn)
            .await
    }

    /// The key counting today's submissions (UTC), for `vidq usage` and the admission script.
    pub(crate) fn budget_key(prefix: &str, day: u64) -> String {
        format!("{prefix}:{{limits}}:submissions:{day}")
    }

    async fn admit(&self, op: &str, job: &str) -> redis::RedisResult<Admission> {
        let s = &self.settings;
        if s.upstream_rps <= 0.0
            && (op == "call" || (s.max_processing == 0 && s.daily_submissions == 0))
        {
            return Ok(Admission::Go);
        }
        let interval_ms = if s.upstream_rps > 0.0 {
            (1000.0 / s.upstream_rps).ceil() as u64
        } else {
            0
        };
        let burst_ms = interval_ms.saturating_mul(u64::from(s.upstream_burst));
        let now = unix_ms_now();
        let day = now / 86_400_000;
        let to_day_end = (day + 1) * 86_400_000 - now;
        let mut conn = self.conn.clone();
        let reply: Vec<redis::Value> = self
            .script
            .key(&self.keys[0])
            .key(&self.keys[1])
            .key(Self::budget_key(&self.prefix, day))
            .arg(now)
            .arg(interval_ms)
            .arg(burst_ms)
            .arg(op)
            .arg(job)
            .arg(s.max_processing)
            .arg(millis(self.inflight_ttl))
            .arg(s.daily_submissions)
            .arg(to_day_end)
            .invoke_async(&mut conn)
            .await?;
        let mut reply = reply.into_iter();
        let wait: u64 = match reply.next() {
            Some(value) => redis::from_redis_value(value)?,
            None => 0,
        };
        if wait == 0 {
            return Ok(Admission::Go);
        }
        let reason: String = match reply.next() {
            Some(value) => redis::from_redis_value(value)?,
            None => String::new(),
        };
        Ok(Admission::Wait {
            after: Duration::from_millis(wait),
            reason,
        })
    }
}
