//! The pipeline end to end: real `vidq-worker` processes, `vidq-sim` over HTTP, the real Redis
//! and S3 server.

use std::time::Duration;

use vidq_core::{JobId, JobState, TransformRequest};
use vidq_tests::{Sim, TestEnv, Worker, leftover_keys, verify_outcomes, wait_until};

async fn enqueue_n(env: &TestEnv, n: usize) -> anyhow::Result<Vec<(JobId, String)>> {
    let mut jobs = Vec::with_capacity(n);
    for i in 0..n {
        let url = format!("https://videos.example/{}/{i}.mp4", env.prefix);
        let id = env.producer.enqueue(TransformRequest::new(&url, 2000)?).await?;
        jobs.push((id, url));
    }
    Ok(jobs)
}

async fn wait_all_terminal(env: &TestEnv, jobs: &[(JobId, String)], timeout: Duration) -> anyhow::Result<()> {
    wait_until("every job to finish", timeout, || async {
        for (id, _) in jobs {
            let job = env.producer.status(id).await?;
            if !job.is_some_and(|j| j.state.is_terminal()) {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_flow_from_enqueue_to_a_stored_video() -> anyhow::Result<()> {
    let env = TestEnv::new("happy").await?;
    let sim = Sim::start(&["--processing-min", "300ms", "--processing-max", "1s", "--result-size", "96KiB"]).await?;
    let _worker = Worker::start("happy-w1", env.worker_env(&sim.base_url, &[])).await?;
    let jobs = enqueue_n(&env, 5).await?;
    wait_all_terminal(&env, &jobs, Duration::from_secs(60)).await?;
    let records = verify_outcomes(&env, &sim, &jobs).await?;
    assert!(records.iter().all(|r| r.state == JobState::Succeeded));
    let left = leftover_keys(&env).await?;
    assert!(left.is_empty(), "keys left behind: {left:?}");
    env.cleanup().await?;
    Ok(())
}
