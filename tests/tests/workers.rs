//! The registry of live workers with real processes: two `vidq-worker`s beating every 300 ms
//! are listed by `GET /v1/workers` (admin only) and by `vidq workers` with their queues and
//! concurrency; the one killed with SIGKILL drops out once its heartbeat expired by Redis
//! time, the one stopped with SIGTERM is gone as soon as it exited.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;
use tokio::process::{Child, Command};
use vidq_tests::{
    Sim, TestEnv, Worker, bin_path, enqueue_jobs, free_port, wait_all_finished, wait_until,
};

const ADMIN: &str = "admin-token-0123456789";
const READER: &str = "reader-token-0123456789";
/// Heartbeat interval of the workers under test; they are listed for 3 intervals.
const INTERVAL: &str = "300ms";

/// A `vidq serve` with an admin and a read token; killed on drop.
struct Serve {
    _child: Child,
    log: PathBuf,
    base: String,
}

impl Serve {
    async fn start(env: &TestEnv) -> anyhow::Result<Self> {
        let bin = bin_path("vidq")?;
        let dir = bin.parent().context("no target dir")?.to_owned();
        let config = dir.join(format!("{}-serve.toml", env.prefix));
        std::fs::write(
            &config,
            format!(
                "[[api.tokens]]\nname = \"ops\"\ntoken = \"{ADMIN}\"\nscopes = [\"admin\"]\n\n\
                 [[api.tokens]]\nname = \"reader\"\ntoken = \"{READER}\"\nscopes = [\"read\", \"write\"]\n"
            ),
        )?;
        let log = dir.join("workers-api.log");
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
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .context("starting vidq serve")?;
        Ok(Self {
            _child: child,
            log,
            base: format!("http://{listen}"),
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// `GET /v1/workers` with `token`: the status and the JSON body.
async fn workers(http: &reqwest::Client, base: &str, token: Option<&str>) -> Option<(u16, Value)> {
    let mut request = http.get(format!("{base}/v1/workers"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.ok()?))
}

/// The listed workers' pids, sorted (empty while the API is not up).
async fn listed_pids(http: &reqwest::Client, base: &str) -> Vec<u64> {
    let Some((200, body)) = workers(http, base, Some(ADMIN)).await else {
        return Vec::new();
    };
    let mut pids: Vec<u64> = body["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w["pid"].as_u64())
        .collect();
    pids.sort_unstable();
    pids
}

/// Per listed worker, the tasks of `queue` it holds now, sorted.
async fn running(http: &reqwest::Client, base: &str, queue: &str) -> Vec<u64> {
    let Some((200, body)) = workers(http, base, Some(ADMIN)).await else {
        return Vec::new();
    };
    let mut held: Vec<u64> = body["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| {
            w["queues"]
                .as_array()?
                .iter()
                .find(|q| q["queue"] == queue)?["running"]
                .as_u64()
        })
        .collect();
    held.sort_unstable();
    held
}

async fn redis_time_ms(env: &TestEnv) -> anyhow::Result<u64> {
    let client = redis::Client::open(env.redis_url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await?;
    Ok(secs * 1000 + micros / 1000)
}

/// `vidq workers` against the test's prefix: its stdout.
async fn cli_workers(env: &TestEnv) -> anyhow::Result<String> {
    let out = Command::new(bin_path("vidq")?)
        .arg("workers")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("VIDQ__REDIS__URL", &env.redis_url)
        .env("VIDQ__REDIS__PREFIX", &env.prefix)
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "vidq workers failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_workers_are_listed_and_drop_out_when_killed_or_stopped() -> anyhow::Result<()> {
    let env = TestEnv::new("workers").await?;
    let sim = Sim::start(&[]).await?;
    let start = |name: &'static str, submit: &'static str| {
        Worker::start(
            name,
            env.worker_env(
                &sim.base_url,
                &[
                    ("VIDQ__HEARTBEAT__INTERVAL", INTERVAL),
                    ("VIDQ__QUEUES__SUBMIT__CONCURRENCY", submit),
                ],
            ),
        )
    };
    let mut killed = start("workers-killed", "3").await?;
    let mut stopped = start("workers-stopped", "5").await?;
    let api = Serve::start(&env).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let killed_pid = u64::from(killed.pid().context("no pid")?);
    let stopped_pid = u64::from(stopped.pid().context("no pid")?);
    let logs = |api: &Serve, a: &Worker, b: &Worker| {
        format!(
            "api:\n{}\nworker a:\n{}\nworker b:\n{}",
            api.log(),
            a.log(),
            b.log()
        )
    };

    let mut both = vec![killed_pid, stopped_pid];
    both.sort_unstable();
    wait_until(
        "both workers to be listed",
        Duration::from_secs(60),
        || async { Ok((listed_pids(&http, &api.base).await == both).then_some(())) },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", logs(&api, &killed, &stopped)))?;

    // Each with its own queues and concurrency, and Redis times that make sense.
    let (_, body) = workers(&http, &api.base, Some(ADMIN))
        .await
        .context("GET /v1/workers")?;
    let now = redis_time_ms(&env).await?;
    for w in body["workers"].as_array().context("workers array")? {
        let submit = if w["pid"] == killed_pid { 3 } else { 5 };
        let queues: Vec<(String, u64)> = w["queues"]
            .as_array()
            .context("queues")?
            .iter()
            .map(|q| {
                (
                    q["queue"].as_str().unwrap_or_default().to_owned(),
                    q["concurrency"].as_u64().unwrap_or_default(),
                )
            })
            .collect();
        let names: Vec<&str> = queues.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["submit", "poll", "transfer", "notify"], "{w}");
        assert_eq!(queues[0].1, submit, "{w}");
        assert_eq!(w["version"], env!("CARGO_PKG_VERSION"), "{w}");
        let started = w["started_at_ms"].as_u64().context("started_at_ms")?;
        let seen = w["last_seen_ms"].as_u64().context("last_seen_ms")?;
        let expires = w["expires_at_ms"].as_u64().context("expires_at_ms")?;
        assert!(started <= seen && seen <= now, "{w} at {now}");
        assert_eq!(expires - seen, 900, "3 × {INTERVAL}: {w}");
    }

    // Only an admin token may list them.
    let (status, _) = workers(&http, &api.base, Some(READER))
        .await
        .context("GET")?;
    assert_eq!(status, 403);
    let (status, _) = workers(&http, &api.base, None).await.context("GET")?;
    assert_eq!(status, 401);

    // The CLI lists both, with their submit concurrency.
    let table = cli_workers(&env).await?;
    for (pid, submit) in [(killed_pid, 3), (stopped_pid, 5)] {
        let line = table
            .lines()
            .find(|l| l.split('\t').nth(2) == Some(pid.to_string().as_str()))
            .with_context(|| format!("pid {pid} not in\n{table}"))?;
        assert!(line.contains(&format!("submit=0/{submit}")), "{line}");
        assert!(line.contains("poll=0/"), "{line}");
    }

    // A task in flight is counted where it runs: the upstream answers only after 4 s, so one
    // worker holds the job's submit task while the other holds none.
    sim.set_faults(&serde_json::json!({ "latency": { "secs": 4, "nanos": 0 } }))
        .await?;
    let jobs = enqueue_jobs(&env, 1).await?;
    wait_until(
        "a worker to list its submit task running",
        Duration::from_secs(30),
        || async { Ok((running(&http, &api.base, "submit").await == [0, 1]).then_some(())) },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", logs(&api, &killed, &stopped)))?;
    sim.set_faults(&serde_json::json!({})).await?;
    wait_all_finished(&env, &jobs, Duration::from_secs(60)).await?;

    // The document lists the route.
    let doc: Value = http
        .get(format!("{}/openapi.json", api.base))
        .send()
        .await?
        .json()
        .await?;
    assert!(doc["paths"]["/v1/workers"]["get"].is_object());

    // SIGKILL: it stops beating and drops out once its last expiry passed by Redis time.
    let last_expiry = |body: &Value| {
        body["workers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|w| w["pid"] == killed_pid)
            .and_then(|w| w["expires_at_ms"].as_u64())
    };
    killed.kill9().await?;
    let (_, body) = workers(&http, &api.base, Some(ADMIN))
        .await
        .context("GET")?;
    let expiry = last_expiry(&body).context("the killed worker is listed until it expires")?;
    wait_until(
        "the killed worker to drop out",
        Duration::from_secs(30),
        || async { Ok((listed_pids(&http, &api.base).await == [stopped_pid]).then_some(())) },
    )
    .await?;
    assert!(
        redis_time_ms(&env).await? >= expiry,
        "dropped out by its expiry"
    );

    // SIGTERM: gone as soon as the process exited, no TTL to wait for.
    let code = stopped.terminate(Duration::from_secs(30)).await?;
    assert_eq!(code, Some(0), "{}", stopped.log());
    assert_eq!(listed_pids(&http, &api.base).await, Vec::<u64>::new());
    assert!(cli_workers(&env).await?.lines().nth(1).is_none());
    let registry = [
        format!("{}:{{workers}}", env.prefix),
        format!("{}:{{workers}}:info", env.prefix),
    ];
    let keys = env.redis_keys().await?;
    assert!(!keys.iter().any(|k| registry.contains(k)), "{keys:?}");

    sim.stop().await;
    env.cleanup().await?;
    Ok(())
}
