//! One job, one trace, as exported: a real `vidq serve` and `vidq-worker` (with vidq-sim and
//! the S3 server) export over OTLP/HTTP to a small receiver in this test, which decodes each
//! `ExportTraceServiceRequest`. A job enqueued with a given `traceparent` (and a callback)
//! shows up as one trace: the API request's span continues the caller's, and the submit,
//! every poll, the transfer and the notify are `process <queue>` spans (messaging semantic
//! conventions) under it, with the upstream calls and the S3 requests as their children.
//! Without `otel.endpoint` nothing is exported, even with the SDK's own endpoint variables set;
//! a bad `otel.endpoint` stops both binaries at start, naming it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use vidq_tests::{Sim, TestEnv, Worker, bin_path, free_port, wait_until};

const TOKEN: &str = "otel-token-0123456789";
const SECRET: &str = "otel-webhook-secret-0123456789";
/// The caller's trace: the job's spans must all be in it.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
/// The caller's span: the API request span's parent.
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// One exported span, decoded.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    kind: i32,
    /// The span status code: 0 unset, 1 ok, 2 error.
    status: i32,
    start_ns: u64,
    attrs: BTreeMap<String, String>,
}

impl Span {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).map(String::as_str)
    }
}

#[derive(Default)]
struct Seen {
    spans: Vec<Span>,
    exports: usize,
    hooks: usize,
    /// How many more webhook deliveries to answer 500.
    fail_hooks: usize,
    /// The `x_collector_key` header of each export.
    keys: Vec<String>,
}

/// The OTLP/HTTP receiver (`POST /v1/traces`, protobuf) and the job's webhook receiver
/// (`POST /hook`), on one free port.
struct Receiver {
    base: String,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attrs(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

async fn traces(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let protobuf = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-protobuf"));
    if !protobuf {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, Vec::new());
    }
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new());
    };
    let mut seen = seen.lock().unwrap();
    seen.exports += 1;
    let key = headers.get("x_collector_key").and_then(|v| v.to_str().ok());
    seen.keys.push(key.unwrap_or_default().to_owned());
    for resource in &request.resource_spans {
        let service = resource
            .resource
            .as_ref()
            .map(|r| attrs(&r.attributes))
            .and_then(|a| a.get("service.name").cloned())
            .unwrap_or_default();
        for scope in &resource.scope_spans {
            for span in &scope.spans {
                seen.spans.push(Span {
                    service: service.clone(),
                    trace_id: hex::encode(&span.trace_id),
                    span_id: hex::encode(&span.span_id),
                    parent: hex::encode(&span.parent_span_id),
                    name: span.name.clone(),
                    kind: span.kind,
                    status: span.status.as_ref().map_or(0, |s| s.code),
                    start_ns: span.start_time_unix_nano,
                    attrs: attrs(&span.attributes),
                });
            }
        }
    }
    (
        StatusCode::OK,
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

async fn hook(State(seen): State<Arc<Mutex<Seen>>>) -> StatusCode {
    let mut seen = seen.lock().unwrap();
    if seen.fail_hooks > 0 {
        seen.fail_hooks -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    seen.hooks += 1;
    StatusCode::OK
}

impl Receiver {
    async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .route("/hook", post(hook))
            .with_state(seen.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { base, seen, task })
    }

    fn spans(&self) -> Vec<Span> {
        self.seen.lock().unwrap().spans.clone()
    }

    fn exports(&self) -> usize {
        self.seen.lock().unwrap().exports
    }

    fn hooks(&self) -> usize {
        self.seen.lock().unwrap().hooks
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A `vidq serve` with one read/write token; killed on drop.
struct Serve {
    child: Child,
    log: PathBuf,
    base: String,
}

impl Serve {
    async fn start(env: &TestEnv, name: &str, extra: &[(&str, &str)]) -> anyhow::Result<Self> {
        let bin = bin_path("vidq")?;
        let dir = bin.parent().context("no target dir")?.to_owned();
        let config = dir.join(format!("{}-{name}.toml", env.prefix));
        std::fs::write(
            &config,
            format!(
                "[[api.tokens]]\nname = \"otel\"\ntoken = \"{TOKEN}\"\nscopes = [\"read\", \"write\"]\n"
            ),
        )?;
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)?;
        let listen = format!("127.0.0.1:{}", free_port()?);
        let child = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .args(["serve", "--listen", &listen])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("VIDQ__REDIS__URL", &env.redis_url)
            .env("VIDQ__REDIS__PREFIX", &env.prefix)
            .env("VIDQ__LOG__FILTER", "info")
            .env("VIDQ__WEBHOOKS__ALLOW_HTTP_HOSTS", "127.0.0.1")
            .env("VIDQ__WEBHOOKS__ALLOW_PRIVATE", "true")
            .envs(extra.iter().copied())
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .context("starting vidq serve")?;
        Ok(Self {
            child,
            log,
            base: format!("http://{listen}"),
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits for the graceful stop (which flushes the exporter).
    async fn terminate(&mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()?;
        }
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .context("vidq serve did not stop after SIGTERM")??;
        Ok(())
    }
}

fn fast_sim(result_size: &'static str) -> [&'static str; 6] {
    [
        "--processing-min",
        "1200ms",
        "--processing-max",
        "1500ms",
        "--result-size",
        result_size,
    ]
}

fn worker_extra<'a>(otel: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut extra = vec![
        ("VIDQ__WEBHOOKS__SECRET", SECRET),
        ("VIDQ__WEBHOOKS__ALLOW_HTTP_HOSTS", "127.0.0.1"),
        ("VIDQ__WEBHOOKS__ALLOW_PRIVATE", "true"),
        ("VIDQ__WEBHOOKS__TIMEOUT", "5s"),
    ];
    extra.extend_from_slice(otel);
    extra
}

/// `POST /v1/jobs` with a callback to the receiver and `traceparent` when given: the job view.
async fn enqueue(
    http: &reqwest::Client,
    api: &Serve,
    receiver: &Receiver,
    env: &TestEnv,
    traceparent: Option<&str>,
) -> anyhow::Result<Value> {
    let body = json!({
        "reference_video_url": format!("https://videos.example/{}/traced.mp4", env.prefix),
        "model": 2000,
        "callback_url": format!("{}/hook", receiver.base),
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut request = http
            .post(format!("{}/v1/jobs", api.base))
            .bearer_auth(TOKEN)
            .json(&body);
        if let Some(parent) = traceparent {
            request = request
                .header("traceparent", parent)
                .header("tracestate", "caller=1");
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                let view: Value = response.json().await.unwrap_or_default();
                anyhow::ensure!(
                    status == 202,
                    "POST /v1/jobs: {status} {view}\n{}",
                    api.log()
                );
                return Ok(view);
            }
            // Not listening yet.
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => return Err(err).context(format!("POST /v1/jobs\n{}", api.log())),
        }
    }
}

/// The job's state as the API shows it.
async fn job_state(http: &reqwest::Client, api: &Serve, id: &str) -> Option<String> {
    let response = http
        .get(format!("{}/v1/jobs/{id}", api.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .ok()?;
    let view: Value = response.json().await.ok()?;
    view["state"].as_str().map(str::to_owned)
}

/// The spans of `trace`, printed as a tree: each span under its parent (in start order), with
/// its service.
fn tree(spans: &[Span], root_parent: &str) -> String {
    fn walk(spans: &[Span], parent: &str, depth: usize, out: &mut String) {
        let mut children: Vec<&Span> = spans.iter().filter(|s| s.parent == parent).collect();
        children.sort_by_key(|s| s.start_ns);
        for span in children {
            let error = match span.attr("error.type") {
                Some(kind) if span.status == 2 => format!(" ERROR {kind}"),
                _ if span.status == 2 => " ERROR".to_owned(),
                _ => String::new(),
            };
            out.push_str(&format!(
                "{}{} [{}] span {} parent {}{error}\n",
                "  ".repeat(depth),
                span.name,
                span.service,
                span.span_id,
                span.parent
            ));
            walk(spans, &span.span_id, depth + 1, out);
        }
    }
    let trace = spans.first().map_or("", |s| s.trace_id.as_str());
    let mut out = format!("trace {trace} (caller span {root_parent})\n");
    walk(spans, root_parent, 1, &mut out);
    out
}

/// Whether following `span`'s parents within `spans` reaches the span `ancestor`.
fn descends_from(spans: &[Span], span: &Span, ancestor: &str) -> bool {
    let mut parent = span.parent.clone();
    for _ in 0..spans.len() {
        if parent == ancestor {
            return true;
        }
        match spans.iter().find(|s| s.span_id == parent) {
            Some(next) => parent = next.parent.clone(),
            None => return false,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_job_is_one_trace_from_the_api_request_to_each_task() -> anyhow::Result<()> {
    let env = TestEnv::new("otel").await?;
    // 11 MiB in parts of 5 MiB: a multipart upload of 3 parts.
    let sim = Sim::start(&fast_sim("11MiB")).await?;
    let receiver = Receiver::start().await?;
    // Exports every 200 ms, so spans arrive while the processes run.
    let otel = [
        ("VIDQ__OTEL__ENDPOINT", receiver.base.as_str()),
        ("VIDQ__OTEL__HEADERS__X_COLLECTOR_KEY", "collector-s3cret"),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
    ];
    let mut extra = worker_extra(&otel);
    extra.push(("VIDQ__STORAGE__PART_SIZE", "5242880"));
    extra.push(("VIDQ__STORAGE__SINGLE_PUT_MAX", "0"));
    let mut worker = Worker::start("otel-worker", env.worker_env(&sim.base_url, &extra)).await?;
    let mut api = Serve::start(&env, "otel-api", &otel).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;

    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let view = enqueue(&http, &api, &receiver, &env, Some(&traceparent)).await?;
    let id = view["id"].as_str().context("job id")?.to_owned();
    assert_eq!(
        view["trace_id"], TRACE_ID,
        "the job view shows its trace: {view}"
    );

    let logs =
        |api: &Serve, worker: &Worker| format!("api:\n{}\nworker:\n{}", api.log(), worker.log());
    wait_until("the job to succeed", Duration::from_secs(90), || async {
        Ok((job_state(&http, &api, &id).await.as_deref() == Some("succeeded")).then_some(()))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", logs(&api, &worker)))?;
    wait_until("the webhook", Duration::from_secs(60), || async {
        Ok((receiver.hooks() > 0).then_some(()))
    })
    .await?;

    // Every task's span, and the API request's, exported.
    let wanted = [
        "POST /v1/jobs",
        "process submit",
        "process poll",
        "process transfer",
        "process notify",
        "POST goenhance generate",
        "GET goenhance detail",
        "S3 CreateMultipartUpload",
        "S3 UploadPart",
        "S3 CompleteMultipartUpload",
    ];
    let spans = wait_until("the job's spans", Duration::from_secs(60), || async {
        let spans: Vec<Span> = receiver
            .spans()
            .into_iter()
            .filter(|s| s.trace_id == TRACE_ID)
            .collect();
        let complete = wanted
            .iter()
            .all(|name| spans.iter().any(|s| s.name == *name));
        Ok(complete.then_some(spans))
    })
    .await
    .map_err(|e| {
        let names: Vec<String> = receiver
            .spans()
            .iter()
            .map(|s| format!("{} {}", s.trace_id, s.name))
            .collect();
        anyhow::anyhow!("{e}; exported: {names:#?}\n{}", logs(&api, &worker))
    })?;
    println!("{}", tree(&spans, CALLER_SPAN));

    // No span of this job's tasks in another trace.
    for span in receiver.spans() {
        if span
            .attr("messaging.message.id")
            .is_some_and(|m| m.contains(&id))
        {
            assert_eq!(
                span.trace_id, TRACE_ID,
                "a task span left the trace: {span:?}"
            );
        }
    }
    // The request span continues the caller's span, and is the API's.
    let request = spans
        .iter()
        .find(|s| s.name == "POST /v1/jobs")
        .context("request span")?;
    assert_eq!(request.parent, CALLER_SPAN, "{request:?}");
    assert_eq!(request.service, "vidq-api");
    assert_eq!(request.kind, 2, "SERVER: {request:?}");
    assert_eq!(request.attr("http.request.method"), Some("POST"));

    // Each task: a consumer span of the worker under the request span, by the conventions.
    let mut polls = 0;
    for (queue, span) in spans
        .iter()
        .filter_map(|s| Some((s.name.strip_prefix("process ")?, s)))
    {
        assert!(descends_from(&spans, span, &request.span_id), "{span:?}");
        assert_eq!(
            span.parent, request.span_id,
            "tasks hang off the request: {span:?}"
        );
        assert_eq!(span.service, "vidq-worker");
        assert_eq!(span.kind, 5, "CONSUMER: {span:?}");
        assert_eq!(span.attr("messaging.system"), Some("vidq"));
        assert_eq!(span.attr("messaging.destination.name"), Some(queue));
        assert_eq!(span.attr("messaging.operation.type"), Some("process"));
        assert_eq!(
            span.attr("messaging.message.id"),
            Some(format!("{id}:{queue}").as_str())
        );
        if queue == "poll" {
            polls += 1;
        }
    }
    assert!(polls >= 1, "at least one poll span");

    // Upstream calls: HTTP client spans under the submit and the polls.
    let sim_port = sim.base_url.rsplit(':').next().unwrap_or_default();
    for (name, under) in [
        ("POST goenhance generate", "process submit"),
        ("GET goenhance detail", "process poll"),
    ] {
        let call = spans.iter().find(|s| s.name == name).context(name)?;
        let parent = spans
            .iter()
            .find(|s| s.span_id == call.parent)
            .with_context(|| format!("{name}'s parent"))?;
        assert_eq!(parent.name, under, "{call:?}");
        assert_eq!(call.kind, 3, "CLIENT: {call:?}");
        assert_eq!(call.attr("server.address"), Some("127.0.0.1"));
        assert_eq!(call.attr("server.port"), Some(sim_port));
        assert_eq!(call.attr("http.response.status_code"), Some("200"));
        assert_eq!(
            call.attr("http.request.method"),
            name.split(' ').next(),
            "{call:?}"
        );
    }
    // The S3 requests of the transfer: the upload's start, each part, its completion.
    let transfer = spans
        .iter()
        .find(|s| s.name == "process transfer")
        .context("transfer span")?;
    let s3: Vec<&Span> = spans.iter().filter(|s| s.name.starts_with("S3 ")).collect();
    let parts = s3.iter().filter(|s| s.name == "S3 UploadPart").count();
    assert_eq!(parts, 3, "11 MiB in 5 MiB parts: {s3:#?}");
    for span in &s3 {
        assert_eq!(span.parent, transfer.span_id, "{span:?}");
        assert_eq!(span.kind, 3, "CLIENT: {span:?}");
        let method = if span.name == "S3 UploadPart" {
            "PUT"
        } else {
            "POST"
        };
        assert_eq!(span.attr("http.request.method"), Some(method), "{span:?}");
        assert_eq!(span.attr("http.response.status_code"), Some("200"));
        assert!(span.attr("server.address").is_some_and(|a| !a.is_empty()));
        assert_eq!(span.attr("rpc.service"), Some("S3"));
    }

    // The collector's key is sent with every export, and never logged.
    let keys = receiver.seen.lock().unwrap().keys.clone();
    assert!(keys.iter().all(|k| k == "collector-s3cret"), "{keys:?}");
    worker.terminate(Duration::from_secs(30)).await?;
    api.terminate().await?;
    for log in [worker.log(), api.log()] {
        assert!(
            !log.contains("collector-s3cret"),
            "a header value was logged"
        );
    }
    env.cleanup().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_endpoint_nothing_is_exported_and_a_bad_one_is_refused() -> anyhow::Result<()> {
    let env = TestEnv::new("otel-off").await?;
    let receiver = Receiver::start().await?;
    // The SDK's own variables point at the receiver: had an exporter been built without
    // otel.endpoint, it would export there.
    let sdk_vars = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.base.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];

    // A bad otel.endpoint: each binary refuses to start, naming it.
    for bad in [
        "ftp://collector:4318",
        "collector:4318",
        "http://u:pw@c:4318",
    ] {
        let mut worker_env = env.worker_env("http://127.0.0.1:9", &[]);
        worker_env.insert("VIDQ__OTEL__ENDPOINT".into(), bad.into());
        let out = Command::new(bin_path("vidq-worker")?)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&worker_env)
            .output()
            .await?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "worker with {bad}: {stderr}");
        assert!(
            stderr.contains("otel.endpoint"),
            "worker with {bad}: {stderr}"
        );
        assert!(!stderr.contains("pw@"), "{stderr}");
        let out = Command::new(bin_path("vidq")?)
            .arg("usage")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("VIDQ__REDIS__URL", &env.redis_url)
            .env("VIDQ__REDIS__PREFIX", &env.prefix)
            .env("VIDQ__OTEL__ENDPOINT", bad)
            .output()
            .await?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "vidq with {bad}: {stderr}");
        assert!(
            stderr.contains("otel.endpoint"),
            "vidq with {bad}: {stderr}"
        );
    }

    // Unset: a job goes through a worker and the API, and nothing reaches the receiver, even
    // after both stopped (a stop flushes any exporter).
    let sim = Sim::start(&fast_sim("8KiB")).await?;
    let mut worker = Worker::start(
        "otel-off-worker",
        env.worker_env(&sim.base_url, &worker_extra(&sdk_vars)),
    )
    .await?;
    let mut api = Serve::start(&env, "otel-off-api", &sdk_vars).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let view = enqueue(&http, &api, &receiver, &env, Some(&traceparent)).await?;
    let id = view["id"].as_str().context("job id")?.to_owned();
    // The caller's context is still stored, so a worker that exports would join it.
    assert_eq!(view["trace_id"], TRACE_ID, "{view}");
    wait_until("the webhook", Duration::from_secs(90), || async {
        Ok((receiver.hooks() > 0).then_some(()))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\napi:\n{}\nworker:\n{}", api.log(), worker.log()))?;
    assert_eq!(
        job_state(&http, &api, &id).await.as_deref(),
        Some("succeeded")
    );
    worker.terminate(Duration::from_secs(30)).await?;
    api.terminate().await?;
    assert_eq!(
        receiver.exports(),
        0,
        "spans were exported without otel.endpoint"
    );
    env.cleanup().await?;
    Ok(())
}

/// The second job's trace: enqueued through the batch endpoint, its first submission meets an
/// upstream outage.
const BATCH_TRACE_ID: &str = "5ce0e9a56015fec5aadfa328ae398115";
const BATCH_CALLER_SPAN: &str = "1d2c3b4a59687766";

/// A job enqueued by `POST /v1/jobs:batch` with a `traceparent` joins that trace; its first
/// submission meets an upstream 5xx (vidq-sim's fault injection, on until the error span is
/// exported): a `process submit` span marked ERROR (with `error.type`) whose
/// `POST goenhance generate` child is ERROR with the status, then a successful retry in the
/// same trace. The result's download is a `GET result` span under the transfer with the
/// signed URL's host and path but not its query, and the webhook a `POST webhook` span under
/// the notify; no attribute of any span holds a query string.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_is_an_error_span_and_the_batch_endpoint_continues_the_trace()
-> anyhow::Result<()> {
    let env = TestEnv::new("otel-retry").await?;
    let sim = Sim::start(&fast_sim("64KiB")).await?;
    let receiver = Receiver::start().await?;
    let otel = [
        ("VIDQ__OTEL__ENDPOINT", receiver.base.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
    ];
    let mut extra = worker_extra(&otel);
    // The retry comes quickly.
    extra.push(("VIDQ__QUEUES__SUBMIT__BACKOFF", "500ms"));
    extra.push(("VIDQ__LIMITS__CREDITS_POLL", "1s"));
    extra.push(("VIDQ__QUEUES__NOTIFY__BACKOFF", "500ms"));
    // The first webhook delivery is answered 500.
    receiver.seen.lock().unwrap().fail_hooks = 1;
    let mut worker =
        Worker::start("otel-retry-worker", env.worker_env(&sim.base_url, &extra)).await?;
    let mut api = Serve::start(&env, "otel-retry-api", &otel).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let logs =
        |api: &Serve, worker: &Worker| format!("api:\n{}\nworker:\n{}", api.log(), worker.log());

    // Upstream answers every request 5xx until the failed submission is seen.
    sim.set_faults(&json!({ "rate_5xx": 1.0 })).await?;
    let traceparent = format!("00-{BATCH_TRACE_ID}-{BATCH_CALLER_SPAN}-01");
    let body = json!({ "jobs": [{
        "reference_video_url": format!("https://videos.example/{}/batch.mp4", env.prefix),
        "model": 2000,
        "callback_url": format!("{}/hook", receiver.base),
    }] });
    let view = wait_until(
        "the batch to be accepted",
        Duration::from_secs(60),
        || async {
            let Ok(response) = http
                .post(format!("{}/v1/jobs:batch", api.base))
                .bearer_auth(TOKEN)
                .header("traceparent", &traceparent)
                .json(&body)
                .send()
                .await
            else {
                return Ok(None); // not listening yet
            };
            let status = response.status();
            let view: Value = response.json().await.unwrap_or_default();
            anyhow::ensure!(status == 200, "POST /v1/jobs:batch: {status} {view}");
            Ok(Some(view))
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", logs(&api, &worker)))?;
    let job = &view["results"][0]["job"];
    let id = job["id"].as_str().context("job id")?.to_owned();
    assert_eq!(job["trace_id"], BATCH_TRACE_ID, "{view}");

    let in_trace = || -> Vec<Span> {
        receiver
            .spans()
            .into_iter()
            .filter(|s| s.trace_id == BATCH_TRACE_ID)
            .collect()
    };
    wait_until(
        "a failed submission's span",
        Duration::from_secs(60),
        || async {
            Ok(in_trace()
                .iter()
                .any(|s| s.name == "process submit" && s.status == 2)
                .then_some(()))
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", logs(&api, &worker)))?;
    sim.set_faults(&json!({})).await?;

    wait_until("the job to succeed", Duration::from_secs(90), || async {
        Ok((job_state(&http, &api, &id).await.as_deref() == Some("succeeded")).then_some(()))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", logs(&api, &worker)))?;
    let spans = wait_until("the job's spans", Duration::from_secs(60), || async {
        let spans = in_trace();
        let has = |name: &str| spans.iter().any(|s| s.name == name);
        let submitted = spans
            .iter()
            .any(|s| s.name == "process submit" && s.status != 2);
        let delivered = spans
            .iter()
            .any(|s| s.name == "POST webhook" && s.status != 2);
        Ok(
            (submitted && delivered && has("POST /v1/jobs:batch") && has("GET result"))
                .then_some(spans),
        )
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", logs(&api, &worker)))?;
    println!("{}", tree(&spans, BATCH_CALLER_SPAN));
    let named = |name: &str| -> Vec<&Span> {
        let mut found: Vec<&Span> = spans.iter().filter(|s| s.name == name).collect();
        found.sort_by_key(|s| s.start_ns);
        found
    };
    let attempt = |span: &Span| -> u32 {
        span.attr("task.attempt")
            .and_then(|a| a.parse().ok())
            .unwrap_or(0)
    };
    let parent_of = |span: &Span| spans.iter().find(|s| s.span_id == span.parent).cloned();

    // The batch request continues the caller's span; the tasks hang off it.
    let request = named("POST /v1/jobs:batch")[0];
    assert_eq!(request.parent, BATCH_CALLER_SPAN, "{request:?}");
    assert_eq!(request.service, "vidq-api");

    // The failed submission, then a successful one, both in this trace.
    let submits = named("process submit");
    let failed = submits.iter().find(|s| s.status == 2).context("failed")?;
    assert!(
        failed.attr("error.type").is_some_and(|t| !t.is_empty()),
        "{failed:?}"
    );
    assert_eq!(failed.parent, request.span_id, "{failed:?}");
    let call = spans
        .iter()
        .find(|s| s.name == "POST goenhance generate" && s.parent == failed.span_id)
        .context("the failed submission's upstream call")?;
    assert_eq!(call.status, 2, "{call:?}");
    assert!(
        call.attr("http.response.status_code")
            .is_some_and(|c| c.starts_with('5')),
        "{call:?}"
    );
    assert!(call.attr("error.type").is_some(), "{call:?}");
    let retried = submits
        .iter()
        .find(|s| s.status != 2 && s.start_ns > failed.start_ns)
        .context("a successful retry after the failed submission")?;
    assert_eq!(retried.parent, request.span_id, "{retried:?}");
    assert!(
        attempt(retried) > attempt(failed),
        "the retry is a later attempt: {failed:?} {retried:?}"
    );
    assert!(
        spans.iter().any(|s| s.name == "POST goenhance generate"
            && s.parent == retried.span_id
            && s.status != 2),
        "the retry's upstream call succeeded"
    );

    // The download: under the transfer, the signed URL's scheme, host and path, no query.
    let download = named("GET result")[0];
    assert_eq!(
        parent_of(download).map(|p| p.name).as_deref(),
        Some("process transfer"),
        "{download:?}"
    );
    assert_eq!(download.kind, 3, "CLIENT: {download:?}");
    assert_eq!(download.attr("http.request.method"), Some("GET"));
    assert_eq!(download.attr("http.response.status_code"), Some("200"));
    assert_eq!(download.attr("server.address"), Some("127.0.0.1"));
    assert!(
        download
            .attr("url.scheme")
            .is_some_and(|s| s.starts_with("http"))
    );
    assert!(
        download
            .attr("url.path")
            .is_some_and(|p| p.starts_with('/') && p.len() > 1),
        "{download:?}"
    );
    assert_eq!(
        download.attr("http.response.body.size"),
        Some((64 * 1024).to_string().as_str()),
        "{download:?}"
    );
    // The webhook: under the notify, host and port only. The first delivery (answered 500)
    // is an ERROR span under an ERROR notify, then the retry delivers.
    let hooks = named("POST webhook");
    let refused = hooks[0];
    assert_eq!(refused.status, 2, "{refused:?}");
    assert_eq!(refused.attr("error.type"), Some("500"), "{refused:?}");
    assert_eq!(refused.attr("http.response.status_code"), Some("500"));
    let refused_notify = parent_of(refused).context("the refused webhook's parent")?;
    assert_eq!(refused_notify.name, "process notify");
    assert_eq!(refused_notify.status, 2, "{refused_notify:?}");
    assert!(
        refused_notify.attr("error.type").is_some(),
        "{refused_notify:?}"
    );
    let webhook = *hooks.last().context("a delivered webhook")?;
    assert_ne!(webhook.status, 2, "{webhook:?}");
    assert_eq!(
        parent_of(webhook).map(|p| p.name).as_deref(),
        Some("process notify"),
        "{webhook:?}"
    );
    assert_eq!(webhook.attr("http.response.status_code"), Some("200"));
    assert!(webhook.attr("url.path").is_none(), "{webhook:?}");
    // No query string, signature or secret in any attribute of any exported span.
    for span in receiver.spans() {
        for (key, value) in &span.attrs {
            assert!(
                !value.contains('?') && !value.contains(SECRET) && !value.contains(TOKEN),
                "{key} = {value} in {span:?}"
            );
        }
    }
    // A credit check is background work: a trace of its own, a root span with its call.
    let all = receiver.spans();
    let check = all
        .iter()
        .find(|s| {
            s.name == "check credits"
                && s.parent.is_empty()
                && all
                    .iter()
                    .any(|c| c.parent == s.span_id && c.name == "GET goenhance tokens")
        })
        .with_context(|| format!("a check credits root span: {all:#?}"))?;
    assert_ne!(check.trace_id, BATCH_TRACE_ID);
    assert_eq!(check.service, "vidq-worker");
    worker.terminate(Duration::from_secs(30)).await?;
    api.terminate().await?;
    env.cleanup().await?;
    Ok(())
}
