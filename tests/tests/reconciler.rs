//! The reconciler against a real worker: a job record it cannot decode does not stop its
//! rounds (it is skipped, counted once and logged once), the jobs behind it are still repaired,
//! and the `{jobs}:all` listing index is swept of ids whose record is gone.

use std::time::Duration;

use redis::AsyncCommands;
use vidq_core::{JobId, JobRecord, JobState, TransformRequest};
use vidq_tests::{Sim, TestEnv, Worker, wait_until};

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn record(env: &TestEnv, name: &str) -> anyhow::Result<JobRecord> {
    let request = TransformRequest::new(
        &format!("https://videos.example/{}/{name}.mp4", env.prefix),
        2000,
    )?;
    Ok(JobRecord::new(request, Duration::from_secs(1800)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_record_is_skipped_the_rest_repaired_and_the_listing_pruned()
-> anyhow::Result<()> {
    let env = TestEnv::new("reconcile").await?;
    let store = env.producer.store();
    let mut redis = redis::Client::open(env.redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let active = format!("{}:{{jobs}}:active", env.prefix);
    let all = format!("{}:{{jobs}}:all", env.prefix);
    let now = store.redis_now_ms().await?;

    // A job whose record no longer decodes, the oldest entry of the active index: with a
    // batch of 1 it is what every round meets first.
    let broken = record(&env, "broken")?;
    store.create(&broken).await?;
    let _: () = redis
        .hset(store.job_key(&broken.id), "attempts", "many")
        .await?;
    let _: () = redis
        .zadd(&active, broken.id.to_string(), now - 60_000)
        .await?;
    // A job whose task was lost (never enqueued): only the reconciler can get it going.
    let lost = record(&env, "lost")?;
    store.create(&lost).await?;
    // An id in the listing index whose record expired long ago.
    let gone = JobId::new();
    let _: () = redis.zadd(&all, gone.to_string(), now - 3_600_000).await?;

    let sim = Sim::start(&[
        "--processing-min",
        "100ms",
        "--processing-max",
        "200ms",
        "--result-size",
        "8KiB",
    ])
    .await?;
    let listen = format!("127.0.0.1:{}", free_port()?);
    let worker = Worker::start(
        "reconcile-w",
        env.worker_env(
            &sim.base_url,
            &[
                ("VIDQ__HTTP__LISTEN", &listen),
                ("VIDQ__RECONCILER__INTERVAL", "200ms"),
                ("VIDQ__RECONCILER__STALE_AFTER", "1s"),
                ("VIDQ__RECONCILER__BATCH", "1"),
            ],
        ),
    )
    .await?;

    wait_until(
        "the lost job to succeed",
        Duration::from_secs(60),
        || async {
            let job = store.get(&lost.id).await?;
            Ok(job
                .is_some_and(|j| j.state == JobState::Succeeded)
                .then_some(()))
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}; worker log:\n{}", worker.log()))?;
    let listed: Vec<String> = redis.zrange(&all, 0, -1).await?;
    assert!(!listed.contains(&gone.to_string()), "{listed:?}");
    assert!(listed.contains(&lost.id.to_string()), "{listed:?}");
    assert!(listed.contains(&broken.id.to_string()), "{listed:?}");

    // The broken job is met round after round (pushed back each time), yet counted once.
    let first = store.active_expected_by(&broken.id).await?;
    wait_until(
        "the reconciler to meet the broken job again",
        Duration::from_secs(30),
        || async { Ok((store.active_expected_by(&broken.id).await? != first).then_some(())) },
    )
    .await?;
    let metrics = reqwest::get(format!("http://{listen}/metrics"))
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("vidq_reconciler_undecodable_total 1\n"),
        "{metrics}"
    );
    let log = worker.log();
    assert_eq!(
        log.matches("cannot decode").count(),
        1,
        "logged once per record:\n{log}"
    );
    let broken_now = store.active_expected_by(&broken.id).await?;
    assert!(broken_now.is_some(), "the broken job stays for an operator");
    env.cleanup().await?;
    Ok(())
}
