//! The pipeline end to end: real `vidq-worker` processes, `vidq-sim` over HTTP, the real Redis
//! and S3 server.

use std::time::Duration;

use vidq_core::JobState;
use vidq_tests::{
    Sim, TestEnv, Worker, count_states, enqueue_jobs, leftover_keys, verify_outcomes,
    wait_all_finished, wait_until,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_flow_from_enqueue_to_a_stored_video() -> anyhow::Result<()> {
    let env = TestEnv::new("happy").await?;
    let sim = Sim::start(&[
        "--processing-min",
        "300ms",
        "--processing-max",
        "1s",
        "--result-size",
        "96KiB",
    ])
    .await?;
    let _worker = Worker::start("happy-w1", env.worker_env(&sim.base_url, &[])).await?;
    let jobs = enqueue_jobs(&env, 5).await?;
    wait_all_finished(&env, &jobs, Duration::from_secs(60)).await?;
    let records = verify_outcomes(&env, &sim, &jobs).await?;
    assert!(records.iter().all(|r| r.state == JobState::Succeeded));
    let left = leftover_keys(&env).await?;
    assert!(left.is_empty(), "keys left behind: {left:?}");
    env.cleanup().await?;
    Ok(())
}

/// 200 jobs, two workers, an upstream that answers 10% 429/5xx, fails 5% of jobs and takes
/// 5–20 s; one worker is killed with SIGKILL while transfers are in flight, then started again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_jobs_survive_upstream_faults_and_a_kill_9() -> anyhow::Result<()> {
    let env = TestEnv::new("kill9").await?;
    let sim = Sim::start(&[
        "--processing-min",
        "5s",
        "--processing-max",
        "20s",
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
    let mut first = Worker::start("kill9-w1", settings.clone()).await?;
    let _second = Worker::start("kill9-w2", settings).await?;
    let jobs = enqueue_jobs(&env, 200).await?;

    // Every job submitted, and some transfers under way: now kill one worker outright.
    wait_until("transfers in flight", Duration::from_secs(120), || async {
        let counts = count_states(&env, &jobs).await?;
        let unsubmitted = counts.get(&JobState::Queued).copied().unwrap_or(0)
            + counts.get(&JobState::Submitting).copied().unwrap_or(0);
        let transferring = counts.get(&JobState::Transferring).copied().unwrap_or(0);
        Ok((unsubmitted == 0 && transferring > 0).then_some(()))
    })
    .await?;
    first.kill9().await?;
    first.restart().await?;

    wait_all_finished(&env, &jobs, Duration::from_secs(240)).await?;
    let records = verify_outcomes(&env, &sim, &jobs).await?;
    let succeeded = records
        .iter()
        .filter(|r| r.state == JobState::Succeeded)
        .count();
    assert!(succeeded > 150, "only {succeeded} of 200 jobs succeeded");
    let left = leftover_keys(&env).await?;
    assert!(left.is_empty(), "keys left behind: {left:?}");
    env.cleanup().await?;
    Ok(())
}

/// The whole fleet stopped with SIGTERM while jobs are processing upstream and started again
/// 60 s later: every job finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_stopped_and_restarted_later_finishes_every_job() -> anyhow::Result<()> {
    let env = TestEnv::new("fleet").await?;
    let sim = Sim::start(&[
        "--processing-min",
        "10s",
        "--processing-max",
        "20s",
        "--result-size",
        "64KiB",
    ])
    .await?;
    let settings = env.worker_env(&sim.base_url, &[]);
    let mut fleet = vec![
        Worker::start("fleet-w1", settings.clone()).await?,
        Worker::start("fleet-w2", settings).await?,
    ];
    let jobs = enqueue_jobs(&env, 20).await?;
    wait_until(
        "every job processing upstream",
        Duration::from_secs(60),
        || async {
            let counts = count_states(&env, &jobs).await?;
            Ok((counts.get(&JobState::Processing).copied() == Some(jobs.len())).then_some(()))
        },
    )
    .await?;
    for worker in &mut fleet {
        let code = worker.terminate(Duration::from_secs(30)).await?;
        assert_eq!(
            code,
            Some(0),
            "worker exited with {code:?}:\n{}",
            worker.log()
        );
    }
    // The outage itself: nothing runs for a minute while upstream finishes the jobs.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let stalled = count_states(&env, &jobs).await?;
    assert_eq!(
        stalled.get(&JobState::Processing).copied(),
        Some(jobs.len()),
        "{stalled:?}"
    );
    for worker in &mut fleet {
        worker.restart().await?;
    }
    wait_all_finished(&env, &jobs, Duration::from_secs(120)).await?;
    let records = verify_outcomes(&env, &sim, &jobs).await?;
    assert!(records.iter().all(|r| r.state == JobState::Succeeded));
    env.cleanup().await?;
    Ok(())
}
