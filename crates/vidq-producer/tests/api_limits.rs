//! The API's own bounds, against a real Redis: the per-token rate limit held in Redis (two
//! replicas admit one token's rate together), the request timeout and the concurrency limit
//! (503 JSON; the event stream is not cut), bounded metric labels, and unknown settings keys
//! refused at start.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{RW_TOKEN, body, error_of, spawn_with};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use vidq_core::{JobState, Patch};

/// GETs `/v1/jobs` on `app` and says whether it was admitted (200) or rate limited (429,
/// which must carry `Retry-After`).
async fn admitted(app: &support::TestApp) -> bool {
    let response = app.get("/v1/jobs", RW_TOKEN).await;
    match response.status().as_u16() {
        200 => true,
        429 => {
            assert!(response.headers().contains_key("retry-after"));
            false
        }
        other => panic!("unexpected status {other}"),
    }
}

#[tokio::test]
async fn two_replicas_admit_one_tokens_rate_together() {
    let mut s = support::settings();
    s.api.rate_per_second = 4.0;
    s.api.rate_burst = 3;
    // Two API servers, each on its own port, sharing one Redis and one prefix.
    let one = spawn_with(s.clone(), None).await;
    let two = spawn_with(s, None).await;
    let started = Instant::now();
    let mut count = 0u32;
    let mut requests = 0u32;
    // Back to back, alternating replicas, for 2 s.
    while started.elapsed() < Duration::from_secs(2) {
        let app = if requests.is_multiple_of(2) {
            &one
        } else {
            &two
        };
        requests += 1;
        if admitted(app).await {
            count += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // One token's setting: the burst, then 4 per second. Each replica on its own would have
    // admitted that much by itself.
    let most = 3.0 + 4.0 * elapsed + 1.0;
    assert!(
        f64::from(count) <= most,
        "{count} admitted in {elapsed:.2}s (of {requests}), more than one token's {most:.1}"
    );
    assert!(
        f64::from(count) >= 3.0 + 4.0 * elapsed * 0.5,
        "{count} admitted in {elapsed:.2}s"
    );
    assert!(requests > count, "some requests were refused");
}

/// Sends a POST whose body never arrives (the declared length is never reached): its handler
/// waits on the body. Returns the open connection.
async fn stalled_post(app: &support::TestApp) -> tokio::net::TcpStream {
    let addr = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {RW_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"model\""
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// Reads a whole HTTP/1.1 response from `stream` (the server closes it or sends it whole).
async fn read_response(stream: &mut tokio::net::TcpStream) -> String {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let read = tokio::time::timeout_at(deadline.into(), stream.read(&mut chunk))
            .await
            .expect("a response in time")
            .unwrap();
        buffer.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&buffer).to_string();
        if read == 0 || (text.contains("\r\n\r\n") && text.trim_end().ends_with('}')) {
            return text;
        }
    }
}

#[tokio::test]
async fn a_request_past_the_timeout_is_503_json_and_event_streams_go_on() {
    let mut s = support::settings();
    s.api.limits.request_timeout = Duration::from_millis(300);
    let app = spawn_with(s, None).await;
    let created: Value = app.post_job(RW_TOKEN, &body(1)).await.json().await.unwrap();
    let id: vidq_core::JobId = created["id"].as_str().unwrap().parse().unwrap();
    let mut events = app.get(&format!("/v1/jobs/{id}/events"), RW_TOKEN).await;
    assert_eq!(events.status(), 200);
    let first = events.chunk().await.unwrap().expect("the current state");
    assert!(String::from_utf8_lossy(&first).contains("queued"));

    let started = Instant::now();
    let mut stalled = stalled_post(&app).await;
    let response = read_response(&mut stalled).await;
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.contains("\"code\":\"timeout\""), "{response}");
    assert!(started.elapsed() >= Duration::from_millis(300));

    // The event stream outlived the timeout: it still delivers the job's end.
    app.store
        .transition(&id, &[JobState::Queued], JobState::Canceled, Patch::new())
        .await
        .unwrap();
    let mut rest = String::new();
    while let Some(chunk) = events.chunk().await.unwrap() {
        rest.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(rest.contains("canceled"), "{rest}");
}

#[tokio::test]
async fn one_request_more_than_max_concurrent_is_shed_with_503_json() {
    let mut s = support::settings();
    s.api.limits.max_concurrent = 1;
    let app = spawn_with(s, None).await;
    let stalled = stalled_post(&app).await;
    // The stalled request holds the only permit once its head is read: wait for the shedding.
    let deadline = Instant::now() + Duration::from_secs(10);
    let shed = loop {
        let response = app.get("/v1/jobs", RW_TOKEN).await;
        if response.status() == 503 {
            break response;
        }
        assert!(Instant::now() < deadline, "never shed");
    };
    assert_eq!(shed.headers()["retry-after"], "1");
    let (status, code, _) = error_of(shed).await;
    assert_eq!((status, code.as_str()), (503, "overloaded"));
    // Its connection closed, the stalled request gives its permit back.
    drop(stalled);
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.get("/v1/jobs", RW_TOKEN).await.status() != 200 {
        assert!(Instant::now() < deadline, "the permit never came back");
    }
}

#[tokio::test]
async fn unknown_methods_share_one_metrics_label() {
    let app = spawn_with(support::settings(), None).await;
    for method in ["BREW", "FROBNICATE", "X-ANYTHING"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = app
            .http
            .request(method, app.url("/v1/jobs"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405);
    }
    let metrics = app.metrics().await;
    assert!(metrics.contains(r#"method="other""#), "{metrics}");
    for unknown in ["BREW", "FROBNICATE", "X-ANYTHING"] {
        assert!(!metrics.contains(unknown), "{metrics}");
    }
}

#[test]
fn a_misspelled_setting_stops_vidq_serve_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for (text, named) in [
        ("[api]\nrate_per_secnd = 3.0\n", "rate_per_secnd"),
        ("[redis]\nurll = \"redis://x\"\n", "urll"),
        ("[api.quotas]\nunfinishd = 3\n", "unfinishd"),
        ("[api.limits]\nrequest_timeot = \"1s\"\n", "request_timeot"),
        ("[jbos]\ndeadline = \"1m\"\n", "jbos"),
    ] {
        let path = dir.path().join("vidq.toml");
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vidq"))
            .arg("--config")
            .arg(&path)
            .arg("serve")
            // Were the settings accepted, serving would fail at once rather than hang here.
            .env("VIDQ__API__LISTEN", "256.0.0.1:1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}: {stderr}");
        assert!(stderr.contains(named), "{text}: {stderr}");
    }
    // An unknown key in the environment too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vidq"))
        .arg("serve")
        .env("VIDQ__API__LISTEN", "256.0.0.1:1")
        .env("VIDQ__API__BODY_LIMT", "2048")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("body_limt"), "{stderr}");
}

/// A private `redis-server` on a free port, killed when dropped.
struct PrivateRedis {
    child: std::process::Child,
    url: String,
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn private_redis() -> PrivateRedis {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server on the PATH");
    let url = format!("redis://127.0.0.1:{port}");
    let client = redis::Client::open(url.as_str()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut conn) = client.get_multiplexed_async_connection().await
            && redis::cmd("PING")
                .query_async::<()>(&mut conn)
                .await
                .is_ok()
        {
            break;
        }
        assert!(Instant::now() < deadline, "redis-server did not start");
        tokio::task::yield_now().await;
    }
    PrivateRedis { child, url }
}

#[tokio::test]
async fn without_redis_each_replica_limits_the_rate_in_its_own_memory() {
    let redis = private_redis().await;
    let mut s = support::settings();
    s.redis.url = redis.url.clone();
    s.api.rate_per_second = 0.1;
    s.api.rate_burst = 2;
    // Requests that need Redis give up quickly (503) rather than wait for it.
    s.api.limits.request_timeout = Duration::from_secs(3);
    let app = spawn_with(s, None).await;
    assert_eq!(app.get("/v1/jobs", RW_TOKEN).await.status(), 200);
    drop(redis);
    // Redis gone: the burst is counted in memory (requests that need Redis fail on their own),
    // and the token is still limited.
    let statuses: Vec<u16> = {
        let mut statuses = Vec::new();
        for _ in 0..3 {
            statuses.push(app.get("/v1/jobs", RW_TOKEN).await.status().as_u16());
        }
        statuses
    };
    assert_eq!(statuses, [503, 503, 429], "{statuses:?}");
}
