//! What ops teams rely on: a SIGTERM drains and hands back at once, and `/metrics` exposes
//! every family they alert on.

use std::time::{Duration, Instant};

use vidq_core::JobState;
use vidq_tests::{
    Sim, TestEnv, Worker, enqueue_jobs, verify_outcomes, wait_all_finished, wait_until,
};

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_transfer_hands_the_job_to_another_worker_at_once() -> anyhow::Result<()> {
    let env = TestEnv::new("sigterm").await?;
    let sim = Sim::start(&[
        "--processing-min",
        "100ms",
        "--processing-max",
        "200ms",
        "--result-size",
        "200MiB",
        // About 10 s per download however fast the machine: still transferring at the SIGTERM.
        "--download-rate",
        "20MiB",
    ])
    .await?;
    // A long lease: the job must move on without waiting for it to expire.
    let settings = env.worker_env(
        &sim.base_url,
        &[
            ("VIDQ__QUEUES__LEASE", "60s"),
            ("VIDQ__SHUTDOWN__GRACE", "500ms"),
        ],
    );
    let mut first = Worker::start("sigterm-w1", settings.clone()).await?;
    let jobs = enqueue_jobs(&env, 1).await?;
    let (id, _) = &jobs[0];
    wait_until("the transfer to start", Duration::from_secs(60), || async {
        let job = env.producer.status(id).await?;
        Ok(job
            .filter(|j| j.state == JobState::Transferring)
            .map(|_| ()))
    })
    .await?;
    let stopped_at = Instant::now();
    let code = first.terminate(Duration::from_secs(20)).await?;
    assert_eq!(
        code,
        Some(0),
        "the worker did not exit cleanly:\n{}",
        first.log()
    );
    assert!(
        first.log().contains("handed back unfinished tasks"),
        "{}",
        first.log()
    );
    let job = env.producer.status(id).await?.expect("job");
    assert_eq!(
        job.state,
        JobState::Transferring,
        "the transfer should not have finished yet"
    );

    let _second = Worker::start("sigterm-w2", settings).await?;
    wait_all_finished(&env, &jobs, Duration::from_secs(55)).await?;
    let took = stopped_at.elapsed();
    println!(
        "job finished {:.1} s after the SIGTERM (lease: 60 s)",
        took.as_secs_f64()
    );
    assert!(
        took < Duration::from_secs(60),
        "waited for the lease to expire"
    );
    let records = verify_outcomes(&env, &sim, &jobs).await?;
    assert_eq!(records[0].state, JobState::Succeeded);
    env.cleanup().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expose_every_family() -> anyhow::Result<()> {
    let env = TestEnv::new("metrics").await?;
    let sim = Sim::start(&[
        "--processing-min",
        "200ms",
        "--processing-max",
        "400ms",
        "--result-size",
        "16KiB",
    ])
    .await?;
    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let mut worker = Worker::start(
        "metrics-w",
        env.worker_env(
            &sim.base_url,
            &[
                ("VIDQ__HTTP__LISTEN", &listen),
                ("VIDQ__LIMITS__CREDITS_POLL", "200ms"),
            ],
        ),
    )
    .await?;
    let jobs = enqueue_jobs(&env, 3).await?;
    wait_all_finished(&env, &jobs, Duration::from_secs(60)).await?;
    let base = format!("http://{listen}");
    let health = reqwest::get(format!("{base}/healthz")).await?;
    assert!(health.status().is_success());
    let ready = reqwest::get(format!("{base}/readyz")).await?;
    assert!(ready.status().is_success());
    let families = [
        "vidq_jobs{",
        "vidq_jobs_ended{",
        "vidq_task_duration_seconds_bucket{",
        "vidq_upstream_calls_total{",
        "vidq_poll_lateness_seconds_bucket",
        "vidq_bytes_transferred_total",
        "vidq_queue_depth{",
        "vidq_uncertain_submissions_total",
        "vidq_upstream_credits ",
        "vidq_submissions_total",
    ];
    let text = wait_until("every metric family", Duration::from_secs(30), || async {
        let text = reqwest::get(format!("{base}/metrics"))
            .await?
            .text()
            .await?;
        Ok(families.iter().all(|f| text.contains(f)).then_some(text))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; worker log:\n{}", worker.log()))?;
    assert!(
        text.contains(r#"vidq_jobs_ended{state="succeeded"} 3"#),
        "{text}"
    );
    assert!(
        text.contains(r#"vidq_queue_depth{queue="transfer",state="dead"} 0"#),
        "{text}"
    );
    assert!(text.contains("vidq_submissions_total 3"), "{text}");
    assert!(worker.is_running());
    env.cleanup().await?;
    Ok(())
}
