//! Incidents of the pipeline's money guarantees, reproduced end to end with the real binaries
//! (`vidq-worker`, `vidq`, `vidq-sim`), a real Redis and an s3s-fs of each test's own: the
//! pipeline never pays twice (one upstream submission per job) and never throws paid work
//! away (a job upstream finished is stored, whatever happened meanwhile), and what it stops
//! leaves nothing behind (no object for a canceled job, no open multipart upload, no task).
//!
//! Open multipart uploads are read with `ListMultipartUploads`; s3s-fs 0.14 answers it
//! NotImplemented, so there they are read from its data folder (`vidq_tests::rigs`).
//! `VIDQ_TEST_PIPELINE_S3=moto` runs the same tests on moto's server, which lists them.
//!
//! Each test prints one `incident:` line with what it measured before asserting it. They run
//! one at a time (each starts several processes; on two cores, side by side they would skew
//! each other's timing).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use vidq_core::{JobId, JobState};
use vidq_tests::rigs::{
    PrivateS3, Tally, forget_keys, open_uploads, tally, test_env, wait_queues_clear,
};
use vidq_tests::{
    Persistence, PrivateRedis, Sim, TestEnv, Worker, bin_path, count_states, enqueue_jobs,
    redis_url, verify_outcomes, wait_all_finished, wait_until,
};

/// One scenario at a time, across the test threads of this binary.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The smallest part S3 accepts (but the last): results of 16 MiB make four parts.
const PART_SIZE: &str = "5242880";

type Jobs = [(JobId, String)];

fn ids(jobs: &Jobs) -> Vec<JobId> {
    jobs.iter().map(|(id, _)| *id).collect()
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Waits until every job of `jobs` is in `state`.
async fn wait_all_in(
    env: &TestEnv,
    jobs: &Jobs,
    state: JobState,
    timeout: Duration,
) -> anyhow::Result<()> {
    wait_until(&format!("every job {state}"), timeout, || async {
        let counts = count_states(env, jobs).await?;
        Ok((counts.get(&state).copied() == Some(jobs.len())).then_some(()))
    })
    .await
}

/// Waits until every job of `jobs` has ended; on timeout the error says where each one is
/// (states, live and dead tasks, what upstream decided).
async fn wait_ended(
    env: &TestEnv,
    sim: &Sim,
    s3: &PrivateS3,
    jobs: &Jobs,
    timeout: Duration,
) -> anyhow::Result<()> {
    let Err(err) = wait_all_finished(env, jobs, timeout).await else {
        return Ok(());
    };
    let counted = tally(env, sim, s3, jobs).await?;
    let mut stuck = Vec::new();
    for (id, _) in jobs {
        let job = env.producer.status(id).await?.context("job record")?;
        if !job.state.is_terminal() {
            let last = job
                .history
                .last()
                .map(|t| format!("{} -> {}", t.from, t.to));
            stuck.push(format!("{id} {} (last {last:?})", job.state));
        }
    }
    Err(err.context(format!("{counted}; unfinished: {stuck:?}")))
}

/// The end an operator checks after the incident: every job ended as the simulator decided,
/// one submission each, one object per succeeded job with upstream's bytes (all checked by
/// [`verify_outcomes`]), no task of an ended job due or leased, no dead task, no open
/// multipart upload. Prints the `incident:` line first.
async fn assert_clean_end(
    name: &str,
    env: &TestEnv,
    sim: &Sim,
    s3: &PrivateS3,
    jobs: &Jobs,
    started: Instant,
) -> anyhow::Result<Tally> {
    let counted = tally(env, sim, s3, jobs).await?;
    println!(
        "incident: {name}: {} jobs after {:.1} s: {counted}",
        jobs.len(),
        started.elapsed().as_secs_f64()
    );
    verify_outcomes(env, sim, jobs).await?;
    wait_queues_clear(env, &ids(jobs)).await?;
    anyhow::ensure!(
        counted.dead.is_empty(),
        "dead tasks left: {:?}",
        counted.dead
    );
    let (open, seen) = open_uploads(s3, &env.bucket).await?;
    anyhow::ensure!(
        open.is_empty(),
        "{} multipart uploads left open (seen through {seen:?}): {open:?}",
        open.len()
    );
    Ok(counted)
}

/// Runs `scenario`, then deletes the test's Redis keys whatever it returned.
async fn run<F>(env: &TestEnv, scenario: F) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let outcome = scenario.await;
    let forgotten = forget_keys(env).await;
    outcome?;
    forgotten
}

/// 10 jobs with a 20 s deadline, upstream taking 4–6 s. Once all are `processing`, the whole
/// fleet is SIGKILLed and kept down until every job is past its deadline and upstream has
/// finished them all; then it starts again. Upstream's finished (and paid) work is delivered:
/// every job `succeeded`, not `expired`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_down_past_the_deadline_still_delivers_finished_work() -> anyhow::Result<()> {
    const NAME: &str = "fleet_down_past_the_deadline";
    let _serial = SERIAL.lock().await;
    let s3 = PrivateS3::start().await?;
    let env = test_env(
        "pipe-deadline",
        &redis_url(),
        s3.endpoint(),
        Some(Duration::from_secs(20)),
    )
    .await?;
    run(&env, async {
        let sim = Sim::start(&[
            "--processing-min",
            "4s",
            "--processing-max",
            "6s",
            "--result-size",
            "64KiB",
        ])
        .await?;
        let settings = env.worker_env(&sim.base_url, &[]);
        let mut fleet = vec![
            Worker::start("pipe-deadline-w1", settings.clone()).await?,
            Worker::start("pipe-deadline-w2", settings).await?,
        ];
        let started = Instant::now();
        let jobs = enqueue_jobs(&env, 10).await?;
        wait_all_in(&env, &jobs, JobState::Processing, Duration::from_secs(30)).await?;
        for worker in &mut fleet {
            worker.kill9().await?;
        }
        let killed_at = started.elapsed();

        // The outage: until every deadline has passed and upstream has finished every job.
        let mut last_deadline = 0;
        for (id, _) in &jobs {
            let job = env.producer.status(id).await?.context("job record")?;
            last_deadline = last_deadline.max(job.deadline_at);
        }
        wait_until(
            "every deadline passed and every job finished upstream",
            Duration::from_secs(60),
            || async {
                let stats = sim.stats().await?;
                let all_done =
                    stats.jobs.len() == jobs.len() && stats.jobs.values().all(|j| j.finished);
                Ok((all_done && unix_ms() > last_deadline + 1_000).then_some(()))
            },
        )
        .await?;
        let stalled = count_states(&env, &jobs).await?;
        anyhow::ensure!(
            stalled.get(&JobState::Processing).copied() == Some(jobs.len()),
            "something moved while the fleet was down: {stalled:?}"
        );
        let down_for = started.elapsed() - killed_at;
        for worker in &mut fleet {
            worker.restart().await?;
        }
        let finished = wait_ended(&env, &sim, &s3, &jobs, Duration::from_secs(60)).await;
        println!(
            "incident: {NAME}: fleet SIGKILLed at {:.1} s, down {:.1} s (past the 20 s deadline)",
            killed_at.as_secs_f64(),
            down_for.as_secs_f64()
        );
        finished?;
        let counted = assert_clean_end(NAME, &env, &sim, &s3, &jobs, started).await?;
        anyhow::ensure!(counted.in_state("succeeded") == jobs.len(), "{counted}");
        Ok(())
    })
    .await
}

/// 8 jobs processing upstream (6–9 s); the status endpoint then answers 5xx for 15 s, far
/// longer than the poll queue's 3 attempts with 300 ms..1 s backoff; then it heals. Transient
/// errors are retried until the deadline: every job succeeds, none fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_5xx_longer_than_poll_attempts_never_fails_paid_work() -> anyhow::Result<()> {
    const NAME: &str = "upstream_5xx_longer_than_poll_attempts";
    const OUTAGE: Duration = Duration::from_secs(15);
    let _serial = SERIAL.lock().await;
    let s3 = PrivateS3::start().await?;
    let env = test_env("pipe-5xx", &redis_url(), s3.endpoint(), None).await?;
    run(&env, async {
        let sim = Sim::start(&[
            "--processing-min",
            "6s",
            "--processing-max",
            "9s",
            "--result-size",
            "64KiB",
        ])
        .await?;
        let settings = env.worker_env(
            &sim.base_url,
            &[
                ("VIDQ__QUEUES__POLL__MAX_ATTEMPTS", "3"),
                ("VIDQ__QUEUES__POLL__BACKOFF", "300ms"),
                ("VIDQ__QUEUES__POLL__BACKOFF_MAX", "1s"),
            ],
        );
        let _worker = Worker::start("pipe-5xx-w1", settings).await?;
        let started = Instant::now();
        let jobs = enqueue_jobs(&env, 8).await?;
        wait_all_in(&env, &jobs, JobState::Processing, Duration::from_secs(30)).await?;
        // Each job polled at least once, so the outage hits running poll loops.
        wait_until("every job polled once", Duration::from_secs(30), || async {
            let stats = sim.stats().await?;
            Ok((stats.status_requests.len() == jobs.len()).then_some(()))
        })
        .await?;
        let unfinished = sim
            .stats()
            .await?
            .jobs
            .values()
            .filter(|j| !j.finished)
            .count();
        anyhow::ensure!(
            unfinished > 0,
            "upstream finished every job before the outage"
        );

        sim.set_faults(&serde_json::json!({ "rate_5xx": 1.0 }))
            .await?;
        let outage_from = Instant::now();
        // Hold the outage for OUTAGE (the incident itself), watching what the fleet does.
        let during = wait_until(
            "the outage to last",
            OUTAGE + Duration::from_secs(5),
            || async {
                let counts = count_states(&env, &jobs).await?;
                Ok((outage_from.elapsed() >= OUTAGE).then_some(counts))
            },
        )
        .await?;
        sim.set_faults(&serde_json::json!({})).await?;
        let injected = sim.stats().await?.faults.http_5xx;
        anyhow::ensure!(
            injected >= jobs.len() as u64,
            "only {injected} status requests met the outage"
        );
        println!(
            "incident: {NAME}: {unfinished} of {} jobs unfinished upstream when status requests \
             began answering 5xx; {injected} answered 5xx over {:.1} s; states at the end of \
             the outage {during:?}",
            jobs.len(),
            outage_from.elapsed().as_secs_f64()
        );

        wait_ended(&env, &sim, &s3, &jobs, Duration::from_secs(60)).await?;
        let counted = assert_clean_end(NAME, &env, &sim, &s3, &jobs, started).await?;
        anyhow::ensure!(counted.in_state("succeeded") == jobs.len(), "{counted}");
        Ok(())
    })
    .await
}

/// 4 results of 16 MiB (4 parts of 5 MiB each) served at 2 MiB/s. A first worker running 2
/// transfers at once takes them all (it claims in batches); once 2 multipart uploads are open
/// with a part stored, it is SIGKILLed (its uploads are orphaned), a second worker starts and the
/// first starts again. Every job succeeds with one object of upstream's bytes, and no
/// multipart upload is left open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_during_multipart_uploads_leaves_no_open_upload() -> anyhow::Result<()> {
    const NAME: &str = "worker_killed_during_multipart_uploads";
    let _serial = SERIAL.lock().await;
    let s3 = PrivateS3::start().await?;
    let env = test_env("pipe-multipart", &redis_url(), s3.endpoint(), None).await?;
    run(&env, async {
        let sim = Sim::start(&[
            "--processing-min",
            "200ms",
            "--processing-max",
            "500ms",
            "--result-size",
            "16MiB",
            "--download-rate",
            "2MiB",
        ])
        .await?;
        let settings = env.worker_env(
            &sim.base_url,
            &[
                ("VIDQ__STORAGE__PART_SIZE", PART_SIZE),
                ("VIDQ__STORAGE__SINGLE_PUT_MAX", "0"),
                ("VIDQ__QUEUES__TRANSFER__CONCURRENCY", "2"),
            ],
        );
        let mut victim = Worker::start("pipe-multipart-w1", settings.clone()).await?;
        let started = Instant::now();
        let jobs = enqueue_jobs(&env, 4).await?;
        // The only worker yet: the uploads open are its own.
        let (in_flight, seen) = wait_until(
            "2 multipart uploads open with a part stored",
            Duration::from_secs(60),
            || async {
                let (open, seen) = open_uploads(&s3, &env.bucket).await?;
                let stored = open
                    .iter()
                    .filter(|u| u.parts.is_none_or(|p| p >= 1))
                    .count();
                Ok((stored >= 2).then_some((open, seen)))
            },
        )
        .await?;
        victim.kill9().await?;
        let killed_at = started.elapsed();
        let _other = Worker::start("pipe-multipart-w2", settings).await?;
        victim.restart().await?;
        println!(
            "incident: {NAME}: the worker SIGKILLed at {:.1} s with {} uploads open (seen \
             through {seen:?}), parts stored {:?}",
            killed_at.as_secs_f64(),
            in_flight.len(),
            in_flight.iter().map(|u| u.parts).collect::<Vec<_>>()
        );

        wait_ended(&env, &sim, &s3, &jobs, Duration::from_secs(90)).await?;
        let counted = assert_clean_end(NAME, &env, &sim, &s3, &jobs, started).await?;
        anyhow::ensure!(counted.in_state("succeeded") == jobs.len(), "{counted}");
        // The kill did interrupt transfers: some results were downloaded again.
        anyhow::ensure!(
            counted.downloads > jobs.len() as u64,
            "no transfer was interrupted ({} downloads)",
            counted.downloads
        );
        Ok(())
    })
    .await
}

/// Two results of 16 MiB served at 2 MiB/s. While the first job's multipart upload is in
/// flight, an operator cancels it with `vidq cancel`. Once its transfer task is over, the job is
/// `canceled`, no object exists under its key and no upload of it is open; the other job
/// succeeds as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_mid_transfer_leaves_no_object() -> anyhow::Result<()> {
    const NAME: &str = "a_job_cancelled_mid_transfer";
    let _serial = SERIAL.lock().await;
    let s3 = PrivateS3::start().await?;
    let env = test_env("pipe-cancel", &redis_url(), s3.endpoint(), None).await?;
    run(&env, async {
        let sim = Sim::start(&[
            "--processing-min",
            "200ms",
            "--processing-max",
            "500ms",
            "--result-size",
            "16MiB",
            "--download-rate",
            "2MiB",
        ])
        .await?;
        let settings = env.worker_env(
            &sim.base_url,
            &[
                ("VIDQ__STORAGE__PART_SIZE", PART_SIZE),
                ("VIDQ__STORAGE__SINGLE_PUT_MAX", "0"),
            ],
        );
        let _worker = Worker::start("pipe-cancel-w1", settings).await?;
        let started = Instant::now();
        let jobs = enqueue_jobs(&env, 2).await?;
        let (target, _) = &jobs[0];
        let key = env.storage.object_key(&target.to_string());
        let parts_before = wait_until(
            "the job's upload in flight with a part stored",
            Duration::from_secs(60),
            || async {
                let (open, _) = open_uploads(&s3, &env.bucket).await?;
                let job = env.producer.status(target).await?.context("job record")?;
                let part = open
                    .iter()
                    .find(|u| u.key == key && u.parts.is_none_or(|p| p >= 1))
                    .map(|u| u.parts);
                Ok(part.filter(|_| job.state == JobState::Transferring))
            },
        )
        .await?;

        let out = tokio::process::Command::new(bin_path("vidq")?)
            .args(["cancel", &target.to_string()])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("VIDQ__REDIS__URL", &env.redis_url)
            .env("VIDQ__REDIS__PREFIX", &env.prefix)
            .output()
            .await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        anyhow::ensure!(
            out.status.success() && stdout.contains("canceled"),
            "vidq cancel: {}: {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let canceled_at = started.elapsed();

        // The canceled job's transfer task runs to its end (or stops early), then is gone.
        wait_queues_clear(&env, &[*target]).await?;
        wait_ended(&env, &sim, &s3, &jobs, Duration::from_secs(60)).await?;
        let counted = tally(&env, &sim, &s3, &jobs).await?;
        let object = env
            .s3
            .client()
            .head_object()
            .bucket(&env.bucket)
            .key(&key)
            .send()
            .await;
        let object_bytes = match &object {
            Ok(head) => Some(head.content_length().unwrap_or(0)),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => None,
            Err(err) => anyhow::bail!("HeadObject {key}: {err:?}"),
        };
        let (open, seen) = open_uploads(&s3, &env.bucket).await?;
        let job = env.producer.status(target).await?.context("job record")?;
        println!(
            "incident: {NAME}: canceled at {:.1} s with parts stored {parts_before:?}; job {}, \
             object under its key: {object_bytes:?} bytes, open uploads {} (seen through \
             {seen:?}); {counted}",
            canceled_at.as_secs_f64(),
            job.state,
            open.len()
        );
        anyhow::ensure!(job.state == JobState::Canceled, "the job is {}", job.state);
        anyhow::ensure!(
            object_bytes.is_none(),
            "the canceled job's key {key} holds an object of {object_bytes:?} bytes"
        );
        anyhow::ensure!(open.is_empty(), "uploads left open: {open:?}");
        let stats = sim.stats().await?;
        anyhow::ensure!(
            stats.submissions.get(&jobs[0].1).copied() == Some(1),
            "the canceled job was submitted {:?} times",
            stats.submissions.get(&jobs[0].1)
        );
        // The other job: as upstream decided, and the bucket holds its object only.
        assert_clean_end(NAME, &env, &sim, &s3, &jobs[1..], started).await?;
        Ok(())
    })
    .await
}

/// A private redis-server with `appendonly yes` and `appendfsync always` under two workers
/// running 12 jobs (upstream 2–4 s, 1 MiB results at 512 KiB/s). Once every job is submitted
/// and a transfer runs, Redis is SIGKILLed, kept down 3 s and started again on the same files
/// and port. Every job ends as upstream decided, one submission each, and both workers are
/// still running (a job whose next task was never pushed is left to the reconciler, set to
/// act within seconds here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_run_with_aof_loses_nothing() -> anyhow::Result<()> {
    const NAME: &str = "redis_killed_mid_run_with_aof";
    const DOWN: Duration = Duration::from_secs(3);
    let _serial = SERIAL.lock().await;
    let s3 = PrivateS3::start().await?;
    let mut redis = PrivateRedis::start(Persistence::AppendOnlyAlways).await?;
    let env = test_env("pipe-aof", &redis.url(), s3.endpoint(), None).await?;
    let sim = Sim::start(&[
        "--processing-min",
        "2s",
        "--processing-max",
        "4s",
        "--result-size",
        "1MiB",
        "--download-rate",
        "512KiB",
    ])
    .await?;
    // A worker (or Redis) lost between a job's transition and the push of its next task leaves
    // the job with no task until the reconciler finds it (`reconciler.stale_after`, 2 min by
    // default): here it looks every second for jobs 5 s late, so such a job ends within the
    // test's time, and the incident line counts how many it repaired.
    let settings = env.worker_env(
        &sim.base_url,
        &[
            ("VIDQ__RECONCILER__INTERVAL", "1s"),
            ("VIDQ__RECONCILER__STALE_AFTER", "5s"),
        ],
    );
    let mut fleet = [
        Worker::start("pipe-aof-w1", settings.clone()).await?,
        Worker::start("pipe-aof-w2", settings).await?,
    ];
    let started = Instant::now();
    let jobs = enqueue_jobs(&env, 12).await?;
    let before = wait_until(
        "every job submitted and a transfer running",
        Duration::from_secs(60),
        || async {
            let counts = count_states(&env, &jobs).await?;
            let unsubmitted = counts.get(&JobState::Queued).copied().unwrap_or(0)
                + counts.get(&JobState::Submitting).copied().unwrap_or(0);
            let transferring = counts.get(&JobState::Transferring).copied().unwrap_or(0);
            Ok((unsubmitted == 0 && transferring > 0).then_some(counts))
        },
    )
    .await?;
    redis.kill9().await?;
    let killed_at = started.elapsed();
    // The outage itself.
    tokio::time::sleep(DOWN).await;
    redis.restart().await?;
    // The producer's connection manager reconnects on the request after the break.
    wait_until(
        "the producer to reconnect",
        Duration::from_secs(30),
        || async { Ok(env.producer.ping().await.ok()) },
    )
    .await?;
    println!(
        "incident: {NAME}: redis SIGKILLed at {:.1} s with jobs {before:?}, down {:.1} s",
        killed_at.as_secs_f64(),
        (started.elapsed() - killed_at).as_secs_f64()
    );

    wait_ended(&env, &sim, &s3, &jobs, Duration::from_secs(90)).await?;
    let running: Vec<bool> = fleet.iter_mut().map(Worker::is_running).collect();
    let repaired: usize = fleet
        .iter()
        .map(|w| w.log().matches("re-enqueued a stuck job").count())
        .sum();
    println!("incident: {NAME}: jobs the reconciler re-enqueued after the restart: {repaired}");
    assert_clean_end(NAME, &env, &sim, &s3, &jobs, started).await?;
    anyhow::ensure!(
        running.iter().all(|r| *r),
        "workers running after the restart: {running:?}\n{}",
        fleet[0].log()
    );
    Ok(())
}
