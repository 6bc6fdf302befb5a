//! The runs the Redis Cluster and Sentinel tests share: the pipeline with upstream faults and
//! a worker SIGKILLed mid-transfer, and a fleet watched through a Redis incident (which job
//! moved first after it, whether a worker exited).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use vidq_core::{JobId, JobState};

use crate::{
    Sim, TestEnv, Worker, count_states, enqueue_jobs, leftover_keys, verify_outcomes,
    wait_all_finished, wait_until,
};

/// Longest one look at the job states may take: during a failover a read waits inside the
/// connection layer, and the watcher must not hang on it past its deadline.
const LOOK_TIMEOUT: Duration = Duration::from_secs(2);

/// The pipeline test of `tests/tests/pipeline.rs` on `env`'s Redis shape: `n` jobs, two
/// workers, an upstream that answers 5% 429 and 5% 5xx, fails 5% of jobs and takes 3–10 s; one
/// worker is SIGKILLed while transfers are in flight and started again. Every job ends as
/// upstream decided, with its stored bytes, after exactly one submission; nothing is left in
/// Redis beyond the job records; both workers still run.
pub async fn pipeline_with_faults_and_a_kill_9(
    env: &TestEnv,
    name: &str,
    n: usize,
) -> anyhow::Result<()> {
    let sim = Sim::start(&[
        "--processing-min",
        "3s",
        "--processing-max",
        "10s",
        "--rate-429",
        "0.05",
        "--rate-5xx",
        "0.05",
        "--rate-job-failed",
        "0.05",
        "--result-size",
        "2MiB",
    ])
    .await?;
    let settings = env.worker_env(&sim.base_url, &[]);
    let mut first = Worker::start(&format!("{name}-w1"), settings.clone()).await?;
    let mut second = Worker::start(&format!("{name}-w2"), settings).await?;
    let started = Instant::now();
    let jobs = enqueue_jobs(env, n).await?;

    wait_until("transfers in flight", Duration::from_secs(120), || async {
        let counts = count_states(env, &jobs).await?;
        let unsubmitted = counts.get(&JobState::Queued).copied().unwrap_or(0)
            + counts.get(&JobState::Submitting).copied().unwrap_or(0);
        let transferring = counts.get(&JobState::Transferring).copied().unwrap_or(0);
        Ok((unsubmitted == 0 && transferring > 0).then_some(()))
    })
    .await?;
    first.kill9().await?;
    first.restart().await?;

    wait_all_finished(env, &jobs, Duration::from_secs(240)).await?;
    let records = verify_outcomes(env, &sim, &jobs).await?;
    let succeeded = records
        .iter()
        .filter(|r| r.state == JobState::Succeeded)
        .count();
    println!(
        "{name} on {}: {n} jobs finished in {:.1} s, {succeeded} succeeded, one submission each",
        env.redis.mode(),
        started.elapsed().as_secs_f64()
    );
    anyhow::ensure!(
        succeeded * 4 > n * 3,
        "only {succeeded} of {n} jobs succeeded"
    );
    let left = leftover_keys(env).await?;
    anyhow::ensure!(left.is_empty(), "keys left behind: {left:?}");
    for worker in [&mut first, &mut second] {
        anyhow::ensure!(worker.is_running(), "a worker exited:\n{}", worker.log());
    }
    Ok(())
}

/// Every job's state now, by id; `None` when a read did not answer within 2 s.
pub async fn job_states(
    env: &TestEnv,
    jobs: &[(JobId, String)],
) -> anyhow::Result<Option<BTreeMap<String, JobState>>> {
    let look = async {
        let mut states = BTreeMap::new();
        for (id, _) in jobs {
            if let Some(job) = env.producer.status(id).await? {
                states.insert(id.to_string(), job.state);
            }
        }
        anyhow::Ok(states)
    };
    match tokio::time::timeout(LOOK_TIMEOUT, look).await {
        Ok(Ok(states)) => Ok(Some(states)),
        // A read refused or cut off mid-incident counts as no answer yet.
        Ok(Err(_)) | Err(_) => Ok(None),
    }
}

/// What moved first after an incident.
#[derive(Debug, Clone, Copy)]
pub struct Resumed {
    /// Until some job changed state.
    pub any: Duration,
    /// Until a job moved on from `processing` (its poll task ran).
    pub polled: Duration,
}

/// Waits up to `timeout` after `incident` for jobs to change state against `before` (read
/// just before it): the first change of any job, and the first job leaving `processing`.
pub async fn wait_resumed(
    env: &TestEnv,
    jobs: &[(JobId, String)],
    before: &BTreeMap<String, JobState>,
    incident: Instant,
    timeout: Duration,
) -> anyhow::Result<Resumed> {
    let any = std::cell::Cell::new(None);
    wait_until("a job to move after the incident", timeout, || async {
        let Some(now) = job_states(env, jobs).await? else {
            return Ok(None);
        };
        let changed = |id: &String, state: &JobState| before.get(id) != Some(state);
        if any.get().is_none() && now.iter().any(|(id, s)| changed(id, s)) {
            any.set(Some(incident.elapsed()));
        }
        let polled = now.iter().any(|(id, s)| {
            before.get(id) == Some(&JobState::Processing) && *s != JobState::Processing
        });
        Ok(polled.then(|| Resumed {
            any: any.get().unwrap_or_else(|| incident.elapsed()),
            polled: incident.elapsed(),
        }))
    })
    .await
}

/// Waits up to `timeout` until every job of `jobs` is submitted (none queued or submitting)
/// and at least `n` are processing upstream; returns the states then: an incident after this
/// finds no upstream call in flight.
pub async fn wait_processing(
    env: &TestEnv,
    jobs: &[(JobId, String)],
    n: usize,
    timeout: Duration,
) -> anyhow::Result<BTreeMap<String, JobState>> {
    let what = "every job submitted, some processing upstream";
    wait_phase(env, jobs, what, timeout, |unsubmitted, processing| {
        unsubmitted == 0 && processing >= n
    })
    .await
}

/// Waits up to `timeout` until at least `n` jobs of `jobs` are processing upstream while at
/// least `n` are still to be submitted (queued or submitting): an incident then strikes in
/// the middle of the submissions — claims, upstream calls in flight and stored `img_uuid`s
/// not yet replicated — which `redis.min_replicas_acked` with the worker's re-checks must
/// survive without a second submission. Returns the states then.
pub async fn wait_mid_submission(
    env: &TestEnv,
    jobs: &[(JobId, String)],
    n: usize,
    timeout: Duration,
) -> anyhow::Result<BTreeMap<String, JobState>> {
    let what = "some jobs processing upstream, others still to submit";
    wait_phase(env, jobs, what, timeout, |unsubmitted, processing| {
        unsubmitted >= n && processing >= n
    })
    .await
}

/// Waits until every job of `jobs` has a record and `phase(unsubmitted, processing)` holds
/// for the counts of jobs still to submit (queued or submitting) and processing upstream.
async fn wait_phase(
    env: &TestEnv,
    jobs: &[(JobId, String)],
    what: &str,
    timeout: Duration,
    phase: impl Fn(usize, usize) -> bool,
) -> anyhow::Result<BTreeMap<String, JobState>> {
    wait_until(what, timeout, || async {
        let Some(states) = job_states(env, jobs).await? else {
            return Ok(None);
        };
        let count = |state: JobState| states.values().filter(|s| **s == state).count();
        let unsubmitted = count(JobState::Queued) + count(JobState::Submitting);
        let processing = count(JobState::Processing);
        Ok((states.len() == jobs.len() && phase(unsubmitted, processing)).then_some(states))
    })
    .await
}

/// The two workers of the incident tests that strike among the submissions: on `env` and the
/// simulator at `sim_url`, with `redis.min_replicas_acked = 1` and upstream limited to 6
/// requests a second (burst 1), so the submissions of a few dozen jobs spread over several
/// seconds: claims, calls in flight and stored `img_uuid`s not yet replicated. Named
/// `<name>-w1` and `<name>-w2`.
pub async fn paced_fleet(env: &TestEnv, sim_url: &str, name: &str) -> anyhow::Result<Vec<Worker>> {
    let settings = env.worker_env(
        sim_url,
        &[
            ("VIDQ__REDIS__MIN_REPLICAS_ACKED", "1"),
            ("VIDQ__LIMITS__UPSTREAM_RPS", "6"),
            ("VIDQ__LIMITS__UPSTREAM_BURST", "1"),
        ],
    );
    Ok(vec![
        Worker::start(&format!("{name}-w1"), settings.clone()).await?,
        Worker::start(&format!("{name}-w2"), settings).await?,
    ])
}

/// Fails naming the worker and its log when one of `workers` exited.
pub fn ensure_running(workers: &mut [Worker]) -> anyhow::Result<()> {
    for (i, worker) in workers.iter_mut().enumerate() {
        anyhow::ensure!(worker.is_running(), "worker {i} exited:\n{}", worker.log());
    }
    Ok(())
}
