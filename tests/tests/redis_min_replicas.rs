//! A primary with `min-replicas-to-write 1` whose only replica stops answering: the primary
//! refuses every write with `NOREPLICAS` until the replica is back. Such a refusal ran nothing
//! (a script is stopped at its first write), so vidq's connection layer waits it out like a
//! `READONLY`: jobs in flight pause, a job enqueued meanwhile is created once the replica is
//! back, every job ends as upstream decided with one submission, and no worker exits.

use std::time::{Duration, Instant};

use vidq_core::{JobId, TransformRequest};
use vidq_tests::rigs::ReplicatedRig;
use vidq_tests::{
    RedisShape, S3Endpoint, Sim, TestEnv, enqueue_jobs, failover, verify_outcomes,
    wait_all_finished, wait_until,
};

/// How long the primary refuses writes in the incident: longer than a renewal period and the
/// replication timeout, within the connection layer's 30 s of retries.
const REFUSING_FOR: Duration = Duration::from_secs(8);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_refused_for_want_of_a_replica_are_waited_out() -> anyhow::Result<()> {
    let rig = ReplicatedRig::start(&[
        "--min-replicas-to-write",
        "1",
        "--min-replicas-max-lag",
        "2",
    ])
    .await?;
    let s3 = S3Endpoint::from_env()?;
    let acked = [("VIDQ__REDIS__MIN_REPLICAS_ACKED", "1")];
    let shape = RedisShape::Standalone(rig.primary_url());
    let env = TestEnv::on_with("norepl", shape, &s3, &acked).await?;
    let sim = Sim::start(&[
        "--processing-min",
        "2s",
        "--processing-max",
        "5s",
        "--result-size",
        "64KiB",
    ])
    .await?;
    let mut workers = failover::paced_fleet(&env, &sim.base_url, "norepl").await?;
    let mut jobs = enqueue_jobs(&env, 30).await?;
    failover::wait_mid_submission(&env, &jobs, 5, Duration::from_secs(120)).await?;

    rig.stop_replica()?;
    let stopped = Instant::now();
    wait_until(
        "the primary to refuse writes (NOREPLICAS)",
        Duration::from_secs(30),
        || async { Ok(rig.refuses_writes().await?.then_some(())) },
    )
    .await?;
    let refusing = Instant::now();
    // Jobs enqueued while every write is refused: each create waits, then counts once.
    let late = {
        let producer = env.producer.clone();
        let prefix = env.prefix.clone();
        tokio::spawn(async move {
            let mut out: Vec<(JobId, String)> = Vec::new();
            for i in 0..3 {
                let url = format!("https://videos.example/{prefix}/late-{i}.mp4");
                let id = producer.enqueue(TransformRequest::new(&url, 2000)?).await?;
                out.push((id, url));
            }
            anyhow::Ok(out)
        })
    };
    wait_until(
        "the incident's refusals to last their time",
        REFUSING_FOR + Duration::from_secs(20),
        || async {
            anyhow::ensure!(
                rig.refuses_writes().await?,
                "the primary took a write with its replica stopped"
            );
            Ok((refusing.elapsed() >= REFUSING_FOR).then_some(()))
        },
    )
    .await?;
    anyhow::ensure!(
        !late.is_finished(),
        "an enqueue ended while every write was refused: {:?}",
        late.await?
    );
    failover::ensure_running(&mut workers)?;

    rig.continue_replica()?;
    let continued = Instant::now();
    wait_until(
        "the primary to take writes again",
        Duration::from_secs(30),
        || async { Ok((!rig.refuses_writes().await?).then_some(())) },
    )
    .await?;
    let writable_after = continued.elapsed();
    let late = tokio::time::timeout(Duration::from_secs(30), late)
        .await
        .map_err(|_| anyhow::anyhow!("the enqueues made during the refusals never ended"))???;
    let late_after = continued.elapsed();
    jobs.extend(late);

    wait_all_finished(&env, &jobs, Duration::from_secs(180)).await?;
    let records = verify_outcomes(&env, &sim, &jobs).await?;
    failover::ensure_running(&mut workers)?;
    println!(
        "min-replicas-to-write incident: writes refused {:.1} s after the replica stopped, \
         for {:.1} s; writes taken {:.2} s after it continued, the 3 enqueues made meanwhile \
         answered {:.2} s after it; {} jobs finished, one submission each, no worker exited",
        (refusing - stopped).as_secs_f64(),
        (continued - refusing).as_secs_f64(),
        writable_after.as_secs_f64(),
        late_after.as_secs_f64(),
        records.len()
    );
    env.cleanup().await?;
    Ok(())
}
