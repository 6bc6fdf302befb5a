//! The assertions a user of vidq would make after a run: every job in the state upstream
//! decided, each stored video exactly once with the bytes upstream served, one submission per
//! job, and nothing left in Redis beyond the job records.

use std::collections::BTreeSet;

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use vidq_core::{JobId, JobRecord, JobState};

use crate::{Sim, TestEnv};

/// Checks every job in `jobs` (id, reference_video_url) against the simulator's decisions and
/// the bucket. Returns the records.
pub async fn verify_outcomes(
    env: &TestEnv,
    sim: &Sim,
    jobs: &[(JobId, String)],
) -> anyhow::Result<Vec<JobRecord>> {
    let stats = sim.stats().await?;
    let s3 = env.s3.client();
    let mut records = Vec::new();
    for (id, url) in jobs {
        let job = env
            .producer
            .status(id)
            .await?
            .with_context(|| format!("job {id} has no record"))?;
        let submissions = stats.submissions.get(url).copied().unwrap_or(0);
        anyhow::ensure!(
            submissions == 1,
            "job {id}: upstream counted {submissions} submissions, expected exactly 1"
        );
        let img = job
            .img_uuid
            .as_deref()
            .with_context(|| format!("job {id} ({}) has no upstream id", job.state))?;
        let decided = stats
            .jobs
            .get(img)
            .with_context(|| format!("upstream does not know {img}"))?;
        match decided.status.as_str() {
            "success" => {
                anyhow::ensure!(
                    job.state == JobState::Succeeded,
                    "job {id}: upstream succeeded but the job is {} ({:?})",
                    job.state,
                    job.error
                );
                let output = job
                    .output
                    .as_ref()
                    .context("succeeded job without output")?;
                let expected_sha = match &decided.sha256 {
                    Some(sha) => sha.clone(),
                    None => vidq_sim::result_bytes_sha256(img, decided.size),
                };
                anyhow::ensure!(
                    output.bytes == decided.size,
                    "job {id}: stored {} bytes, upstream served {}",
                    output.bytes,
                    decided.size
                );
                anyhow::ensure!(
                    output.sha256 == expected_sha,
                    "job {id}: recorded sha256 differs from upstream's"
                );
                let object = s3
                    .get_object()
                    .bucket(&output.bucket)
                    .key(&output.key)
                    .send()
                    .await
                    .with_context(|| format!("job {id}: object {} missing", output.key))?;
                let mut body = object.body;
                let mut hasher = Sha256::new();
                while let Some(chunk) = body.try_next().await? {
                    hasher.update(&chunk);
                }
                let actual = hex::encode(hasher.finalize());
                anyhow::ensure!(
                    actual == expected_sha,
                    "job {id}: stored bytes hash differently from what upstream served"
                );
            }
            "failed" => anyhow::ensure!(
                job.state == JobState::Failed,
                "job {id}: upstream failed it but the job is {}",
                job.state
            ),
            other => anyhow::bail!("upstream status {other:?} for {img}"),
        }
        records.push(job);
    }
    // Exactly one object per succeeded job, and nothing else.
    let expected: BTreeSet<String> = records
        .iter()
        .filter_map(|r| r.output.as_ref().map(|o| o.key.clone()))
        .collect();
    let listed = list_keys(env).await?;
    anyhow::ensure!(
        listed == expected,
        "bucket holds {} objects, expected {} (one per succeeded job)",
        listed.len(),
        expected.len()
    );
    Ok(records)
}

pub(crate) async fn list_keys(env: &TestEnv) -> anyhow::Result<BTreeSet<String>> {
    let s3 = env.s3.client();
    let mut keys = BTreeSet::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(&env.bucket)
            .set_continuation_token(token)
            .send()
            .await?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            return Ok(keys);
        }
    }
}

/// Keys under the test's prefix that are neither a job record nor one of the fleet's few
/// fixed keys (job index, per-state counts, today's usage figures, locks, the epoch marker): what a run left behind
/// per job or per task. A key of the concurrent-job cap counts as left behind, since every
/// finished job must have given its slot back.
pub async fn leftover_keys(env: &TestEnv) -> anyhow::Result<Vec<String>> {
    let keys = env.redis_keys().await?;
    let p = &env.prefix;
    let job = format!("{p}:{{jobs}}:job:");
    // The console's keys that come with jobs: a job's img_uuid index entry (it expires with the
    // job's record) and the jobs-ended-per-minute counters (each expires after 2 hours).
    let with_jobs = [
        format!("{p}:{{jobs}}:img:"),
        format!("{p}:{{jobs}}:stats:minute:"),
        // The per-state indexes: a finished job's id stays in its state's until pruned, like
        // `{jobs}:all`.
        format!("{p}:{{jobs}}:state:"),
    ];
    let fixed = [
        format!("{p}:{{jobs}}:all"),
        format!("{p}:{{jobs}}:states"),
        // The one-time backfill's progress of the per-state indexes (its `done` flag).
        format!("{p}:{{jobs}}:state_backfill"),
        format!("{p}:reconciler:lock"),
        format!("{p}:epoch"),
        format!("{p}:{{limits}}:credits"),
        format!("{p}:{{limits}}:rate"),
        format!("{p}:{{limits}}:today"),
        // The daily submission budget the workers publish for the console.
        format!("{p}:{{limits}}:budget"),
        // The live-worker registry (vidq_core::workers); it expires with the last heartbeat.
        format!("{p}:{{workers}}"),
        format!("{p}:{{workers}}:info"),
    ];
    Ok(keys
        .into_iter()
        .filter(|k| {
            !k.starts_with(&job)
                && !with_jobs.iter().any(|w| k.starts_with(w.as_str()))
                && !fixed.contains(k)
        })
        .collect())
}
