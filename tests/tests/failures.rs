//! Bad input and broken dependencies: never a panic, never a half-written job; the job fails
//! with a reason a person can act on, and no secret shows up anywhere.

use std::time::Duration;

use vidq_core::JobState;
use vidq_tests::{Sim, TestEnv, Worker, bin_path, enqueue_jobs, wait_all_finished};

/// Fast retries so a job gives up within seconds.
const FEW_ATTEMPTS: [(&str, &str); 3] = [
    ("VIDQ__QUEUES__SUBMIT__MAX_ATTEMPTS", "3"),
    ("VIDQ__QUEUES__TRANSFER__MAX_ATTEMPTS", "2"),
    ("VIDQ__QUEUES__POLL__MAX_ATTEMPTS", "3"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_upstream_reply_is_retried_then_fails_the_job_with_an_excerpt()
-> anyhow::Result<()> {
    let env = TestEnv::new("malformed").await?;
    let sim = Sim::start(&["--rate-malformed", "1.0"]).await?;
    let worker = Worker::start("malformed-w", env.worker_env(&sim.base_url, &FEW_ATTEMPTS)).await?;
    let jobs = enqueue_jobs(&env, 1).await?;
    wait_all_finished(&env, &jobs, Duration::from_secs(60)).await?;
    let job = env.producer.status(&jobs[0].0).await?.expect("job record");
    assert_eq!(job.state, JobState::Failed);
    let error = job.error.unwrap_or_default();
    assert!(error.contains("malformed"), "reason: {error}");
    let stats = sim.stats().await?;
    assert_eq!(stats.submit_requests, 3, "one request per attempt");
    // The simulator garbles the reply after accepting: upstream may hold a job for each
    // attempt, and the worker says so instead of pretending otherwise.
    let warned = worker
        .log()
        .matches("upstream may hold a duplicate")
        .count();
    assert_eq!(
        warned, 2,
        "each re-submission after an unreadable reply is reported"
    );
    drop(worker);
    env.cleanup().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_fails_the_job_with_a_clear_reason() -> anyhow::Result<()> {
    let env = TestEnv::new("nobucket").await?;
    let sim = Sim::start(&[
        "--processing-min",
        "200ms",
        "--processing-max",
        "400ms",
        "--result-size",
        "8KiB",
    ])
    .await?;
    let missing = format!("{}-missing", env.bucket);
    let mut overrides = FEW_ATTEMPTS.to_vec();
    overrides.push(("VIDQ__STORAGE__BUCKET", &missing));
    let _worker = Worker::start("nobucket-w", env.worker_env(&sim.base_url, &overrides)).await?;
    let jobs = enqueue_jobs(&env, 1).await?;
    wait_all_finished(&env, &jobs, Duration::from_secs(60)).await?;
    let job = env.producer.status(&jobs[0].0).await?.expect("job record");
    assert_eq!(job.state, JobState::Failed);
    let error = job.error.unwrap_or_default();
    assert!(
        error.contains(&missing) && error.contains("does not exist"),
        "reason: {error}"
    );

    // The operator creates the bucket and retries the job: it resumes at the transfer,
    // without a second upstream submission.
    env.s3
        .client()
        .create_bucket()
        .bucket(&missing)
        .send()
        .await?;
    let reopened = env.producer.retry(&jobs[0].0).await?;
    assert_eq!(reopened, JobState::Transferring);
    wait_all_finished(&env, &jobs, Duration::from_secs(60)).await?;
    let job = env.producer.status(&jobs[0].0).await?.expect("job record");
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let output = job.output.expect("output");
    assert_eq!(output.bucket, missing);
    let stats = sim.stats().await?;
    assert_eq!(stats.submissions.get(&jobs[0].1).copied(), Some(1));
    let s3 = env.s3.client();
    s3.delete_object()
        .bucket(&missing)
        .key(&output.key)
        .send()
        .await?;
    s3.delete_bucket().bucket(&missing).send().await?;
    env.cleanup().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_storage_credentials_fail_the_job_without_showing_the_secret() -> anyhow::Result<()> {
    let env = TestEnv::new("badcreds").await?;
    let sim = Sim::start(&[
        "--processing-min",
        "200ms",
        "--processing-max",
        "400ms",
        "--result-size",
        "8KiB",
    ])
    .await?;
    let secret = "wrong-secret-5f0c2d";
    let mut overrides = FEW_ATTEMPTS.to_vec();
    overrides.push(("VIDQ__STORAGE__SECRET_ACCESS_KEY", secret));
    let worker = Worker::start("badcreds-w", env.worker_env(&sim.base_url, &overrides)).await?;
    let jobs = enqueue_jobs(&env, 1).await?;
    wait_all_finished(&env, &jobs, Duration::from_secs(60)).await?;
    let job = env.producer.status(&jobs[0].0).await?.expect("job record");
    assert_eq!(job.state, JobState::Failed);
    let error = job.error.unwrap_or_default();
    assert!(error.contains("denied"), "reason: {error}");
    assert!(!error.contains(secret));
    let log = worker.log();
    assert!(!log.contains(secret), "the secret reached the log");
    assert!(!log.contains("sim-key"), "the API key reached the log");
    env.cleanup().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_rejects_each_bad_field_by_name_and_writes_nothing() -> anyhow::Result<()> {
    let env = TestEnv::new("badinput").await?;
    let cases: [(&[&str], &str); 7] = [
        (&["--model", "2000"], "reference_video_url"),
        (&["--url", "https://v.example/a.mp4"], "model"),
        (
            &["--url", "ftp://v.example/a.mp4", "--model", "2000"],
            "reference_video_url",
        ),
        (
            &["--url", "https://v.example/a.mp4", "--model", "0"],
            "model",
        ),
        (
            &[
                "--url",
                "https://v.example/a.mp4",
                "--model",
                "2000",
                "--duration",
                "31",
            ],
            "duration",
        ),
        (
            &[
                "--url",
                "https://v.example/a.mp4",
                "--model",
                "2000",
                "--resolution",
                "4k",
            ],
            "resolution",
        ),
        (
            &[
                "--url",
                "https://v.example/a.mp4",
                "--model",
                "2000",
                "--callback-url",
                "not a url",
            ],
            "callback_url",
        ),
    ];
    for (args, field) in cases {
        let out = tokio::process::Command::new(bin_path("vidq")?)
            .arg("enqueue")
            .args(args)
            .env("VIDQ__REDIS__URL", &env.redis_url)
            .env("VIDQ__REDIS__PREFIX", &env.prefix)
            .output()
            .await?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(field),
            "{args:?} should name {field}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // A file with an unknown field, and one that is not JSON.
    let dir = std::env::temp_dir().join(&env.prefix);
    std::fs::create_dir_all(&dir)?;
    let unknown = dir.join("unknown.json");
    std::fs::write(
        &unknown,
        r#"{"reference_video_url":"https://v.example/a.mp4","model":2000,"colour":"red"}"#,
    )?;
    let broken = dir.join("broken.json");
    std::fs::write(&broken, "{not json")?;
    for (file, expected) in [(&unknown, "colour"), (&broken, "JSON")] {
        let out = tokio::process::Command::new(bin_path("vidq")?)
            .args(["enqueue", "--file"])
            .arg(file)
            .env("VIDQ__REDIS__URL", &env.redis_url)
            .env("VIDQ__REDIS__PREFIX", &env.prefix)
            .output()
            .await?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
    std::fs::remove_dir_all(&dir)?;
    let keys = env.redis_keys().await?;
    assert!(keys.is_empty(), "bad input wrote to Redis: {keys:?}");
    Ok(())
}
