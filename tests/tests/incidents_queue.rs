//! Incidents of the queue's identity and clock guarantees, reproduced end to end with the real
//! binaries (`vidq-worker`, `vidq-sim`), a real Redis and s3s-fs:
//!
//! - skewed host clocks must not move leases or due times (they come from Redis `TIME`);
//! - a job has one live task of a kind at a time, whatever the reconciler pushes after a fleet
//!   outage or a long submit backlog (deterministic task ids, a push of a live id is a no-op);
//! - a webhook receiver that is down is retried until `webhooks.retry_for`, not until the
//!   crash limit counts its handled failures.
//!
//! Each prints one `incident:` line with the numbers it measured before asserting them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use vidq_core::{JobId, JobState, TransformRequest, TransformRequestInput};
use vidq_tests::incident::{lease_trouble, live_tasks_per_job, with_skewed_clock};
use vidq_tests::{
    Sim, TestEnv, Worker, count_states, enqueue_jobs, verify_outcomes, wait_all_finished,
    wait_until,
};

/// The worker's built-in settings, to check the defaults these tests rely on.
const WORKER_DEFAULTS: &str = include_str!("../../crates/vidq-worker/defaults.toml");
/// `reconciler.stale_after` as `defaults.toml` sets it (checked by [`default_stale_after`]).
const STALE_AFTER_DEFAULT: Duration = Duration::from_secs(120);

/// The default `reconciler.stale_after`, after checking `defaults.toml` still says so.
fn default_stale_after() -> Duration {
    assert!(
        WORKER_DEFAULTS.contains("stale_after = \"2m\""),
        "defaults.toml no longer sets reconciler.stale_after = \"2m\": update STALE_AFTER_DEFAULT"
    );
    STALE_AFTER_DEFAULT
}

type Jobs = [(JobId, String)];

/// Accepted submissions per job at the simulator (by the job's `reference_video_url`).
fn submissions(stats: &vidq_sim::Stats, jobs: &Jobs) -> Vec<u64> {
    jobs.iter()
        .map(|(_, url)| stats.submissions.get(url).copied().unwrap_or(0))
        .collect()
}

/// Result downloads per job: every upstream job made from the job's submissions counts.
fn downloads(stats: &vidq_sim::Stats, jobs: &Jobs) -> Vec<u64> {
    jobs.iter()
        .map(|(_, url)| {
            stats
                .jobs
                .values()
                .filter(|j| &j.reference_video_url == url)
                .map(|j| j.downloads)
                .sum()
        })
        .collect()
}

fn over_one(counts: &[u64]) -> usize {
    counts.iter().filter(|&&n| n > 1).count()
}

async fn states(env: &TestEnv, jobs: &Jobs) -> anyhow::Result<HashMap<JobId, JobState>> {
    let mut out = HashMap::new();
    for (id, _) in jobs {
        let job = env
            .producer
            .status(id)
            .await?
            .with_context(|| format!("job {id} has no record"))?;
        out.insert(*id, job.state);
    }
    Ok(out)
}

/// Jobs `processing` both before and after the live tasks were read (so they were processing
/// the whole time), with the number of live `poll` tasks each had.
async fn poll_tasks_of_processing_jobs(
    env: &TestEnv,
    jobs: &Jobs,
) -> anyhow::Result<Vec<(JobId, usize)>> {
    let before = states(env, jobs).await?;
    let live = live_tasks_per_job(env, "poll").await?;
    let after = states(env, jobs).await?;
    Ok(jobs
        .iter()
        .filter(|(id, _)| {
            before.get(id) == Some(&JobState::Processing)
                && after.get(id) == Some(&JobState::Processing)
        })
        .map(|(id, _)| (*id, live.get(&id.to_string()).copied().unwrap_or(0)))
        .collect())
}

fn lines_containing(log: &str, text: &str) -> usize {
    log.lines().filter(|l| l.contains(text)).count()
}

/// Three workers, at −40 s, on time and at +40 s, share slow transfers whose 3 s leases are
/// renewed several times each: no lease may be taken over, nothing done twice.
///
/// The +40 s worker joins once the on-time one holds transfer leases, as a rolling deploy
/// would add it: on today's code it takes over every lease it sees, since their deadlines are
/// in its past. (A +40 s and a −40 s worker alone never meet on today's code: the one behind
/// sees every task due 40 s or more in its future and claims none, and the one ahead, which
/// claims everything, renews its own leases in time.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skewed_clocks_change_nothing() -> anyhow::Result<()> {
    const JOBS: usize = 20;
    let env = TestEnv::new("skew").await?;
    // 768 KiB at 128 KiB/s: each transfer takes 6 s, two renewals of a 3 s lease at least.
    let sim = Sim::start(&[
        "--processing-min",
        "2s",
        "--processing-max",
        "4s",
        "--result-size",
        "768KiB",
        "--download-rate",
        "128KiB",
    ])
    .await?;
    let settings = [
        ("VIDQ__QUEUES__LEASE", "3s"),
        ("VIDQ__QUEUES__SUBMIT__CONCURRENCY", "2"),
        ("VIDQ__QUEUES__POLL__CONCURRENCY", "4"),
        ("VIDQ__QUEUES__TRANSFER__CONCURRENCY", "2"),
    ];
    let behind = with_skewed_clock(env.worker_env(&sim.base_url, &settings), "-40s")?;
    let ahead = with_skewed_clock(env.worker_env(&sim.base_url, &settings), "+40s")?;
    let mut workers = vec![
        Worker::start("incident-skew-behind", behind).await?,
        Worker::start(
            "incident-skew-on-time",
            env.worker_env(&sim.base_url, &settings),
        )
        .await?,
    ];
    let started = Instant::now();
    let jobs = enqueue_jobs(&env, JOBS).await?;
    let transfer_leases = format!("{}:{{transfer}}:lease", env.prefix);
    let client = redis::Client::open(env.redis_url.as_str())?;
    let conn = client.get_multiplexed_async_connection().await?;
    wait_until("transfers under lease", Duration::from_secs(60), || {
        let (key, mut conn) = (&transfer_leases, conn.clone());
        async move {
            let leased: u64 = redis::cmd("ZCARD").arg(key).query_async(&mut conn).await?;
            Ok((leased >= 2).then_some(()))
        }
    })
    .await?;
    workers.push(Worker::start("incident-skew-ahead", ahead).await?);
    wait_all_finished(&env, &jobs, Duration::from_secs(240)).await?;
    // Let any second run of a task (a taken-over lease) reach upstream before counting.
    let settled = wait_until("the queues to settle", Duration::from_secs(30), || async {
        let mut live = 0;
        for queue in ["submit", "poll", "transfer"] {
            live += live_tasks_per_job(&env, queue).await?.len();
        }
        Ok((live == 0).then_some(()))
    })
    .await;

    let stats = sim.stats().await?;
    let subs = submissions(&stats, &jobs);
    let dls = downloads(&stats, &jobs);
    let trouble: Vec<String> = workers
        .iter()
        .flat_map(|w| lease_trouble(&w.log()))
        .collect();
    let counts = count_states(&env, &jobs).await?;
    // Who did the work (-40 s, on time, +40 s): submissions and stored videos per worker.
    let work: Vec<(usize, usize)> = workers
        .iter()
        .map(|w| {
            let log = w.log();
            (
                lines_containing(&log, "submitted upstream"),
                lines_containing(&log, "video stored; job succeeded"),
            )
        })
        .collect();
    eprintln!(
        "incident: skewed_clocks_change_nothing: {JOBS} jobs in {:.1}s; states {counts:?}; \
         (submitted, stored) per worker -40s/on time/+40s {work:?}; \
         accepted submissions {} ({} jobs submitted more than once, max {}); downloads {} \
         ({} jobs downloaded more than once, max {}); {} lease-trouble log lines",
        started.elapsed().as_secs_f64(),
        subs.iter().sum::<u64>(),
        over_one(&subs),
        subs.iter().max().unwrap_or(&0),
        dls.iter().sum::<u64>(),
        over_one(&dls),
        dls.iter().max().unwrap_or(&0),
        trouble.len(),
    );
    for line in trouble.iter().take(5) {
        eprintln!("incident:   {line}");
    }
    assert!(
        subs.iter().all(|&n| n == 1),
        "accepted submissions per job: {subs:?}"
    );
    assert!(dls.iter().all(|&n| n == 1), "downloads per job: {dls:?}");
    settled?;
    assert!(
        trouble.is_empty(),
        "lease trouble in the logs: {trouble:#?}"
    );
    verify_outcomes(&env, &sim, &jobs).await?;
    for worker in &mut workers {
        assert!(worker.is_running(), "a worker exited:\n{}", worker.log());
    }
    drop(workers);
    env.cleanup().await?;
    Ok(())
}

/// The whole fleet is SIGKILLed while every job is processing upstream and stays down longer
/// than the default `reconciler.stale_after`, so the restarted reconciler finds every job
/// stale while its poll task is still queued. A job must keep exactly one live poll task, and
/// upstream must be asked about it no more often than one poller would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_down_longer_than_stale_after_keeps_one_poll_task_per_job() -> anyhow::Result<()> {
    const JOBS: usize = 20;
    const POLL_INTERVAL: Duration = Duration::from_secs(1);
    let stale_after = default_stale_after();
    let env = TestEnv::new("fleet-down").await?;
    // Long enough to be still processing ~40 s after the outage (~125 s) ends.
    let sim = Sim::start(&[
        "--processing-min",
        "165s",
        "--processing-max",
        "175s",
        "--result-size",
        "64KiB",
    ])
    .await?;
    let settings = [
        ("VIDQ__JOBS__POLL_INTERVAL", "1s"),
        // Rounds often, so the restarted fleet surely runs one; stale_after stays default.
        ("VIDQ__RECONCILER__INTERVAL", "1s"),
    ];
    let mut workers = vec![
        Worker::start("incident-fleet-a", env.worker_env(&sim.base_url, &settings)).await?,
        Worker::start("incident-fleet-b", env.worker_env(&sim.base_url, &settings)).await?,
    ];
    let jobs = enqueue_jobs(&env, JOBS).await?;
    wait_until(
        "every job processing with its poll task",
        Duration::from_secs(60),
        || async {
            let polled = poll_tasks_of_processing_jobs(&env, &jobs).await?;
            Ok((polled.len() == JOBS && polled.iter().all(|(_, n)| *n == 1)).then_some(()))
        },
    )
    .await?;

    for worker in &mut workers {
        worker.kill9().await?;
    }
    let killed = Instant::now();
    let before = sim.stats().await?;
    // Every job's next poll was expected at most one interval after the kill: once this much
    // time has passed, the reconciler sees each of them later than stale_after.
    let outage = stale_after + POLL_INTERVAL + Duration::from_secs(3);
    wait_until(
        "the outage to outlast stale_after",
        outage + Duration::from_secs(30),
        || async { Ok((killed.elapsed() >= outage).then_some(())) },
    )
    .await?;
    let still_processing = states(&env, &jobs)
        .await?
        .values()
        .filter(|s| **s == JobState::Processing)
        .count();
    anyhow::ensure!(
        still_processing == JOBS,
        "only {still_processing} of {JOBS} jobs are processing after the outage: the rig is off"
    );
    for worker in &mut workers {
        worker.restart().await?;
    }
    let restarted = Instant::now();
    let down = restarted - killed;

    // Sample until every job ended: each job processing throughout a sample has one poll task.
    let mut samples = 0usize;
    let mut bad_samples = 0usize;
    let mut max_tasks = 0usize;
    let mut first_bad: Option<String> = None;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let polled = poll_tasks_of_processing_jobs(&env, &jobs).await?;
        samples += 1;
        let bad: Vec<_> = polled.iter().filter(|(_, n)| *n != 1).collect();
        if !bad.is_empty() {
            bad_samples += 1;
            if first_bad.is_none() {
                first_bad = Some(format!(
                    "{:.1}s after the restart: {} of {} processing jobs, live poll tasks {:?}",
                    restarted.elapsed().as_secs_f64(),
                    bad.len(),
                    polled.len(),
                    bad.iter().map(|(_, n)| *n).collect::<Vec<_>>()
                ));
            }
        }
        max_tasks = max_tasks.max(polled.iter().map(|(_, n)| *n).max().unwrap_or(0));
        let ended = count_states(&env, &jobs)
            .await?
            .iter()
            .filter(|(s, _)| s.is_terminal())
            .map(|(_, n)| n)
            .sum::<usize>();
        if ended == JOBS {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "jobs still unfinished 180 s after the restart"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // One poller asks about a job once per interval while the fleet is up and the job
    // processes, plus the one request that finds it done: for a job processing P seconds of
    // which the fleet was down D, (P - D) / poll_interval + 1. Polls run a little later than
    // the interval (the request and the ack take time), the kill and the restart cut off at
    // most one request each; 10% covers both. A second poller per job doubles the part after
    // the restart.
    let stats = sim.stats().await?;
    let mut off = Vec::new();
    let mut ratios = Vec::new();
    for (id, _) in &jobs {
        let job = env.producer.status(id).await?.context("job record")?;
        let img = job.img_uuid.as_deref().context("job without upstream id")?;
        let decided = stats
            .jobs
            .get(img)
            .context("upstream does not know the job")?;
        let processing = Duration::from_millis(decided.processing_ms);
        let expected =
            processing.saturating_sub(down).as_secs_f64() / POLL_INTERVAL.as_secs_f64() + 1.0;
        let seen = stats.status_requests.get(img).copied().unwrap_or(0);
        let before_kill = before.status_requests.get(img).copied().unwrap_or(0);
        ratios.push(seen as f64 / expected);
        if (seen as f64 - expected).abs() > 0.1 * expected {
            off.push(format!(
                "{id}: {seen} status requests ({before_kill} before the kill), expected {expected:.1}"
            ));
        }
    }
    let subs = submissions(&stats, &jobs);
    let mean_ratio = ratios.iter().sum::<f64>() / ratios.len() as f64;
    let logs: String = workers.iter().map(Worker::log).collect();
    eprintln!(
        "incident: fleet_down_longer_than_stale_after: {JOBS} jobs, down {:.1}s \
         (stale_after {stale_after:?}); {samples} samples, {bad_samples} with a processing job \
         not holding exactly one poll task, most live poll tasks for one job {max_tasks}; \
         first: {}; status requests / expected: mean {mean_ratio:.2}, {} of {JOBS} jobs off by \
         more than 10%; reconciler re-enqueued {} jobs; accepted submissions {}",
        down.as_secs_f64(),
        first_bad.as_deref().unwrap_or("none"),
        off.len(),
        lines_containing(&logs, "re-enqueued a stuck job"),
        subs.iter().sum::<u64>(),
    );
    for line in off.iter().take(5) {
        eprintln!("incident:   {line}");
    }
    assert_eq!(
        bad_samples, 0,
        "a processing job had other than one live poll task: {first_bad:?}"
    );
    assert!(off.is_empty(), "status requests off the bound: {off:#?}");
    verify_outcomes(&env, &sim, &jobs).await?;
    drop(workers);
    env.cleanup().await?;
    Ok(())
}

/// Upstream takes 2 s to answer and each of two workers submits one job at a time, so the
/// queued jobs wait longer than the default `reconciler.stale_after` for their turn: the
/// reconciler's pushes for them must not make a second submission of any job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_backlog_longer_than_stale_after_pays_once() -> anyhow::Result<()> {
    const JOBS: usize = 160;
    const LATENCY_S: u64 = 2;
    const WORKERS: usize = 2;
    let stale_after = default_stale_after();
    // One submission per worker at a time, each taking at least the latency: the backlog
    // lasts at least this long, past stale_after.
    let backlog = Duration::from_secs(JOBS as u64 * LATENCY_S / WORKERS as u64);
    assert!(backlog > stale_after + Duration::from_secs(15));
    let env = TestEnv::new("backlog").await?;
    let latency = format!("{LATENCY_S}s");
    let sim = Sim::start(&[
        "--latency",
        &latency,
        "--processing-min",
        "1s",
        "--processing-max",
        "2s",
        "--result-size",
        "16KiB",
    ])
    .await?;
    let settings = [
        ("VIDQ__QUEUES__SUBMIT__CONCURRENCY", "1"),
        // Rounds often, so one surely runs while jobs are stale; stale_after stays default.
        ("VIDQ__RECONCILER__INTERVAL", "2s"),
    ];
    let mut workers = Vec::new();
    for i in 0..WORKERS {
        workers.push(
            Worker::start(
                &format!("incident-backlog-{i}"),
                env.worker_env(&sim.base_url, &settings),
            )
            .await?,
        );
    }
    let started = Instant::now();
    let jobs = enqueue_jobs(&env, JOBS).await?;
    // Measured: how many jobs were still waiting for their submission once stale_after passed.
    // Sampled every 500 ms (150 records a sample), with a deadline.
    let deadline = started + backlog * 2 + Duration::from_secs(120);
    let mut queued_at_stale_after = None;
    loop {
        let counts = count_states(&env, &jobs).await?;
        if queued_at_stale_after.is_none()
            && started.elapsed() >= stale_after + Duration::from_secs(5)
        {
            queued_at_stale_after = Some(counts.get(&JobState::Queued).copied().unwrap_or(0));
        }
        let ended: usize = counts
            .iter()
            .filter(|(s, _)| s.is_terminal())
            .map(|(_, n)| n)
            .sum();
        if ended == JOBS {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {ended} of {JOBS} jobs ended after {:?}: {counts:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let took = started.elapsed();

    let stats = sim.stats().await?;
    let subs = submissions(&stats, &jobs);
    let logs: String = workers.iter().map(Worker::log).collect();
    eprintln!(
        "incident: submit_backlog_longer_than_stale_after: {JOBS} jobs in {:.1}s; {} still \
         queued {:?} after the start (stale_after {stale_after:?}); accepted submissions {} \
         for {JOBS} jobs ({} jobs submitted more than once, max {}); submit requests {}; \
         reconciler re-enqueued {} jobs; {} uncertain re-submissions logged",
        took.as_secs_f64(),
        queued_at_stale_after.map_or("?".to_owned(), |n| n.to_string()),
        stale_after + Duration::from_secs(5),
        subs.iter().sum::<u64>(),
        over_one(&subs),
        subs.iter().max().unwrap_or(&0),
        stats.submit_requests,
        lines_containing(&logs, "re-enqueued a stuck job"),
        lines_containing(&logs, "submitting again after an interrupted submission"),
    );
    anyhow::ensure!(
        queued_at_stale_after.unwrap_or(0) > 0,
        "the backlog did not outlast stale_after: the rig is off"
    );
    assert!(
        subs.iter().all(|&n| n == 1),
        "accepted submissions per job: {subs:?}"
    );
    verify_outcomes(&env, &sim, &jobs).await?;
    drop(workers);
    env.cleanup().await?;
    Ok(())
}

/// An HTTP/1.1 receiver on 127.0.0.1:0 that answers 500 to every request until `down_for`
/// after the first one, then 200; one request per connection. Records the answers.
struct FlakyReceiver {
    base_url: String,
    answers: Arc<Mutex<Vec<(Instant, u16)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FlakyReceiver {
    async fn start(down_for: Duration) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let answers = Arc::new(Mutex::new(Vec::new()));
        let log = answers.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let mut stream = BufReader::new(stream);
                if read_request(&mut stream).await.is_err() {
                    continue;
                }
                let status = {
                    let mut log = log
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let now = Instant::now();
                    let first = log.first().map_or(now, |(at, _)| *at);
                    let status = if now < first + down_for { 500 } else { 200 };
                    log.push((now, status));
                    status
                };
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = stream.get_mut().write_all(reply.as_bytes()).await;
                let _ = stream.get_mut().shutdown().await;
            }
        });
        Ok(Self {
            base_url,
            answers,
            task,
        })
    }

    fn answers(&self) -> Vec<u16> {
        self.answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(_, status)| *status)
            .collect()
    }
}

impl Drop for FlakyReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request (line, headers, body) and discards it.
async fn read_request(stream: &mut BufReader<tokio::net::TcpStream>) -> anyhow::Result<()> {
    let mut line = String::new();
    anyhow::ensure!(stream.read_line(&mut line).await? > 0, "closed");
    let mut len = 0usize;
    loop {
        line.clear();
        stream.read_line(&mut line).await?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            len = value.trim().parse()?;
        }
    }
    let mut body = vec![0; len];
    stream.read_exact(&mut body).await?;
    Ok(())
}

/// A receiver down for longer than the notify queue's crash limit (`max_deliveries`, default)
/// times its `backoff_max`, but for less than `webhooks.retry_for`: the failures are handled
/// ones, so the webhook is retried until the receiver is back and delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_retry_until_retry_for_not_max_deliveries() -> anyhow::Result<()> {
    let max_deliveries = vidq_queue::QueueConfig::new("notify").max_deliveries;
    let backoff_max = Duration::from_secs(1);
    let down_for = backoff_max * u32::try_from(max_deliveries)? + Duration::from_secs(4);
    let retry_for = down_for * 3;
    let env = TestEnv::new("webhook-retry-for").await?;
    let sim = Sim::start(&[
        "--processing-min",
        "200ms",
        "--processing-max",
        "400ms",
        "--result-size",
        "8KiB",
    ])
    .await?;
    let receiver = FlakyReceiver::start(down_for).await?;
    let retry_for_text = format!("{}s", retry_for.as_secs());
    let settings = [
        ("VIDQ__WEBHOOKS__SECRET", "whsec-incident-4b1f"),
        ("VIDQ__WEBHOOKS__ALLOW_HTTP_HOSTS", "127.0.0.1"),
        ("VIDQ__WEBHOOKS__ALLOW_PRIVATE", "true"),
        ("VIDQ__WEBHOOKS__RETRY_FOR", retry_for_text.as_str()),
        ("VIDQ__WEBHOOKS__TIMEOUT", "5s"),
        ("VIDQ__QUEUES__NOTIFY__BACKOFF", "200ms"),
        ("VIDQ__QUEUES__NOTIFY__BACKOFF_MAX", "1s"),
    ];
    let worker = Worker::start(
        "incident-webhook-retry-for",
        env.worker_env(&sim.base_url, &settings),
    )
    .await?;
    let request = TransformRequest::try_from(TransformRequestInput {
        reference_video_url: Some(format!("https://videos.example/{}/w.mp4", env.prefix)),
        model: Some(2000),
        callback_url: Some(format!("{}/hook", receiver.base_url)),
        ..TransformRequestInput::default()
    })?;
    let id = env.producer.enqueue(request).await?;
    let jobs = [(id, String::new())];
    wait_all_finished(&env, &jobs, Duration::from_secs(60)).await?;

    let dead_key = format!("{}:{{notify}}:dead", env.prefix);
    let why_key = format!("{}:{{notify}}:why", env.prefix);
    let client = redis::Client::open(env.redis_url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    // Until delivered and settled, or the task is dead (today's failure, measured).
    let dead: u64 = wait_until(
        "the webhook to be delivered or to die",
        retry_for + Duration::from_secs(30),
        || {
            let (env, receiver, dead_key) = (&env, &receiver, &dead_key);
            let mut conn = conn.clone();
            async move {
                let dead: u64 = redis::cmd("ZCARD")
                    .arg(dead_key)
                    .query_async(&mut conn)
                    .await?;
                let delivered = receiver.answers().contains(&200);
                let live = live_tasks_per_job(env, "notify").await?.len();
                Ok((dead > 0 || (delivered && live == 0)).then_some(dead))
            }
        },
    )
    .await?;
    let reasons: Vec<String> = redis::cmd("HVALS")
        .arg(&why_key)
        .query_async(&mut conn)
        .await?;
    let answers = receiver.answers();
    eprintln!(
        "incident: webhooks_retry_until_retry_for: receiver down {down_for:?} (max_deliveries \
         {max_deliveries} × backoff_max {backoff_max:?} + 4 s), retry_for {retry_for:?}; {} \
         requests: {} answered 500, {} answered 200; dead tasks {dead} {reasons:?}",
        answers.len(),
        answers.iter().filter(|&&s| s == 500).count(),
        answers.iter().filter(|&&s| s == 200).count(),
    );
    assert_eq!(dead, 0, "the notify task went dead: {reasons:?}");
    assert_eq!(
        answers.iter().filter(|&&s| s == 200).count(),
        1,
        "delivered exactly once: {answers:?}"
    );
    assert_eq!(answers.last(), Some(&200), "nothing after the delivery");
    let job = env.producer.status(&id).await?.context("job record")?;
    assert_eq!(job.state, JobState::Succeeded);
    assert!(lease_trouble(&worker.log()).is_empty());
    drop(worker);
    env.cleanup().await?;
    Ok(())
}

#[test]
fn default_stale_after_matches_the_worker_defaults() {
    assert_eq!(default_stale_after(), Duration::from_secs(120));
}
