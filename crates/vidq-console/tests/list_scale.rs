//! How the console's jobs list pages at a million records (run by hand: it fills a private
//! redis-server it starts, about 1 GB, and takes a few minutes):
//! `cargo test -p vidq-console --test list_scale -- --ignored --nocapture`
//! (`VIDQ_CONSOLE_SCALE_JOBS` sets how many jobs, 1,000,000 by default).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use tokio::sync::oneshot;
use vidq_core::{CreateQuota, JobRecord, JobState, TransformRequest};
use vidq_producer::{Api, ApiToken, Producer, ProducerSettings, Scope};

const TOKEN: &str = "console-scale-token-0123456789";

struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn private_redis() -> (Redis, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server on PATH");
    let url = format!("redis://127.0.0.1:{port}");
    let client = redis::Client::open(url.as_str()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut conn) = client.get_multiplexed_async_connection().await
            && redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .is_ok()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the private redis-server did not answer"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (Redis(child), url)
}

async fn timed(http: &reqwest::Client, url: &str, cookie: &str) -> (Duration, String) {
    let start = Instant::now();
    let response = http.get(url).header("cookie", cookie).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    let html = response.text().await.unwrap();
    (start.elapsed(), html)
}

fn next_cursor(html: &str) -> String {
    let at = html
        .find(r#"id="next" href="/console/jobs?cursor="#)
        .expect("a next page")
        + 37;
    let end = html[at..].find(['&', '"']).unwrap() + at;
    html[at..end].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fills a private Redis with a million jobs; run by hand"]
async fn pages_stay_fast_at_a_million_jobs() {
    let n: usize = std::env::var("VIDQ_CONSOLE_SCALE_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let (_redis, url) = private_redis().await;
    let mut settings = ProducerSettings::default();
    settings.redis.url = url;
    settings.redis.prefix = "vidq-scale".into();
    settings.api.tokens = vec![ApiToken {
        name: "tenant-a".into(),
        token: SecretString::from(TOKEN.to_owned()),
        sha256: None,
        scopes: vec![Scope::Read],
    }];
    let producer = Producer::connect(&settings).await.unwrap();
    let store = producer.store().clone();

    let fill = Instant::now();
    let request = TransformRequest::new("https://videos.example.com/scale.mp4", 2000).unwrap();
    let base = vidq_core::unix_ms_now() - n as u64;
    let batch = 1_000;
    for start in (0..n).step_by(batch) {
        let records: Vec<JobRecord> = (start..(start + batch).min(n))
            .map(|i| {
                let mut job = JobRecord::new(request.clone(), Duration::from_secs(3600));
                job.owner = Some("tenant-a".into());
                job.created_at = base + i as u64;
                // One job in 100 failed, the others succeeded (terminal: no active index).
                job.state = if i % 100 == 0 {
                    JobState::Failed
                } else {
                    JobState::Succeeded
                };
                job
            })
            .collect();
        for outcome in store
            .create_within(&records, &CreateQuota::default())
            .await
            .unwrap()
        {
            outcome.unwrap();
        }
    }
    println!("filled {n} jobs in {:.1} s", fill.elapsed().as_secs_f64());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        Api::new(producer, &settings.api, None).serve(listener, async move {
            let _ = stopped.await;
        }),
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = http
        .post(format!("{base_url}/console/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}"))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();

    let jobs = format!("{base_url}/console/jobs");
    let (first, html) = timed(&http, &jobs, &cookie).await;
    let mut cursor = next_cursor(&html);
    let mut later = Duration::ZERO;
    for _ in 0..20 {
        let (took, html) = timed(&http, &format!("{jobs}?cursor={cursor}"), &cookie).await;
        later = later.max(took);
        cursor = next_cursor(&html);
    }
    // The middle of the list, by creation time: the index is read from there.
    let middle = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_millis(base + n as u64 / 2),
    );
    let (until, html) = timed(&http, &format!("{jobs}?until={middle}"), &cookie).await;
    assert!(
        html.matches("<tr data-job=").count() == 50,
        "a full page at the middle"
    );
    let (failed, _) = timed(&http, &format!("{jobs}?state=failed"), &cookie).await;
    let (overview, _) = timed(&http, &format!("{base_url}/console"), &cookie).await;
    println!(
        "{n} jobs: first page {:.1} ms, slowest of the next 20 pages {:.1} ms, until= the middle {:.1} ms, state=failed {:.1} ms, overview {:.1} ms",
        first.as_secs_f64() * 1e3,
        later.as_secs_f64() * 1e3,
        until.as_secs_f64() * 1e3,
        failed.as_secs_f64() * 1e3,
        overview.as_secs_f64() * 1e3,
    );
    for (what, took) in [
        ("first", first),
        ("later", later),
        ("until", until),
        ("failed", failed),
    ] {
        assert!(took < Duration::from_secs(2), "{what} page took {took:?}");
    }
    let _ = stop.send(());
}
