//! vidq on Sentinel (1 primary, 1 replica, 3 sentinels): the rig itself, the pipeline with
//! faults and a worker SIGKILLed mid-transfer, and a SIGKILL of the primary mid-run.

use std::time::Duration;

use tokio::sync::Mutex;
use vidq_core::JobState;
use vidq_tests::rigs::SentinelRig;
use vidq_tests::{
    RedisShape, S3Endpoint, Sim, TestEnv, enqueue_jobs, failover, verify_outcomes,
    wait_all_finished,
};

/// One test of this file at a time: each starts Redis processes and workers, and a rig's short
/// node timeouts must not trip because another rig loaded the 2 cores.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// The private rig does what the incident tests rely on: the sentinels name the primary and
/// switch to the replica after the primary is SIGKILLed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sentinel_rig_switches_after_a_kill() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let mut rig = SentinelRig::start().await?;
    let before = rig.current_primary().await?;
    let (killed, at) = rig.kill_primary().await?;
    assert_eq!(killed, before);
    let now = rig
        .wait_switch(
            &killed,
            SentinelRig::FAILOVER_TIMEOUT + Duration::from_secs(20),
        )
        .await?;
    assert_ne!(now, killed);
    println!(
        "rig: SIGKILL of the primary to the sentinels' switch: {:.1} s",
        at.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The pipeline test on the shared Sentinel set of `scripts/test`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_survives_faults_and_a_kill_9_on_sentinel() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let env = TestEnv::on("se-pipeline", RedisShape::sentinel_from_env()?).await?;
    failover::pipeline_with_faults_and_a_kill_9(&env, "se-pipeline", 100).await?;
    env.cleanup().await?;
    Ok(())
}

/// 40 jobs on a private Sentinel set with `redis.min_replicas_acked = 1`, two workers; in the
/// middle of the submissions (some jobs processing upstream, others still to submit) the
/// primary is SIGKILLed: the fleet follows the primary the
/// sentinels elect, every job finishes as upstream decided, no worker exits. Prints the time
/// from the kill to the sentinels' switch and to the first job moving after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_of_the_primary_mid_run_is_followed_by_the_fleet() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let mut rig = SentinelRig::start().await?;
    let s3 = S3Endpoint::from_env()?;
    let acked = [("VIDQ__REDIS__MIN_REPLICAS_ACKED", "1")];
    let env = TestEnv::on_with("se-incident", RedisShape::of_sentinel(&rig), &s3, &acked).await?;
    let sim = Sim::start(&[
        "--processing-min",
        "2s",
        "--processing-max",
        "6s",
        "--rate-429",
        "0.03",
        "--rate-5xx",
        "0.03",
        "--result-size",
        "256KiB",
    ])
    .await?;
    let mut workers = failover::paced_fleet(&env, &sim.base_url, "se-incident").await?;
    let jobs = enqueue_jobs(&env, 40).await?;

    let before = failover::wait_mid_submission(&env, &jobs, 5, Duration::from_secs(120)).await?;
    let (killed, at) = rig.kill_primary().await?;
    let limit = SentinelRig::DOWN_AFTER + SentinelRig::FAILOVER_TIMEOUT + Duration::from_secs(10);
    let now = rig.wait_switch(&killed, limit).await?;
    let switched = at.elapsed();
    let resumed = failover::wait_resumed(&env, &jobs, &before, at, Duration::from_secs(60)).await?;
    println!(
        "sentinel incident: SIGKILL of the primary {killed}; the sentinels switched to {now} \
         after {:.2} s (down-after {:?}); first job transition {:.2} s after the kill, first \
         poll done {:.2} s after it",
        switched.as_secs_f64(),
        SentinelRig::DOWN_AFTER,
        resumed.any.as_secs_f64(),
        resumed.polled.as_secs_f64()
    );
    anyhow::ensure!(
        resumed.polled <= switched + Duration::from_secs(10),
        "the fleet took {:?} to move a job after the switch at {switched:?}",
        resumed.polled
    );

    wait_all_finished(&env, &jobs, Duration::from_secs(180)).await?;
    let records = verify_outcomes(&env, &sim, &jobs).await?;
    println!(
        "sentinel incident: {} jobs finished, {} succeeded, one submission each",
        records.len(),
        records
            .iter()
            .filter(|r| r.state == JobState::Succeeded)
            .count()
    );
    failover::ensure_running(&mut workers)?;
    Ok(())
}
