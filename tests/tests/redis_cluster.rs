//! vidq on a Redis Cluster (3 primaries, 3 replicas): the rig itself, the pipeline with faults
//! and a worker SIGKILLed mid-transfer, and a `CLUSTER FAILOVER` and a SIGKILL of a primary
//! mid-run.

use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use vidq_core::JobState;
use vidq_tests::rigs::ClusterRig;
use vidq_tests::{
    RedisShape, S3Endpoint, Sim, TestEnv, enqueue_jobs, failover, verify_outcomes,
    wait_all_finished,
};

/// One test of this file at a time: each starts Redis processes and workers, and a rig's short
/// node timeouts must not trip because another rig loaded the 2 cores.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// The private rig does what the incident tests rely on: it starts ok, names the primary of a
/// key, fails it over to its replica, and heals after a primary is SIGKILLed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_rig_fails_over_and_heals() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let mut rig = ClusterRig::start().await?;
    assert_eq!(rig.urls().len(), 6);
    let key = "rig-check:{poll}:due";
    let first = rig.primary_for_key(key).await?;
    let replicas = rig.replicas_of(first).await?;
    assert_eq!(
        replicas.len(),
        1,
        "primary {first} has replicas {replicas:?}"
    );
    let promoted = rig.failover(first).await?;
    assert_eq!(promoted, replicas[0]);
    assert_eq!(rig.primary_for_key(key).await?, promoted);

    let started = Instant::now();
    rig.kill(promoted).await?;
    rig.wait_ok(Duration::from_secs(60)).await?;
    let after = rig.primary_for_key(key).await?;
    assert_eq!(
        after, first,
        "the old primary, now its replica, takes over again"
    );
    println!(
        "rig: SIGKILL of a primary to cluster ok again: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The pipeline test on the shared cluster of `scripts/test`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_survives_faults_and_a_kill_9_on_the_cluster() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let env = TestEnv::on("cl-pipeline", RedisShape::cluster_from_env()?).await?;
    failover::pipeline_with_faults_and_a_kill_9(&env, "cl-pipeline", 100).await?;
    env.cleanup().await?;
    Ok(())
}

/// Which incident [`a_fleet_rides_out`] causes.
#[derive(Debug, Clone, Copy)]
enum Incident {
    /// `CLUSTER FAILOVER` on the replica of the primary holding the `poll` queue.
    FailoverOfThePollQueue,
    /// SIGKILL of the primary holding the job store.
    KillOfTheJobStore,
}

/// 40 jobs on a private cluster with `redis.min_replicas_acked = 1`, two workers, an upstream
/// with a few faults; mid-run (jobs processing upstream) the incident. Every job finishes as
/// upstream decided after exactly one submission, no worker exits; prints when work resumed.
async fn a_fleet_rides_out(incident: Incident) -> anyhow::Result<()> {
    let mut rig = ClusterRig::start().await?;
    let s3 = S3Endpoint::from_env()?;
    let acked = [("VIDQ__REDIS__MIN_REPLICAS_ACKED", "1")];
    let env = TestEnv::on_with("cl-incident", RedisShape::of_cluster(&rig), &s3, &acked).await?;
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
    let mut workers = failover::paced_fleet(&env, &sim.base_url, "cl-incident").await?;
    let jobs = enqueue_jobs(&env, 40).await?;
    let poll_key = format!("{}:{{poll}}:due", env.prefix);
    let jobs_key = format!("{}:{{jobs}}:all", env.prefix);
    let (poll_node, jobs_node) = (
        rig.primary_for_key(&poll_key).await?,
        rig.primary_for_key(&jobs_key).await?,
    );
    println!("cluster: the poll queue on node {poll_node}, the job store on node {jobs_node}");

    let before = match incident {
        Incident::FailoverOfThePollQueue => {
            failover::wait_processing(&env, &jobs, 5, Duration::from_secs(120)).await?
        }
        Incident::KillOfTheJobStore => {
            failover::wait_mid_submission(&env, &jobs, 5, Duration::from_secs(120)).await?
        }
    };
    let at = Instant::now();
    let what = match incident {
        Incident::FailoverOfThePollQueue => {
            let promoted = rig.failover(poll_node).await?;
            format!("CLUSTER FAILOVER of node {poll_node} (the poll queue's) to node {promoted}")
        }
        Incident::KillOfTheJobStore => {
            rig.kill(jobs_node).await?;
            rig.wait_ok(Duration::from_secs(60)).await?;
            let now = rig.primary_for_key(&jobs_key).await?;
            format!(
                "SIGKILL of node {jobs_node} (the job store's); node {now} took over, cluster \
                 ok after {:.1} s",
                at.elapsed().as_secs_f64()
            )
        }
    };
    let resumed = failover::wait_resumed(&env, &jobs, &before, at, Duration::from_secs(60)).await?;
    println!(
        "cluster incident: {what}; first job transition {:.2} s after it, first poll done {:.2} s \
         after it",
        resumed.any.as_secs_f64(),
        resumed.polled.as_secs_f64()
    );

    wait_all_finished(&env, &jobs, Duration::from_secs(180)).await?;
    let records = verify_outcomes(&env, &sim, &jobs).await?;
    println!(
        "cluster incident: {} jobs finished, {} succeeded, one submission each",
        records.len(),
        records
            .iter()
            .filter(|r| r.state == JobState::Succeeded)
            .count()
    );
    failover::ensure_running(&mut workers)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_failover_of_the_poll_queue_mid_run_loses_no_job() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    a_fleet_rides_out(Incident::FailoverOfThePollQueue).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_of_a_cluster_primary_mid_run_loses_no_job() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    a_fleet_rides_out(Incident::KillOfTheJobStore).await
}
