//! Limits shared by every replica, held in Redis: the upstream request rate (GCRA), a cap on
//! jobs processing upstream at once (the plan's queue limit), and a daily submission budget.
//! One script decides each admission atomically; a task that is not admitted is scheduled
//! again for when it may go, so nothing waits in memory.
//!
//! One clock: every instant here (the rate's arrival times, slot expiry, the budget's UTC day
//! and the wait until the next one) is Redis's `TIME`, read inside the scripts, so a worker
//! whose clock is off admits exactly what the others would. Waits come back as relative
//! delays. Today's figures live in one hash, `<prefix>:{limits}:today` (`day` = days since
//! the Unix epoch, UTC; `submissions`; `spent`), which a script resets when Redis's day is no
//! longer the one it holds: a per-day key name would have to be chosen by the client, and
//! under Redis Cluster a script may only touch the keys it is given.

use std::sync::Arc;
use std::time::Duration;

use redis::Script;
use serde::Deserialize;
use vidq_core::JobId;
use vidq_redis::Conn;

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

/// `[fair_share]`: submissions go to the tenants with jobs waiting in turn, a tenant of weight
/// 2 getting two for another's one; `weights = { "tenant-a" = 2 }`, 1 for a tenant not named.
/// Jobs without an owner share one group (weight 1).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FairShareSettings {
    /// Tenant name -> weight (1..=10000).
    #[serde(default)]
    pub weights: std::collections::BTreeMap<String, u32>,
}

/// Whether an upstream call may go now.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Admission {
    /// Go ahead. `new_slot`: this admission took the job's concurrent-job slot (false when
    /// the job held it already — another delivery's call may still be in flight — or when no
    /// cap is set).
    Go { new_slot: bool },
    /// Not before `after`, because of `reason`.
    Wait { after: Duration, reason: String },
}

/// The shared limits. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Limits {
    conn: Conn,
    keys: Arc<[String; 3]>,
    prefix: String,
    settings: LimitSettings,
    inflight_ttl: Duration,
    scripts: Arc<Scripts>,
}

struct Scripts {
    admit: Script,
    spend: Script,
    balance: Script,
    give_back: Script,
    uncertain: Script,
}

/// Redis's clock in a script: `now` (Unix ms) and `day` (UTC days since the epoch).
const LUA_NOW: &str = "local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local day = math.floor(now / 86400000)
";

/// KEYS[1] today's figures, ARGV[1] credits: adds them to today's spending (Redis's day).
const LUA_SPEND: &str = "if redis.call('HGET', KEYS[1], 'day') ~= tostring(day) then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'day', day)
end
redis.call('HINCRBYFLOAT', KEYS[1], 'spent', ARGV[1])
";

/// KEYS[1] today's figures: counts one uncertain submission today (Redis's day).
const LUA_UNCERTAIN: &str = "if redis.call('HGET', KEYS[1], 'day') ~= tostring(day) then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'day', day)
end
redis.call('HINCRBY', KEYS[1], 'uncertain', 1)
";

/// KEYS[1] today's figures, KEYS[2] in-flight jobs, ARGV[1] job id: an admitted submission
/// that upstream surely did not accept (or that was not made) gives its place back: today's
/// count (if still the same Redis day) and its concurrent-job slot.
const LUA_GIVE_BACK: &str = "if redis.call('HGET', KEYS[1], 'day') == tostring(day)
  and tonumber(redis.call('HGET', KEYS[1], 'submissions') or '0') > 0 then
  redis.call('HINCRBY', KEYS[1], 'submissions', -1)
end
if ARGV[2] == '1' then redis.call('ZREM', KEYS[2], ARGV[1]) end
";

/// KEYS[1] the balance key, ARGV[1] a JSON object: stores it with `at_ms` set to Redis's clock.
const LUA_BALANCE: &str = "local balance = cjson.decode(ARGV[1])
balance['at_ms'] = now
redis.call('SET', KEYS[1], cjson.encode(balance))
";

impl Limits {
    pub(crate) fn new(conn: impl Into<Conn>, prefix: &str, settings: LimitSettings) -> Self {
        Self {
            conn: conn.into(),
            keys: Arc::new([
                format!("{prefix}:{{limits}}:rate"),
                format!("{prefix}:{{limits}}:processing"),
                Self::today_key(prefix),
            ]),
            prefix: prefix.to_owned(),
            inflight_ttl: settings.slot_ttl,
            settings,
            scripts: Arc::new(Scripts {
                admit: Script::new(include_str!("lua/admit.lua")),
                spend: Script::new(&format!("{LUA_NOW}{LUA_SPEND}")),
                balance: Script::new(&format!("{LUA_NOW}{LUA_BALANCE}")),
                give_back: Script::new(&format!("{LUA_NOW}{LUA_GIVE_BACK}")),
                uncertain: Script::new(&format!("{LUA_NOW}{LUA_UNCERTAIN}")),
            }),
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

    /// An admitted submission of `job` that was not made, or that upstream surely refused,
    /// no longer counts against today's budget; with `release_slot`, nor holds the job's
    /// concurrent-job slot (left alone when the slot is another delivery's, whose call may be
    /// in flight or whose job may be processing upstream).
    pub(crate) async fn give_back_submission(
        &self,
        job: &JobId,
        release_slot: bool,
    ) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        self.scripts
            .give_back
            .key(&self.keys[2])
            .key(&self.keys[1])
            .arg(job.to_string())
            .arg(if release_slot { "1" } else { "0" })
            .invoke_async(&mut conn)
            .await
    }

    /// Whether a cap on jobs processing at once is set.
    pub(crate) fn caps_processing(&self) -> bool {
        self.settings.max_processing > 0
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

    /// Adds `cost` credits to today's spending (Redis's UTC day), for `vidq usage`.
    pub(crate) async fn record_spend(&self, cost: f64) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        self.scripts
            .spend
            .key(&self.keys[2])
            .arg(cost)
            .invoke_async(&mut conn)
            .await
    }

    /// Counts one uncertain submission (a retry after an interrupted call) in today's figures
    /// (Redis's UTC day, field `uncertain`), for the console.
    pub(crate) async fn record_uncertain(&self) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        self.scripts
            .uncertain
            .key(&self.keys[2])
            .invoke_async(&mut conn)
            .await
    }

    /// Stores the daily submission budget (`limits.daily_submissions`, 0 = none) in
    /// `<prefix>:{limits}:budget`, for the console to show today's submissions against it.
    pub(crate) async fn record_budget(&self) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(format!("{}:{{limits}}:budget", self.prefix))
            .arg(self.settings.daily_submissions)
            .query_async(&mut conn)
            .await
    }

    /// Stores the last balance read from upstream (a JSON object, given `at_ms` by Redis's
    /// clock), for `vidq usage`.
    pub(crate) async fn record_balance(&self, json: &str) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        self.scripts
            .balance
            .key(format!("{}:{{limits}}:credits", self.prefix))
            .arg(json)
            .invoke_async(&mut conn)
            .await
    }

    /// The hash of today's figures (`day`, `submissions`, `spent`), for `vidq usage` and the
    /// scripts; figures of a `day` other than Redis's current one are stale (yesterday's).
    pub(crate) fn today_key(prefix: &str) -> String {
        format!("{prefix}:{{limits}}:today")
    }

    async fn admit(&self, op: &str, job: &str) -> redis::RedisResult<Admission> {
        let s = &self.settings;
        if s.upstream_rps <= 0.0
            && (op == "call" || (s.max_processing == 0 && s.daily_submissions == 0))
        {
            return Ok(Admission::Go { new_slot: false });
        }
        let interval_ms = if s.upstream_rps > 0.0 {
            (1000.0 / s.upstream_rps).ceil() as u64
        } else {
            0
        };
        let burst_ms = interval_ms.saturating_mul(u64::from(s.upstream_burst));
        let mut conn = self.conn.clone();
        let reply: Vec<redis::Value> = self
            .scripts
            .admit
            .key(&self.keys[0])
            .key(&self.keys[1])
            .key(&self.keys[2])
            .arg(interval_ms)
            .arg(burst_ms)
            .arg(op)
            .arg(job)
            .arg(s.max_processing)
            .arg(millis(self.inflight_ttl))
            .arg(s.daily_submissions)
            .invoke_async(&mut conn)
            .await?;
        let mut reply = reply.into_iter();
        let wait: u64 = match reply.next() {
            Some(value) => redis::from_redis_value(value)?,
            None => 0,
        };
        if wait == 0 {
            let new_slot: u64 = match reply.next() {
                Some(value) => redis::from_redis_value(value)?,
                None => 0,
            };
            return Ok(Admission::Go {
                new_slot: new_slot == 1,
            });
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

#[cfg(test)]
mod tests {
    //! Against the Redis at `VIDQ_TEST_REDIS_URL` (default 127.0.0.1:6379), under a random
    //! prefix whose keys are deleted at the end.

    use std::collections::HashMap;

    use redis::AsyncCommands;

    use super::*;

    const DAY_MS: u64 = 86_400_000;

    async fn limits(settings: LimitSettings) -> (Limits, Conn, String) {
        let url = std::env::var("VIDQ_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let client = redis::Client::open(url).unwrap();
        let conn = Conn::from(redis::aio::ConnectionManager::new(client).await.unwrap());
        let prefix = format!("vidqtest-limits-{:016x}", rand::random::<u64>());
        (Limits::new(conn.clone(), &prefix, settings), conn, prefix)
    }

    fn settings(daily_submissions: u64) -> LimitSettings {
        LimitSettings {
            upstream_rps: 0.0,
            upstream_burst: 0,
            max_processing: 0,
            daily_submissions,
            slot_ttl: Duration::from_secs(60),
            credits_poll: Duration::ZERO,
        }
    }

    async fn redis_now(conn: &mut Conn) -> u64 {
        let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(conn).await.unwrap();
        secs * 1000 + micros / 1000
    }

    async fn cleanup(conn: &mut Conn, prefix: &str) {
        let keys: Vec<String> = conn.keys(format!("{prefix}:*")).await.unwrap();
        if !keys.is_empty() {
            let _: () = conn.del(keys).await.unwrap();
        }
    }

    #[test]
    fn fair_share_weights_come_from_a_file_or_the_environment() {
        let vars = |pairs: &[(&str, &str)]| {
            [
                ("VIDQ__GOENHANCE__API_KEY", "k-123"),
                ("VIDQ__STORAGE__BUCKET", "videos"),
            ]
            .iter()
            .chain(pairs)
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>()
        };
        let none = crate::settings::WorkerSettings::load_from(None, vars(&[])).unwrap();
        assert!(
            none.fair_share.weights.is_empty(),
            "every tenant weighs 1 by default"
        );
        let dir = std::env::temp_dir().join(format!("vidq-fair-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("worker.toml");
        std::fs::write(
            &file,
            "[fair_share]\nweights = { \"tenant-a\" = 2, \"b\" = 5 }\n",
        )
        .unwrap();
        let from_file = crate::settings::WorkerSettings::load_from(
            Some(&file),
            vars(&[("VIDQ__FAIR_SHARE__WEIGHTS__TENANT-C", "3")]),
        )
        .unwrap();
        let got: Vec<(&str, u32)> = from_file
            .fair_share
            .weights
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(got, [("b", 5), ("tenant-a", 2), ("tenant-c", 3)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_second_delivery_giving_back_leaves_the_jobs_slot_to_the_first() {
        let (limits, mut conn, prefix) = limits(LimitSettings {
            max_processing: 1,
            ..settings(0)
        })
        .await;
        let slots = format!("{prefix}:{{limits}}:processing");
        let job = JobId::new();
        // The first delivery takes the job's slot; a redelivery of the same submit (its lease
        // expired while the call was in flight) is admitted on that same slot.
        assert_eq!(
            limits.admit_submit(&job).await.unwrap(),
            Admission::Go { new_slot: true }
        );
        assert_eq!(
            limits.admit_submit(&job).await.unwrap(),
            Admission::Go { new_slot: false }
        );
        // It finds the first delivery's claim busy and gives its admission back: the slot stays.
        limits.give_back_submission(&job, false).await.unwrap();
        let held: u64 = conn.zcard(&slots).await.unwrap();
        assert_eq!(held, 1, "the in-flight call's slot was freed");
        let other = JobId::new();
        assert!(matches!(
            limits.admit_submit(&other).await.unwrap(),
            Admission::Wait { .. }
        ));
        // The delivery that made the call, refused for sure, frees it.
        limits.give_back_submission(&job, true).await.unwrap();
        let held: u64 = conn.zcard(&slots).await.unwrap();
        assert_eq!(held, 0);
        cleanup(&mut conn, &prefix).await;
    }

    #[tokio::test]
    async fn the_daily_budget_counts_redis_days_and_rolls_over_when_redis_day_changes() {
        let (limits, mut conn, prefix) = limits(settings(2)).await;
        let key = Limits::today_key(&prefix);
        let today = redis_now(&mut conn).await / DAY_MS;
        // Yesterday (by Redis's clock) spent the whole budget: today starts afresh.
        let _: () = conn
            .hset_multiple(
                &key,
                &[
                    ("day", (today - 1).to_string()),
                    ("submissions", "2".into()),
                ],
            )
            .await
            .unwrap();
        let _: () = conn.hset(&key, "spent", "7.5").await.unwrap();
        let job = JobId::new();
        assert!(matches!(
            limits.admit_submit(&job).await.unwrap(),
            Admission::Go { .. }
        ));
        let figures: HashMap<String, String> = conn.hgetall(&key).await.unwrap();
        assert_eq!(figures.get("day"), Some(&today.to_string()), "{figures:?}");
        assert_eq!(figures.get("submissions").map(String::as_str), Some("1"));
        assert_eq!(figures.get("spent"), None, "yesterday's spending was reset");

        assert!(matches!(
            limits.admit_submit(&job).await.unwrap(),
            Admission::Go { .. }
        ));
        let Admission::Wait { after, reason } = limits.admit_submit(&job).await.unwrap() else {
            panic!("a third submission today went through a budget of 2");
        };
        assert_eq!(reason, "daily submission budget spent");
        let now = redis_now(&mut conn).await;
        let to_midnight = (now / DAY_MS + 1) * DAY_MS - now;
        let after = millis(after);
        assert!(
            (to_midnight..=to_midnight + 2_000).contains(&after),
            "waits {after} ms; Redis's next UTC midnight is {to_midnight} ms away"
        );

        limits.record_spend(1.5).await.unwrap();
        limits.record_spend(2.0).await.unwrap();
        let spent: f64 = conn.hget(&key, "spent").await.unwrap();
        assert!((spent - 3.5).abs() < 1e-9, "{spent}");
        let submissions: u64 = conn.hget(&key, "submissions").await.unwrap();
        assert_eq!(submissions, 2);
        cleanup(&mut conn, &prefix).await;
    }

    #[tokio::test]
    async fn spending_recorded_on_a_new_redis_day_starts_from_zero() {
        let (limits, mut conn, prefix) = limits(settings(0)).await;
        let key = Limits::today_key(&prefix);
        let today = redis_now(&mut conn).await / DAY_MS;
        let _: () = conn
            .hset_multiple(
                &key,
                &[
                    ("day", (today - 1).to_string()),
                    ("submissions", "40".into()),
                    ("spent", "99".into()),
                ],
            )
            .await
            .unwrap();
        limits.record_spend(2.5).await.unwrap();
        let figures: HashMap<String, String> = conn.hgetall(&key).await.unwrap();
        assert_eq!(figures.get("day"), Some(&today.to_string()), "{figures:?}");
        assert_eq!(figures.get("spent").map(String::as_str), Some("2.5"));
        assert_eq!(figures.get("submissions"), None);
        cleanup(&mut conn, &prefix).await;
    }

    #[tokio::test]
    async fn the_rate_limit_measures_time_by_redis_clock() {
        let mut s = settings(0);
        s.upstream_rps = 10.0; // one call per 100 ms, no burst
        let (limits, mut conn, prefix) = limits(s).await;
        // The next call may go 10 s from now by Redis's clock (as if a burst just passed).
        let tat = redis_now(&mut conn).await + 10_000;
        let _: () = conn
            .set(format!("{prefix}:{{limits}}:rate"), tat)
            .await
            .unwrap();
        let Admission::Wait { after, reason } = limits.admit_call().await.unwrap() else {
            panic!("a call went through ahead of the rate");
        };
        assert_eq!(reason, "upstream request rate limit");
        let after = millis(after);
        assert!((8_000..=10_000).contains(&after), "waits {after} ms");
        cleanup(&mut conn, &prefix).await;
    }

    #[tokio::test]
    async fn the_balance_is_stamped_by_redis_clock() {
        let (limits, mut conn, prefix) = limits(settings(0)).await;
        let before = redis_now(&mut conn).await;
        limits
            .record_balance(r#"{"count":1234.5,"queue_limit":null}"#)
            .await
            .unwrap();
        let after = redis_now(&mut conn).await;
        let stored: String = conn
            .get(format!("{prefix}:{{limits}}:credits"))
            .await
            .unwrap();
        let stored: serde_json::Value = serde_json::from_str(&stored).unwrap();
        assert_eq!(stored["count"], 1234.5);
        assert!(stored["queue_limit"].is_null(), "{stored}");
        let at = stored["at_ms"].as_u64().unwrap();
        assert!(
            (before..=after).contains(&at),
            "{before} <= {at} <= {after}"
        );
        cleanup(&mut conn, &prefix).await;
    }

    #[tokio::test]
    async fn uncertain_submissions_count_by_redis_day_and_the_budget_is_published() {
        let (limits, mut conn, prefix) = limits(settings(500)).await;
        let key = Limits::today_key(&prefix);
        // Figures of another day are dropped first: the count starts over today.
        let _: () = conn
            .hset_multiple(&key, &[("day", "1"), ("uncertain", "9")])
            .await
            .unwrap();
        limits.record_uncertain().await.unwrap();
        limits.record_uncertain().await.unwrap();
        let figures: HashMap<String, String> = conn.hgetall(&key).await.unwrap();
        let today = (redis_now(&mut conn).await / DAY_MS).to_string();
        assert_eq!(figures.get("day"), Some(&today));
        assert_eq!(figures.get("uncertain").map(String::as_str), Some("2"));
        limits.record_budget().await.unwrap();
        let budget: u64 = conn
            .get(format!("{prefix}:{{limits}}:budget"))
            .await
            .unwrap();
        assert_eq!(budget, 500);
        cleanup(&mut conn, &prefix).await;
    }
}
