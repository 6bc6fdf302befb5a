//! Limits shared by every replica: two worker processes together stay under the upstream's
//! request rate and its cap on concurrent jobs, where each alone would not know of the other.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use vidq_core::JobState;
use vidq_tests::{Sim, TestEnv, Worker, enqueue_jobs, verify_outcomes, wait_all_finished};

const DAY_MS: u64 = 86_400_000;

/// The hash of today's limit figures (`day` by Redis's clock, `submissions`, `spent`).
async fn today_figures(
    env: &TestEnv,
    redis: &mut redis::aio::MultiplexedConnection,
) -> anyhow::Result<HashMap<String, String>> {
    Ok(redis::cmd("HGETALL")
        .arg(format!("{}:{{limits}}:today", env.prefix))
        .query_async(redis)
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_together_stay_under_the_upstream_rate_limit() -> anyhow::Result<()> {
    let env = TestEnv::new("ratelimit").await?;
    // The simulated plan answers HTTP 429 to more than 10 requests in a second.
    let sim = Sim::start(&[
        "--rate-limit",
        "10",
        "--processing-min",
        "300ms",
        "--processing-max",
        "800ms",
        "--result-size",
        "8KiB",
    ])
    .await?;
    let settings = env.worker_env(
        &sim.base_url,
        &[
            ("VIDQ__LIMITS__UPSTREAM_RPS", "7"),
            ("VIDQ__LIMITS__UPSTREAM_BURST", "0"),
        ],
    );
    let _a = Worker::start("ratelimit-w1", settings.clone()).await?;
    let _b = Worker::start("ratelimit-w2", settings).await?;
    let started = Instant::now();
    let jobs = enqueue_jobs(&env, 30).await?;
    wait_all_finished(&env, &jobs, Duration::from_secs(120)).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let stats = sim.stats().await?;
    let requests = stats.submit_requests + stats.status_requests.values().sum::<u64>();
    println!(
        "{requests} upstream requests in {elapsed:.1} s ({:.1}/s)",
        requests as f64 / elapsed
    );
    assert_eq!(
        stats.rejected.rate_limited, 0,
        "the upstream's rate limit was exceeded"
    );
    assert!(
        requests as f64 <= 7.0 * elapsed + 2.0,
        "{requests} requests in {elapsed:.1} s"
    );
    let records = verify_outcomes(&env, &sim, &jobs).await?;
    assert!(records.iter().all(|r| r.state == JobState::Succeeded));
    env.cleanup().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_together_respect_the_concurrent_job_cap() -> anyhow::Result<()> {
    let env = TestEnv::new("jobcap").await?;
    // The simulated plan refuses a fourth concurrent job.
    let sim = Sim::start(&[
        "--queue-limit",
        "3",
        "--processing-min",
        "500ms",
        "--processing-max",
        "1s",
        "--result-size",
        "8KiB",
    ])
    .await?;
    let settings = env.worker_env(&sim.base_url, &[("VIDQ__LIMITS__MAX_PROCESSING", "3")]);
    let _a = Worker::start("jobcap-w1", settings.clone()).await?;
    let _b = Worker::start("jobcap-w2", settings).await?;
    let jobs = enqueue_jobs(&env, 12).await?;
    let mut most = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let counts = vidq_tests::count_states(&env, &jobs).await?;
        let processing = counts.get(&JobState::Processing).copied().unwrap_or(0);
        most = most.max(processing);
        let done: usize = counts
            .iter()
            .filter(|(s, _)| s.is_terminal())
            .map(|(_, n)| n)
            .sum();
        if done == jobs.len() {
            break;
        }
        assert!(Instant::now() < deadline, "jobs did not finish: {counts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_all_finished(&env, &jobs, Duration::from_secs(5)).await?;
    let stats = sim.stats().await?;
    println!("at most {most} jobs seen processing at once");
    assert_eq!(
        stats.rejected.queue_limited, 0,
        "upstream refused a job over its queue limit"
    );
    assert!(most <= 3, "{most} jobs processing at once");
    let records = verify_outcomes(&env, &sim, &jobs).await?;
    assert!(records.iter().all(|r| r.state == JobState::Succeeded));
    env.cleanup().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_budget_holds_the_rest_until_the_next_utc_day() -> anyhow::Result<()> {
    let env = TestEnv::new("budget").await?;
    let sim = Sim::start(&[
        "--processing-min",
        "100ms",
        "--processing-max",
        "300ms",
        "--result-size",
        "8KiB",
    ])
    .await?;
    // A reconciler that looks often and finds a job late after 1 s: the deferred jobs must not
    // look stuck to it, nor be pushed again.
    let settings = env.worker_env(
        &sim.base_url,
        &[
            ("VIDQ__LIMITS__DAILY_SUBMISSIONS", "3"),
            ("VIDQ__RECONCILER__INTERVAL", "300ms"),
            ("VIDQ__RECONCILER__STALE_AFTER", "1s"),
        ],
    );
    let _a = Worker::start("budget-w1", settings.clone()).await?;
    let _b = Worker::start("budget-w2", settings).await?;
    let jobs = enqueue_jobs(&env, 5).await?;
    // Three jobs run; the other two wait in the submit queue, scheduled for the next UTC day
    // by Redis's clock.
    let now = env.producer.store().redis_now_ms().await?;
    let next_day_ms = (now / DAY_MS + 1) * DAY_MS;
    vidq_tests::wait_until(
        "3 jobs done and 2 deferred",
        Duration::from_secs(60),
        || async {
            let counts = vidq_tests::count_states(&env, &jobs).await?;
            let done = counts.get(&JobState::Succeeded).copied().unwrap_or(0);
            let depth = env.producer.depth(vidq_core::TaskKind::Submit).await?;
            Ok((done == 3 && depth.scheduled == 2 && depth.due + depth.leased == 0).then_some(()))
        },
    )
    .await?;
    let counts = vidq_tests::count_states(&env, &jobs).await?;
    assert_eq!(counts.get(&JobState::Queued), Some(&2), "{counts:?}");
    assert_eq!(
        sim.stats().await?.submit_requests,
        3,
        "upstream saw a 4th submission"
    );
    let mut redis = redis::Client::open(env.redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let today = today_figures(&env, &mut redis).await?;
    assert_eq!(
        today.get("day"),
        Some(&(now / DAY_MS).to_string()),
        "{today:?}"
    );
    assert_eq!(today.get("submissions").map(String::as_str), Some("3"));
    // The one deferred job a worker claimed, and after a reconciler round the other one too,
    // are expected when the submit queue's hold ends: tomorrow, by Redis's clock.
    let key = format!("{}:{{jobs}}:active", env.prefix);
    vidq_tests::wait_until(
        "both deferred jobs expected tomorrow",
        Duration::from_secs(30),
        || {
            let mut redis = redis.clone();
            let key = key.clone();
            async move {
                let active: Vec<(String, f64)> = redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query_async(&mut redis)
                    .await?;
                Ok((active.len() == 2
                    && active
                        .iter()
                        .all(|(_, at)| *at as u64 >= next_day_ms - 1000))
                .then_some(()))
            }
        },
    )
    .await?;
    let depth = env.producer.depth(vidq_core::TaskKind::Submit).await?;
    assert_eq!(
        (depth.scheduled, depth.due + depth.leased),
        (2, 0),
        "{depth:?}"
    );
    assert_eq!(
        sim.stats().await?.submit_requests,
        3,
        "upstream saw a 4th submission"
    );
    env.cleanup().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_budget_starts_afresh_when_redis_day_changes() -> anyhow::Result<()> {
    let env = TestEnv::new("budgetday").await?;
    let mut redis = redis::Client::open(env.redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    // Yesterday, by Redis's clock, spent the whole budget; it must not hold anything today.
    let today = env.producer.store().redis_now_ms().await? / DAY_MS;
    redis::cmd("HSET")
        .arg(format!("{}:{{limits}}:today", env.prefix))
        .arg("day")
        .arg(today - 1)
        .arg("submissions")
        .arg(3)
        .arg("spent")
        .arg(1_000_000)
        .query_async::<()>(&mut redis)
        .await?;
    let sim = Sim::start(&[
        "--processing-min",
        "100ms",
        "--processing-max",
        "300ms",
        "--result-size",
        "8KiB",
    ])
    .await?;
    let settings = env.worker_env(&sim.base_url, &[("VIDQ__LIMITS__DAILY_SUBMISSIONS", "3")]);
    let _a = Worker::start("budgetday-w1", settings).await?;
    let jobs = enqueue_jobs(&env, 3).await?;
    wait_all_finished(&env, &jobs, Duration::from_secs(60)).await?;
    let records = verify_outcomes(&env, &sim, &jobs).await?;
    assert!(records.iter().all(|r| r.state == JobState::Succeeded));
    assert_eq!(sim.stats().await?.submit_requests, 3);
    let figures = today_figures(&env, &mut redis).await?;
    assert_eq!(figures.get("day"), Some(&today.to_string()), "{figures:?}");
    assert_eq!(figures.get("submissions").map(String::as_str), Some("3"));
    let spent: f64 = figures.get("spent").map_or(Ok(0.0), |s| s.parse())?;
    assert!(
        spent < 1_000_000.0,
        "yesterday's spending carried over: {figures:?}"
    );
    env.cleanup().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_budget_counts_accepted_submissions_not_refused_ones() -> anyhow::Result<()> {
    let env = TestEnv::new("budget429").await?;
    let sim = Sim::start(&[
        "--processing-min",
        "100ms",
        "--processing-max",
        "300ms",
        "--result-size",
        "8KiB",
        "--rate-429",
        "1.0",
    ])
    .await?;
    let settings = env.worker_env(
        &sim.base_url,
        &[
            ("VIDQ__LIMITS__DAILY_SUBMISSIONS", "3"),
            ("VIDQ__QUEUES__SUBMIT__BACKOFF", "100ms"),
            ("VIDQ__QUEUES__SUBMIT__BACKOFF_MAX", "500ms"),
            ("VIDQ__QUEUES__SUBMIT__MAX_ATTEMPTS", "50"),
        ],
    );
    let _w = Worker::start("budget429-w", settings).await?;
    let jobs = enqueue_jobs(&env, 3).await?;
    // Upstream refuses every submission for a while: more refusals than the budget.
    vidq_tests::wait_until("6 refused submissions", Duration::from_secs(60), || async {
        Ok((sim.stats().await?.faults.http_429 >= 6).then_some(()))
    })
    .await?;
    sim.set_faults(&serde_json::json!({})).await?;
    // The refusals did not spend the budget: all three jobs run today.
    vidq_tests::wait_until("3 jobs done", Duration::from_secs(60), || async {
        let counts = vidq_tests::count_states(&env, &jobs).await?;
        Ok((counts.get(&JobState::Succeeded).copied().unwrap_or(0) == 3).then_some(()))
    })
    .await?;
    let mut redis = redis::Client::open(env.redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let today = today_figures(&env, &mut redis).await?;
    assert_eq!(
        today.get("submissions").map(String::as_str),
        Some("3"),
        "{today:?}"
    );
    env.cleanup().await?;
    Ok(())
}
