//! Enqueueing test jobs and waiting for them.

use std::time::Duration;

use vidq_core::{JobId, JobState, TransformRequest};

use crate::{TestEnv, wait_until};

/// Enqueues `n` jobs, each with its own `reference_video_url` (so the simulator's counts are
/// per job). Returns (id, url) pairs.
pub async fn enqueue_jobs(env: &TestEnv, n: usize) -> anyhow::Result<Vec<(JobId, String)>> {
    let mut jobs = Vec::with_capacity(n);
    for i in 0..n {
        let url = format!("https://videos.example/{}/{i}.mp4", env.prefix);
        let id = env
            .producer
            .enqueue(TransformRequest::new(&url, 2000)?)
            .await?;
        jobs.push((id, url));
    }
    Ok(jobs)
}

/// How many of `jobs` are in each state right now.
pub async fn count_states(
    env: &TestEnv,
    jobs: &[(JobId, String)],
) -> anyhow::Result<std::collections::HashMap<JobState, usize>> {
    let mut counts = std::collections::HashMap::new();
    for (id, _) in jobs {
        if let Some(job) = env.producer.status(id).await? {
            *counts.entry(job.state).or_insert(0) += 1;
        }
    }
    Ok(counts)
}

/// Waits until every job of `jobs` is in a terminal state.
pub async fn wait_all_finished(
    env: &TestEnv,
    jobs: &[(JobId, String)],
    timeout: Duration,
) -> anyhow::Result<()> {
    wait_until("every job to finish", timeout, || async {
        let counts = count_states(env, jobs).await?;
        let finished: usize = counts
            .iter()
            .filter(|(s, _)| s.is_terminal())
            .map(|(_, n)| n)
            .sum();
        Ok((finished == jobs.len()).then_some(()))
    })
    .await
}
