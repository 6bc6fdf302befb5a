//! A transfer killed mid-way resumes from the next part instead of downloading and uploading
//! the whole result again (the real binaries, a real Redis, an S3 server of each test's own:
//! s3s-fs, or moto's with `VIDQ_TEST_PIPELINE_S3=moto`).
//!
//! One 24 MiB result in 5 MiB parts, served at 3 MiB/s: the worker is SIGKILLed once the job's
//! transfer record holds 2 stored parts. What an operator checks afterwards: the job succeeded
//! with upstream's bytes and sha256 (read back from the bucket), the simulator served the
//! result about once (at most one part more than its size), no multipart upload is left open,
//! and no transfer record is left in Redis. When upstream's bytes changed meanwhile (here: the
//! recorded length no longer matches), the transfer starts again from zero instead.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use vidq_core::{JobId, JobState};
use vidq_tests::rigs::{PrivateS3, forget_keys, open_uploads, test_env};
use vidq_tests::{Sim, TestEnv, Worker, enqueue_jobs, redis_url, verify_outcomes, wait_until};

/// One scenario at a time (each starts several processes and measures bytes served).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MIB: u64 = 1024 * 1024;
const SIZE: u64 = 24 * MIB;
const PART: u64 = 5 * MIB;

/// The job's transfer record (`<prefix>:{jobs}:job:<id>:transfer`).
fn record_key(env: &TestEnv, id: &JobId) -> String {
    format!("{}:{{jobs}}:job:{id}:transfer", env.prefix)
}

async fn redis(env: &TestEnv) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(env.redis_url.as_str())?;
    Ok(client.get_multiplexed_async_connection().await?)
}

/// Parts recorded in the job's transfer record.
async fn recorded_parts(env: &TestEnv, id: &JobId) -> anyhow::Result<usize> {
    let fields: Vec<String> = redis::cmd("HKEYS")
        .arg(record_key(env, id))
        .query_async(&mut redis(env).await?)
        .await?;
    Ok(fields.iter().filter(|f| f.starts_with("p:")).count())
}

struct Killed {
    sim: Sim,
    worker: Worker,
    job: (JobId, String),
    /// Bytes the simulator had served when the worker was killed.
    served_before: u64,
    parts_before: usize,
    started: Instant,
}

/// Starts a sim and a worker, enqueues one job, and SIGKILLs the worker once 2 parts are
/// recorded.
async fn kill_mid_transfer(env: &TestEnv, name: &str) -> anyhow::Result<Killed> {
    let sim = Sim::start(&[
        "--processing-min",
        "100ms",
        "--processing-max",
        "200ms",
        "--result-size",
        "24MiB",
        "--download-rate",
        "3MiB",
    ])
    .await?;
    let settings = env.worker_env(
        &sim.base_url,
        &[
            ("VIDQ__STORAGE__PART_SIZE", &PART.to_string()),
            // Multipart (what resumes), not the streamed PutObject results up to 1 GiB get.
            ("VIDQ__STORAGE__SINGLE_PUT_MAX", "0"),
        ],
    );
    let mut worker = Worker::start(name, settings).await?;
    let started = Instant::now();
    let job = enqueue_jobs(env, 1).await?.remove(0);
    let parts_before = wait_until(
        "2 parts of the transfer recorded",
        Duration::from_secs(60),
        || async {
            let n = recorded_parts(env, &job.0).await?;
            Ok((n >= 2).then_some(n))
        },
    )
    .await
    .with_context(|| worker.log())?;
    worker.kill9().await?;
    let served_before = sim.stats().await?.bytes_served;
    Ok(Killed {
        sim,
        worker,
        job,
        served_before,
        parts_before,
        started,
    })
}

/// Waits for the job to end (the killed worker's lease expires first), then checks what an
/// operator would: the job succeeded with upstream's bytes, no upload is open, no transfer
/// record is left. Returns the bytes the simulator served in all.
async fn finish(
    env: &TestEnv,
    s3: &PrivateS3,
    killed: &mut Killed,
) -> anyhow::Result<(u64, String)> {
    killed.worker.restart().await?;
    let id = killed.job.0;
    let job = wait_until("the job to end", Duration::from_secs(120), || async {
        Ok(env
            .producer
            .status(&id)
            .await?
            .filter(|j| j.state.is_terminal()))
    })
    .await
    .with_context(|| killed.worker.log())?;
    let log = killed.worker.log();
    anyhow::ensure!(
        job.state == JobState::Succeeded,
        "job {}: {:?}\n{log}",
        job.state,
        job.error
    );
    verify_outcomes(env, &killed.sim, std::slice::from_ref(&killed.job)).await?;
    let (open, seen) = open_uploads(s3, &env.bucket).await?;
    anyhow::ensure!(
        open.is_empty(),
        "multipart uploads left open (seen through {seen:?}): {open:?}"
    );
    let exists: bool = redis::cmd("EXISTS")
        .arg(record_key(env, &id))
        .query_async(&mut redis(env).await?)
        .await?;
    anyhow::ensure!(!exists, "the transfer record is left in Redis");
    Ok((killed.sim.stats().await?.bytes_served, log))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_transfer_resumes_from_the_next_part() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let s3 = PrivateS3::start().await?;
    let env = test_env("resume", &redis_url(), s3.endpoint(), None).await?;
    let outcome = async {
        let mut killed = kill_mid_transfer(&env, "resume-w").await?;
        let (served, log) = finish(&env, &s3, &mut killed).await?;
        println!(
            "resume: killed with {} parts recorded and {:.1} MiB served; {:.1} MiB served in all \
             for a {:.0} MiB result (limit {:.0} MiB), {:.1} s",
            killed.parts_before,
            killed.served_before as f64 / MIB as f64,
            served as f64 / MIB as f64,
            SIZE as f64 / MIB as f64,
            (SIZE + PART) as f64 / MIB as f64,
            killed.started.elapsed().as_secs_f64()
        );
        anyhow::ensure!(
            log.contains("resuming the transfer after its stored parts"),
            "the transfer did not resume\n{log}"
        );
        anyhow::ensure!(
            served <= SIZE + PART,
            "the simulator served {served} bytes for a {SIZE}-byte result: the stored parts \
             were downloaded again"
        );
        anyhow::ensure!(
            served > killed.served_before,
            "nothing was downloaded after the kill"
        );
        Ok(())
    }
    .await;
    let forgotten = forget_keys(&env).await;
    outcome?;
    forgotten
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_whose_bytes_changed_starts_again_from_zero() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let s3 = PrivateS3::start().await?;
    let env = test_env("resume-changed", &redis_url(), s3.endpoint(), None).await?;
    let outcome = async {
        let mut killed = kill_mid_transfer(&env, "resume-changed-w").await?;
        // The stored parts came from a body of another length than upstream serves now.
        redis::cmd("HSET")
            .arg(record_key(&env, &killed.job.0))
            .arg("length")
            .arg(SIZE + 1)
            .query_async::<()>(&mut redis(&env).await?)
            .await?;
        let (served, log) = finish(&env, &s3, &mut killed).await?;
        println!(
            "resume (changed bytes): killed with {} parts recorded and {:.1} MiB served; {:.1} \
             MiB served in all for a {:.0} MiB result",
            killed.parts_before,
            killed.served_before as f64 / MIB as f64,
            served as f64 / MIB as f64,
            SIZE as f64 / MIB as f64
        );
        anyhow::ensure!(
            log.contains("starting again from zero"),
            "the transfer did not start again\n{log}"
        );
        anyhow::ensure!(
            served >= killed.served_before + SIZE,
            "served {served} bytes: the whole result was not downloaded again after the kill \
             ({} before it)",
            killed.served_before
        );
        Ok(())
    }
    .await;
    let forgotten = forget_keys(&env).await;
    outcome?;
    forgotten
}
