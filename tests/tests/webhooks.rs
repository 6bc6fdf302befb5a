//! Webhooks end to end: a real `vidq-worker` posts each finished job's event to a receiver
//! inside the test, which checks the signature the way a user's receiver would (its own
//! HMAC-SHA256, not the worker's code), answers 500 when told to, and records every request.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use vidq_core::{
    JobId, JobRecord, JobState, JobTask, Patch, TransformRequest, TransformRequestInput,
};
use vidq_producer::{CancelOutcome, EnqueueOptions, EnqueueOutcome};
use vidq_queue::{QueueConfig, RedisQueue};
use vidq_tests::{Sim, TestEnv, Worker, wait_all_finished, wait_until};

const SECRET: &str = "whsec-test-7d1e0b";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    answered: u16,
}

/// A tiny HTTP/1.1 server on 127.0.0.1:0: answers 500 to the first `fail_first` requests and
/// 200 afterwards, one request per connection.
struct Receiver {
    base_url: String,
    seen: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(fail_first: usize) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let mut stream = BufReader::new(stream);
                let Ok(Some((path, headers, body))) = read_request(&mut stream).await else {
                    continue;
                };
                let answered = {
                    let mut log = log.lock().unwrap();
                    let answered = if log.len() < fail_first { 500 } else { 200 };
                    log.push(Received {
                        path,
                        headers,
                        body,
                        answered,
                    });
                    answered
                };
                let reply = format!(
                    "HTTP/1.1 {answered} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = stream.get_mut().write_all(reply.as_bytes()).await;
                let _ = stream.get_mut().shutdown().await;
            }
        });
        Ok(Self {
            base_url,
            seen,
            task,
        })
    }

    fn requests(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Request = (String, BTreeMap<String, String>, Vec<u8>);

async fn read_request(
    stream: &mut BufReader<tokio::net::TcpStream>,
) -> anyhow::Result<Option<Request>> {
    let mut line = String::new();
    if stream.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let path = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        stream.read_line(&mut line).await?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let len: usize = headers.get("content-length").map_or(Ok(0), |v| v.parse())?;
    let mut body = vec![0; len];
    stream.read_exact(&mut body).await?;
    Ok(Some((path, headers, body)))
}

/// HMAC-SHA256 as RFC 2104 defines it, written here so the test does not trust the worker's.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// What a receiver does with the Standard Webhooks headers: recompute the HMAC of
/// `<webhook-id>.<webhook-timestamp>.<body>` with its secret, accept if any `v1,<base64>` of
/// `webhook-signature` matches, refuse stale timestamps. Then the same for the older
/// `Vidq-Signature: t=..,v1=..[,v1=..]`: both must verify.
fn verify_signature(request: &Received, secret: &str) -> anyhow::Result<()> {
    verify_standard(request, secret)?;
    verify_legacy(request, secret)
}

fn verify_standard(request: &Received, secret: &str) -> anyhow::Result<()> {
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .with_context(|| format!("no {name} header"))
    };
    let id = header("webhook-id")?;
    let t: u64 = header("webhook-timestamp")?.parse()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    anyhow::ensure!(now.abs_diff(t) < 300, "timestamp {t} is {now} ± 5 min");
    let mut signed = format!("{id}.{t}.").into_bytes();
    signed.extend_from_slice(&request.body);
    let expected = BASE64.encode(hmac_sha256(secret.as_bytes(), &signed));
    let sent = header("webhook-signature")?;
    let matches = sent
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected);
    anyhow::ensure!(
        matches,
        "no webhook-signature matches: {sent} (wanted v1,{expected})"
    );
    Ok(())
}

fn verify_legacy(request: &Received, secret: &str) -> anyhow::Result<()> {
    let header = request
        .headers
        .get("vidq-signature")
        .context("no Vidq-Signature header")?;
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value.parse::<u64>()?),
            Some(("v1", value)) => v1.push(value.to_owned()),
            _ => {}
        }
    }
    let t = t.context("no t=")?;
    anyhow::ensure!(!v1.is_empty(), "no v1=");
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    anyhow::ensure!(now.abs_diff(t) < 300, "timestamp {t} is {now} ± 5 min");
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(&request.body);
    let expected = hex::encode(hmac_sha256(secret.as_bytes(), &signed));
    anyhow::ensure!(
        v1.contains(&expected),
        "signature mismatch: {v1:?} lacks {expected}"
    );
    Ok(())
}

fn webhook_env<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("VIDQ__WEBHOOKS__SECRET", SECRET),
        ("VIDQ__WEBHOOKS__ALLOW_HTTP_HOSTS", "127.0.0.1"),
        ("VIDQ__WEBHOOKS__ALLOW_PRIVATE", "true"),
        ("VIDQ__WEBHOOKS__RETRY_FOR", "60s"),
        ("VIDQ__WEBHOOKS__TIMEOUT", "5s"),
        ("VIDQ__QUEUES__NOTIFY__BACKOFF", "200ms"),
        ("VIDQ__QUEUES__NOTIFY__BACKOFF_MAX", "1s"),
    ];
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k, v));
    }
    env
}

async fn fast_sim(extra: &[&str]) -> anyhow::Result<Sim> {
    let mut args = vec![
        "--processing-min",
        "200ms",
        "--processing-max",
        "400ms",
        "--result-size",
        "8KiB",
    ];
    args.extend_from_slice(extra);
    Sim::start(&args).await
}

/// A job of tenant `owner` whose webhook goes to `callback`.
async fn enqueue_for(env: &TestEnv, owner: &str, callback: &str) -> anyhow::Result<JobId> {
    let request = TransformRequest::try_from(TransformRequestInput {
        reference_video_url: Some(format!("https://videos.example/{}/{owner}.mp4", env.prefix)),
        model: Some(2000),
        callback_url: Some(callback.to_owned()),
        ..TransformRequestInput::default()
    })?;
    let options = EnqueueOptions {
        owner: Some(owner.to_owned()),
        ..EnqueueOptions::default()
    };
    Ok(env.producer.enqueue_with(request, options).await?.job.id)
}

async fn enqueue_with_callback(env: &TestEnv, callback: &str) -> anyhow::Result<JobId> {
    let request = TransformRequest::try_from(TransformRequestInput {
        reference_video_url: Some(format!("https://videos.example/{}/a.mp4", env.prefix)),
        model: Some(2000),
        callback_url: Some(callback.to_owned()),
        metadata: Some(BTreeMap::from([("team".to_owned(), "video".to_owned())])),
        ..TransformRequestInput::default()
    })?;
    Ok(env.producer.enqueue(request).await?)
}

async fn notify_queue(env: &TestEnv) -> anyhow::Result<RedisQueue<JobTask>> {
    let config = QueueConfig::new("notify").with_prefix(env.prefix.clone());
    Ok(RedisQueue::connect(&env.redis_url, config).await?)
}

fn json(request: &Received) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::from_slice(&request.body)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_is_retried_until_delivered_once_with_a_valid_signature() -> anyhow::Result<()> {
    let env = TestEnv::new("webhook").await?;
    let sim = fast_sim(&[]).await?;
    let receiver = Receiver::start(2).await?;
    let worker = Worker::start(
        "webhook-w",
        env.worker_env(&sim.base_url, &webhook_env(&[])),
    )
    .await?;
    let callback = format!("{}/hooks/vidq?token=abc", receiver.base_url);
    let id = enqueue_with_callback(&env, &callback).await?;
    let jobs = [(id, String::new())];
    wait_all_finished(&env, &jobs, Duration::from_secs(60)).await?;

    let notify = notify_queue(&env).await?;
    wait_until(
        "the webhook to be delivered",
        Duration::from_secs(60),
        || async {
            let delivered = receiver.requests().iter().any(|r| r.answered == 200);
            let depth = notify.depth().await?;
            let settled = depth.due + depth.scheduled + depth.leased == 0;
            Ok((delivered && settled).then_some(()))
        },
    )
    .await?;

    let requests = receiver.requests();
    let answers: Vec<u16> = requests.iter().map(|r| r.answered).collect();
    assert_eq!(answers, [500, 500, 200], "two refusals, then one delivery");
    let job = env.producer.status(&id).await?.context("job record")?;
    assert_eq!(job.state, JobState::Succeeded);
    let output = job.output.as_ref().context("output")?;
    for request in &requests {
        verify_signature(request, SECRET)?;
        assert_eq!(request.path, "/hooks/vidq?token=abc");
        assert_eq!(
            request.headers.get("vidq-event-id").map(String::as_str),
            Some(format!("{id}:succeeded").as_str()),
            "the same event id on every retry"
        );
        assert_eq!(
            request.headers.get("content-type").map(String::as_str),
            Some("application/json")
        );
        assert!(
            request
                .headers
                .get("user-agent")
                .is_some_and(|ua| ua.starts_with("vidq/"))
        );
        let event = json(request)?;
        assert_eq!(event["id"], id.to_string());
        assert_eq!(event["state"], "succeeded");
        assert_eq!(event["error"], serde_json::Value::Null);
        assert_eq!(event["output"]["sha256"], output.sha256.as_str());
        assert_eq!(event["output"]["bytes"], output.bytes);
        assert_eq!(event["output"]["key"], output.key.as_str());
        assert_eq!(event["metadata"]["team"], "video");
        assert!(
            event["at_ms"]
                .as_u64()
                .is_some_and(|at| at >= job.created_at)
        );
    }
    // A tampered body or another secret does not verify.
    let mut tampered = requests[2].clone();
    tampered.body.push(b' ');
    assert!(verify_signature(&tampered, SECRET).is_err());
    assert!(verify_signature(&requests[2], "another-secret").is_err());

    assert_eq!(notify.depth().await?.dead, 0);
    let log = worker.log();
    assert!(!log.contains(SECRET), "the webhook secret reached the log");
    assert!(
        !log.contains("token=abc"),
        "the callback query reached the log"
    );
    env.cleanup().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_to_a_private_address_is_refused_and_the_job_still_succeeds()
-> anyhow::Result<()> {
    let env = TestEnv::new("webhook-private").await?;
    let sim = fast_sim(&[]).await?;
    let receiver = Receiver::start(0).await?;
    let overrides = webhook_env(&[("VIDQ__WEBHOOKS__ALLOW_PRIVATE", "false")]);
    let _worker = Worker::start(
        "webhook-private-w",
        env.worker_env(&sim.base_url, &overrides),
    )
    .await?;
    let id = enqueue_with_callback(&env, &format!("{}/hook", receiver.base_url)).await?;
    wait_all_finished(&env, &[(id, String::new())], Duration::from_secs(60)).await?;

    let notify = notify_queue(&env).await?;
    let dead = wait_until(
        "the webhook to be dead-lettered",
        Duration::from_secs(30),
        || async {
            let dead = notify.dead_tasks(0, 10).await?;
            Ok((!dead.is_empty()).then_some(dead))
        },
    )
    .await?;
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].reason.contains("127.0.0.1") && dead[0].reason.contains("loopback"),
        "reason: {}",
        dead[0].reason
    );
    assert!(receiver.requests().is_empty(), "nothing was sent");
    let job = env.producer.status(&id).await?.context("job record")?;
    assert_eq!(
        job.state,
        JobState::Succeeded,
        "a refused webhook never fails the job"
    );
    env.cleanup().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_canceled_jobs_notify_too() -> anyhow::Result<()> {
    let env = TestEnv::new("webhook-failed").await?;
    let sim = fast_sim(&["--rate-job-failed", "1.0"]).await?;
    let receiver = Receiver::start(0).await?;
    let _worker = Worker::start(
        "webhook-failed-w",
        env.worker_env(&sim.base_url, &webhook_env(&[])),
    )
    .await?;
    let failed = enqueue_with_callback(&env, &format!("{}/failed", receiver.base_url)).await?;
    wait_all_finished(&env, &[(failed, String::new())], Duration::from_secs(60)).await?;
    let job = env.producer.status(&failed).await?.context("job record")?;
    assert_eq!(job.state, JobState::Failed);

    // Canceled by the producer: the worker never ends this job, yet its webhook is sent.
    let canceled = enqueue_with_callback(&env, &format!("{}/canceled", receiver.base_url)).await?;
    assert_eq!(
        env.producer.cancel(&canceled).await?,
        CancelOutcome::Canceled
    );

    let requests = wait_until("both webhooks", Duration::from_secs(30), || async {
        let requests = receiver.requests();
        Ok((requests.len() >= 2).then_some(requests))
    })
    .await?;
    let by_path = |path: &str| {
        requests
            .iter()
            .find(|r| r.path == path)
            .with_context(|| format!("no request to {path}"))
    };
    let on_failure = by_path("/failed")?;
    verify_signature(on_failure, SECRET)?;
    let event = json(on_failure)?;
    assert_eq!(event["state"], "failed");
    assert_eq!(event["output"], serde_json::Value::Null);
    assert_eq!(
        event["error"].as_str(),
        job.error.as_deref(),
        "the job's error is in the event"
    );
    assert!(event["error"].as_str().is_some_and(|e| !e.is_empty()));

    let on_cancel = by_path("/canceled")?;
    verify_signature(on_cancel, SECRET)?;
    assert_eq!(json(on_cancel)?["state"], "canceled");
    assert_eq!(
        on_cancel.headers.get("vidq-event-id").map(String::as_str),
        Some(format!("{canceled}:canceled").as_str())
    );
    env.cleanup().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_past_retry_for_dead_letters_the_webhook() -> anyhow::Result<()> {
    let env = TestEnv::new("webhook-down").await?;
    let sim = fast_sim(&[]).await?;
    let receiver = Receiver::start(usize::MAX).await?;
    let overrides = webhook_env(&[("VIDQ__WEBHOOKS__RETRY_FOR", "2s")]);
    let _worker =
        Worker::start("webhook-down-w", env.worker_env(&sim.base_url, &overrides)).await?;
    let id = enqueue_with_callback(&env, &format!("{}/down", receiver.base_url)).await?;
    wait_all_finished(&env, &[(id, String::new())], Duration::from_secs(60)).await?;

    let notify = notify_queue(&env).await?;
    let dead = wait_until(
        "the webhook to give up",
        Duration::from_secs(30),
        || async {
            let dead = notify.dead_tasks(0, 10).await?;
            Ok((!dead.is_empty()).then_some(dead))
        },
    )
    .await?;
    assert!(
        dead[0].reason.contains("HTTP 500") && dead[0].reason.contains("gave up"),
        "reason: {}",
        dead[0].reason
    );
    let requests = receiver.requests();
    assert!(
        requests.len() >= 2,
        "retried before giving up: {}",
        requests.len()
    );
    let job = env.producer.status(&id).await?.context("job record")?;
    let died_ms = u64::try_from(dead[0].died_at.duration_since(UNIX_EPOCH)?.as_millis())?;
    let after = died_ms.saturating_sub(job.updated_at);
    assert!(
        after >= 2_000,
        "gave up {after} ms after the job ended, before retry_for"
    );
    env.cleanup().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_work_still_notifies_each_callers_own_callback() -> anyhow::Result<()> {
    let env = TestEnv::new("webhook-reuse").await?;
    let sim = fast_sim(&[]).await?;
    let receiver = Receiver::start(0).await?;
    let _worker = Worker::start(
        "webhook-reuse-w",
        env.worker_env(&sim.base_url, &webhook_env(&[])),
    )
    .await?;
    let request = |path: Option<&str>| {
        TransformRequest::try_from(TransformRequestInput {
            reference_video_url: Some(format!("https://videos.example/{}/same.mp4", env.prefix)),
            model: Some(2000),
            callback_url: path.map(|path| format!("{}{path}", receiver.base_url)),
            ..TransformRequestInput::default()
        })
    };
    let options = || EnqueueOptions {
        reuse_within: Some(Duration::from_secs(3600)),
        ..EnqueueOptions::default()
    };
    let first = env
        .producer
        .enqueue_with(request(Some("/first"))?, options())
        .await?;
    // The same work, still in flight, but another callback: following the first job would
    // notify only /first, so a job of its own is made.
    let second = env
        .producer
        .enqueue_with(request(Some("/second"))?, options())
        .await?;
    assert_eq!(first.outcome, EnqueueOutcome::Created);
    assert_eq!(second.outcome, EnqueueOutcome::Created, "{second:?}");
    // A caller that asks for no webhook follows the job in flight.
    let follower = env.producer.enqueue_with(request(None)?, options()).await?;
    assert_eq!(follower.outcome, EnqueueOutcome::Followed, "{follower:?}");
    assert_eq!(
        follower.job.id, second.job.id,
        "the newest identical job is followed"
    );
    let jobs = [
        (first.job.id, String::new()),
        (second.job.id, String::new()),
    ];
    wait_all_finished(&env, &jobs, Duration::from_secs(60)).await?;
    // Done work, a third caller: reused at once, and still notified.
    let third = env
        .producer
        .enqueue_with(request(Some("/third"))?, options())
        .await?;
    assert!(
        matches!(third.outcome, EnqueueOutcome::Reused { .. }),
        "{third:?}"
    );
    let requests = wait_until("three webhooks", Duration::from_secs(30), || async {
        let requests = receiver.requests();
        Ok((requests.len() >= 3).then_some(requests))
    })
    .await?;
    let mut paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(paths, ["/first", "/second", "/third"]);
    let on_third = requests
        .iter()
        .find(|r| r.path == "/third")
        .context("no /third")?;
    verify_signature(on_third, SECRET)?;
    let event = json(on_third)?;
    assert_eq!(event["id"], third.job.id.to_string());
    assert_eq!(event["state"], "succeeded");
    let output = third.job.output.as_ref().context("reused output")?;
    assert_eq!(event["output"]["key"], output.key.as_str());
    assert_eq!(event["output"]["sha256"], output.sha256.as_str());
    env.cleanup().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_of_a_job_whose_ender_died_is_sent_by_the_reconciler() -> anyhow::Result<()> {
    let env = TestEnv::new("webhook-orphan").await?;
    let sim = fast_sim(&[]).await?;
    let receiver = Receiver::start(0).await?;
    // A job ended by a process that died right after writing the end: no webhook was queued.
    let request = TransformRequest::try_from(TransformRequestInput {
        reference_video_url: Some(format!("https://videos.example/{}/o.mp4", env.prefix)),
        model: Some(2000),
        callback_url: Some(format!("{}/orphan", receiver.base_url)),
        ..TransformRequestInput::default()
    })?;
    let record = JobRecord::new(request, Duration::from_secs(1800));
    let store = env.producer.store();
    store.create(&record).await?;
    store
        .transition(
            &record.id,
            &[JobState::Queued],
            JobState::Canceled,
            Patch::new().note("canceled"),
        )
        .await?;
    assert_eq!(notify_queue(&env).await?.depth().await?.due, 0);

    let overrides = webhook_env(&[
        ("VIDQ__RECONCILER__INTERVAL", "200ms"),
        ("VIDQ__RECONCILER__STALE_AFTER", "1s"),
    ]);
    let _worker = Worker::start(
        "webhook-orphan-w",
        env.worker_env(&sim.base_url, &overrides),
    )
    .await?;
    let requests = wait_until("the webhook", Duration::from_secs(30), || async {
        let requests = receiver.requests();
        Ok((!requests.is_empty()).then_some(requests))
    })
    .await?;
    assert_eq!(requests.len(), 1, "{requests:?}");
    verify_signature(&requests[0], SECRET)?;
    assert_eq!(requests[0].path, "/orphan");
    let event = json(&requests[0])?;
    assert_eq!(event["id"], record.id.to_string());
    assert_eq!(event["state"], "canceled");
    wait_until(
        "the job to leave the active index",
        Duration::from_secs(10),
        || async {
            Ok(store
                .active_expected_by(&record.id)
                .await?
                .is_none()
                .then_some(()))
        },
    )
    .await?;
    env.cleanup().await?;
    Ok(())
}

const ALPHA_NEW: &str = "alpha-secret-new-5c1f";
const ALPHA_OLD: &str = "alpha-secret-old-93ab";
const BETA: &str = "beta-secret-only-7e20";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_verifies_only_its_own_signatures_and_rotation_sends_both() -> anyhow::Result<()>
{
    let env = TestEnv::new("webhook-tenants").await?;
    let sim = fast_sim(&[]).await?;
    // Alpha's receiver refuses its first delivery, so the event is sent twice.
    let alpha_receiver = Receiver::start(1).await?;
    let beta_receiver = Receiver::start(0).await?;
    let other_receiver = Receiver::start(0).await?;
    let alpha_secrets = format!("{ALPHA_NEW},{ALPHA_OLD}");
    let overrides = webhook_env(&[
        ("VIDQ__WEBHOOKS__TENANTS__ALPHA__SECRETS", &alpha_secrets),
        ("VIDQ__WEBHOOKS__TENANTS__BETA__SECRETS", BETA),
    ]);
    let worker = Worker::start(
        "webhook-tenants-w",
        env.worker_env(&sim.base_url, &overrides),
    )
    .await?;
    let alpha = enqueue_for(&env, "alpha", &format!("{}/a", alpha_receiver.base_url)).await?;
    let beta = enqueue_for(&env, "beta", &format!("{}/b", beta_receiver.base_url)).await?;
    let other = enqueue_for(&env, "gamma", &format!("{}/g", other_receiver.base_url)).await?;
    let jobs = [
        (alpha, String::new()),
        (beta, String::new()),
        (other, String::new()),
    ];
    wait_all_finished(&env, &jobs, Duration::from_secs(90)).await?;
    let notify = notify_queue(&env).await?;
    wait_until("the three webhooks", Duration::from_secs(60), || async {
        let delivered = [&alpha_receiver, &beta_receiver, &other_receiver]
            .iter()
            .all(|r| r.requests().iter().any(|q| q.answered == 200));
        let depth = notify.depth().await?;
        let settled = depth.due + depth.scheduled + depth.leased == 0;
        Ok((delivered && settled).then_some(()))
    })
    .await?;

    // Alpha rotates: two signatures on each delivery, either secret verifies, beta's and the
    // default secret do not; the event id is the same on the retry.
    let to_alpha = alpha_receiver.requests();
    assert_eq!(
        to_alpha.iter().map(|r| r.answered).collect::<Vec<_>>(),
        [500, 200]
    );
    for request in &to_alpha {
        assert_eq!(
            request.headers["webhook-id"],
            format!("{alpha}:succeeded"),
            "one event id across retries"
        );
        assert_eq!(request.headers["webhook-signature"].split(' ').count(), 2);
        verify_signature(request, ALPHA_NEW)?;
        verify_signature(request, ALPHA_OLD)?;
        assert!(verify_standard(request, BETA).is_err());
        assert!(verify_legacy(request, BETA).is_err());
        assert!(verify_standard(request, SECRET).is_err());
        assert!(verify_legacy(request, SECRET).is_err());
    }
    // The signing secret comes first.
    let first = to_alpha[1].headers["webhook-signature"]
        .split(' ')
        .next()
        .context("a signature")?
        .to_owned();
    let mut only_new = to_alpha[1].clone();
    only_new.headers.insert("webhook-signature".into(), first);
    verify_standard(&only_new, ALPHA_NEW)?;
    // The id is signed: the same body and signature under another id does not verify.
    let mut other_id = to_alpha[1].clone();
    other_id
        .headers
        .insert("webhook-id".into(), format!("{beta}:succeeded"));
    assert!(verify_standard(&other_id, ALPHA_NEW).is_err());

    // Beta: one signature, its own.
    let to_beta = beta_receiver.requests();
    assert_eq!(to_beta.len(), 1);
    assert_eq!(
        to_beta[0].headers["webhook-signature"].split(' ').count(),
        1
    );
    verify_signature(&to_beta[0], BETA)?;
    for foreign in [ALPHA_NEW, ALPHA_OLD, SECRET] {
        assert!(verify_standard(&to_beta[0], foreign).is_err(), "{foreign}");
        assert!(verify_legacy(&to_beta[0], foreign).is_err(), "{foreign}");
    }
    // A tenant without secrets of its own gets the default secret.
    let to_other = other_receiver.requests();
    assert_eq!(to_other.len(), 1);
    verify_signature(&to_other[0], SECRET)?;
    assert!(verify_standard(&to_other[0], BETA).is_err());

    assert_eq!(notify.depth().await?.dead, 0);
    let log = worker.log();
    for secret in [ALPHA_NEW, ALPHA_OLD, BETA, SECRET] {
        assert!(!log.contains(secret), "a webhook secret reached the log");
    }
    env.cleanup().await?;
    Ok(())
}
