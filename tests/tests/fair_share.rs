//! Fair share of submissions across tenants, through the upstream's concurrency cap, with two
//! worker processes: tenant A's burst was queued first, B's and C's after; B's and C's jobs
//! are all submitted within the time of about 20 of A's, C's high-priority jobs before its low
//! ones, and the simulated plan never runs more jobs at once than its cap.

use std::collections::BTreeMap;
use std::time::Duration;

use vidq_core::{JobId, JobState, TransformRequest, TransformRequestInput};
use vidq_producer::EnqueueOptions;
use vidq_tests::{
    Persistence, PrivateRedis, S3Endpoint, Sim, TestEnv, Worker, rigs, verify_outcomes,
    wait_all_finished,
};

const CAP: u32 = 4;
const A_JOBS: usize = 150;
const B_JOBS: usize = 20;
const C_JOBS: usize = 20;

/// Enqueues `n` jobs of `tenant` at `priority` (None: the default); their source URLs name
/// the tenant, the priority and the number.
async fn enqueue(
    env: &TestEnv,
    tenant: &str,
    n: usize,
    priority: Option<&str>,
) -> anyhow::Result<Vec<(JobId, String)>> {
    let mut jobs = Vec::with_capacity(n);
    for i in 0..n {
        let url = format!(
            "https://videos.example/{}/{tenant}/{}/{i}.mp4",
            env.prefix,
            priority.unwrap_or("normal")
        );
        let request = TransformRequest::try_from(TransformRequestInput {
            reference_video_url: Some(url.clone()),
            model: Some(2000),
            priority: priority.map(str::to_owned),
            ..TransformRequestInput::default()
        })?;
        let options = EnqueueOptions {
            owner: Some(tenant.to_owned()),
            ..EnqueueOptions::default()
        };
        let job = env.producer.enqueue_with(request, options).await?.job;
        jobs.push((job.id, url));
    }
    Ok(jobs)
}

/// `cmdstat_<name>` → calls, from `INFO commandstats`.
async fn command_calls(
    redis: &mut redis::aio::MultiplexedConnection,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(redis)
        .await?;
    Ok(info
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect())
}

/// What one run saw.
struct Run {
    a: Vec<(JobId, String)>,
    b: Vec<(JobId, String)>,
    c_low: Vec<(JobId, String)>,
    c_high: Vec<(JobId, String)>,
    stats: vidq_sim::Stats,
    env: TestEnv,
    sim: Sim,
    /// Redis commands (inside scripts included) and script calls, per job.
    commands_per_job: f64,
    scripts_per_job: f64,
    _redis: PrivateRedis,
}

/// Queues A's burst, then B's and C's jobs (C's with priorities when asked), runs two workers
/// until every job is finished, and counts what it cost in a Redis of its own.
async fn run(name: &str, priorities: bool) -> anyhow::Result<Run> {
    // A Redis of its own, so its command counts are this test's alone.
    let redis_server = PrivateRedis::start(Persistence::None).await?;
    let s3 = S3Endpoint::from_env()?;
    let env = rigs::test_env(name, &redis_server.url(), &s3, None).await?;
    let sim = Sim::start(&[
        "--queue-limit",
        &CAP.to_string(),
        "--processing-min",
        "150ms",
        "--processing-max",
        "300ms",
        "--result-size",
        "8KiB",
    ])
    .await?;

    // Everything is queued before any worker runs: A's burst first, then B's, then C's (its
    // low-priority jobs before its high-priority ones).
    let a = enqueue(&env, "tenant-a", A_JOBS, None).await?;
    let b = enqueue(&env, "tenant-b", B_JOBS, None).await?;
    let (low, high) = if priorities {
        (Some("low"), Some("high"))
    } else {
        (None, None)
    };
    let c_low = enqueue(&env, "tenant-c", C_JOBS / 2, low).await?;
    let c_high = enqueue(&env, "tenant-c", C_JOBS / 2, high).await?;
    let mut redis = redis::Client::open(redis_server.url())?
        .get_multiplexed_async_connection()
        .await?;
    let before = command_calls(&mut redis).await?;

    let settings = env.worker_env(
        &sim.base_url,
        &[
            ("VIDQ__LIMITS__MAX_PROCESSING", &CAP.to_string()),
            ("VIDQ__JOBS__POLL_INTERVAL", "100ms"),
        ],
    );
    let _w1 = Worker::start(&format!("{name}-w1"), settings.clone()).await?;
    let _w2 = Worker::start(&format!("{name}-w2"), settings).await?;
    let all: Vec<(JobId, String)> = [&a, &b, &c_low, &c_high]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    wait_all_finished(&env, &all, Duration::from_secs(240)).await?;
    let after = command_calls(&mut redis).await?;

    let stats = sim.stats().await?;
    let delta =
        |name: &str| after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0);
    let total: u64 = after.keys().map(|k| delta(k)).sum();
    let n = all.len() as f64;
    let commands_per_job = total as f64 / n;
    let scripts_per_job = delta("evalsha") as f64 / n;
    println!(
        "redis per job: {commands_per_job:.1} commands, {scripts_per_job:.1} EVALSHA (submissions {}, jobs {})",
        stats.submit_requests,
        all.len()
    );
    Ok(Run {
        a,
        b,
        c_low,
        c_high,
        stats,
        env,
        sim,
        commands_per_job,
        scripts_per_job,
        _redis: redis_server,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bursting_tenant_does_not_starve_others_and_priorities_order_a_tenants_jobs()
-> anyhow::Result<()> {
    let Run {
        a,
        b,
        c_low,
        c_high,
        stats,
        env,
        sim,
        _redis,
        ..
    } = run("fairshare", true).await?;
    // When upstream accepted each job, by its source URL.
    let submitted: BTreeMap<&str, u64> = stats
        .jobs
        .values()
        .map(|j| (j.reference_video_url.as_str(), j.submitted_unix_ms))
        .collect();
    let times = |jobs: &[(JobId, String)]| -> Vec<u64> {
        let mut t: Vec<u64> = jobs
            .iter()
            .map(|(_, url)| submitted[url.as_str()])
            .collect();
        t.sort_unstable();
        t
    };
    let (ta, tb) = (times(&a), times(&b));
    let tc: Vec<u64> = {
        let mut t = times(&c_low);
        t.extend(times(&c_high));
        t.sort_unstable();
        t
    };
    let last_b = *tb.last().unwrap_or(&0);
    let last_c = *tc.last().unwrap_or(&0);
    let a_before_b = ta.iter().filter(|t| **t <= last_b).count();
    let a_before_c = ta.iter().filter(|t| **t <= last_c).count();
    println!(
        "B's {B_JOBS} all submitted within {a_before_b} of A's submissions, C's {C_JOBS} within {a_before_c} (A queued {A_JOBS} first)"
    );
    assert!(
        a_before_b <= 25,
        "B's {B_JOBS} jobs waited for {a_before_b} of A's submissions"
    );
    assert!(
        a_before_c <= 25,
        "C's {C_JOBS} jobs waited for {a_before_c} of A's submissions"
    );
    // Priorities order C's own jobs: every high one went before any low one.
    let (c_low_t, c_high_t) = (times(&c_low), times(&c_high));
    assert!(
        c_high_t.last() <= c_low_t.first(),
        "a low-priority job of C's went before a high one: high {c_high_t:?}, low {c_low_t:?}"
    );

    // The plan's cap held: never more running at once, nothing refused for it.
    println!("peak running upstream: {} (cap {CAP})", stats.peak_running);
    assert!(
        stats.peak_running <= u64::from(CAP),
        "{} jobs ran upstream at once",
        stats.peak_running
    );
    assert_eq!(
        stats.rejected.queue_limited, 0,
        "upstream refused a job over its cap"
    );
    assert_eq!(
        stats.submit_requests as usize,
        A_JOBS + B_JOBS + C_JOBS,
        "one submission per job"
    );

    let all: Vec<(JobId, String)> = [&a, &b, &c_low, &c_high]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let records = verify_outcomes(&env, &sim, &all).await?;
    assert!(records.iter().all(|r| r.state == JobState::Succeeded));
    Ok(())
}

/// The same burst without priorities, to compare what admission costs in Redis between
/// releases: `cargo test -p vidq-tests --test fair_share -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: prints Redis commands per job"]
async fn redis_cost_of_a_burst_through_the_cap() -> anyhow::Result<()> {
    let r = run("faircost", false).await?;
    println!(
        "COST commands/job {:.1} scripts/job {:.1} peak {} refused {}",
        r.commands_per_job, r.scripts_per_job, r.stats.peak_running, r.stats.rejected.queue_limited
    );
    Ok(())
}
