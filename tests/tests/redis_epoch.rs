//! A Redis that lost its data is noticed: a private redis-server under a running `vidq-worker`
//! and `vidq serve` is shut down without saving and started again empty on the same port. Each
//! process logs it once, counts it in `/metrics`, answers 503 on `/readyz` saying why for
//! `redis.epoch_unready_for`, then is ready again; neither exits.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::process::{Child, Command};
use vidq_tests::{
    Persistence, PrivateRedis, Sim, TestEnv, Worker, bin_path, free_port, wait_until,
};

const LOST: &str = "redis lost its data";
const UNREADY_FOR: &str = "5s";

/// A running `vidq serve`, its log in the target directory; killed on drop.
struct Serve {
    child: Child,
    log: PathBuf,
    base: String,
}

impl Serve {
    async fn start(name: &str, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let bin = bin_path("vidq")?;
        let log = bin
            .parent()
            .context("no target dir")?
            .join(format!("{name}.log"));
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let listen = format!("127.0.0.1:{}", free_port()?);
        let child = Command::new(bin)
            .args(["serve", "--listen", &listen])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().copied())
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

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then its exit code.
    async fn terminate(&mut self) -> anyhow::Result<Option<i32>> {
        if let Some(pid) = self.child.id() {
            let status = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()?;
            anyhow::ensure!(status.success(), "kill -TERM {pid} failed");
        }
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .context("vidq serve did not exit after SIGTERM")??;
        Ok(status.code())
    }
}

/// `GET base/path`: status and body; `None` when nothing answers.
async fn get(http: &reqwest::Client, base: &str, path: &str) -> Option<(u16, String)> {
    let response = http.get(format!("{base}{path}")).send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

async fn wait_status(
    http: &reqwest::Client,
    what: &str,
    base: &str,
    want: impl Fn(u16, &str) -> bool,
) -> anyhow::Result<String> {
    wait_until(what, Duration::from_secs(60), || async {
        Ok(get(http, base, "/readyz")
            .await
            .filter(|(status, body)| want(*status, body))
            .map(|(_, body)| body))
    })
    .await
}

fn lost_lines(log: &str) -> usize {
    log.lines().filter(|line| line.contains(LOST)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restarted_empty_is_noticed_by_the_worker_and_the_api() -> anyhow::Result<()> {
    let mut redis = PrivateRedis::start(Persistence::None).await?;
    let url = redis.url();
    let env = TestEnv::new("epoch").await?;
    let sim = Sim::start(&[]).await?;
    let worker_listen = format!("127.0.0.1:{}", free_port()?);
    let mut worker = Worker::start(
        "epoch-w",
        env.worker_env(
            &sim.base_url,
            &[
                ("VIDQ__REDIS__URL", &url),
                ("VIDQ__REDIS__EPOCH_UNREADY_FOR", UNREADY_FOR),
                ("VIDQ__HTTP__LISTEN", &worker_listen),
            ],
        ),
    )
    .await?;
    let worker_base = format!("http://{worker_listen}");
    let mut api = Serve::start(
        "epoch-api",
        &[
            ("VIDQ__REDIS__URL", &url),
            ("VIDQ__REDIS__PREFIX", &env.prefix),
            ("VIDQ__REDIS__EPOCH_UNREADY_FOR", UNREADY_FOR),
            ("VIDQ__LOG__FILTER", "info"),
        ],
    )
    .await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let ready = |status: u16, _: &str| status == 200;
    let logs = |worker: &Worker, api: &Serve| {
        format!("worker log:\n{}\napi log:\n{}", worker.log(), api.log())
    };

    // Both ready, and both have read the marker once (else they would only record the new one).
    let up = async {
        wait_status(&http, "the worker to be ready", &worker_base, ready).await?;
        wait_status(&http, "the API to be ready", &api.base, ready).await?;
        wait_until(
            "both to record the epoch marker",
            Duration::from_secs(30),
            || async {
                let recorded = |log: String| log.contains("redis epoch marker recorded");
                Ok((recorded(worker.log()) && recorded(api.log())).then_some(()))
            },
        )
        .await
    };
    up.await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", logs(&worker, &api)))?;
    for base in [&worker_base, &api.base] {
        let (_, text) = get(&http, base, "/metrics").await.context("metrics")?;
        assert!(
            text.contains("vidq_redis_epoch_changes_total 0"),
            "{base}: {text}"
        );
    }

    redis.restart_empty().await?;

    // Each says why it is not ready, within its own window (watched at once, so neither is missed).
    let (worker_said, api_said) = tokio::join!(
        wait_status(
            &http,
            "the worker's /readyz to say redis lost its data",
            &worker_base,
            |status, body| status == 503 && body.contains(LOST),
        ),
        wait_status(
            &http,
            "the API's /readyz to say redis lost its data",
            &api.base,
            |status, body| status == 503 && body.contains(LOST),
        ),
    );
    let worker_said = worker_said.map_err(|e| anyhow::anyhow!("{e}\n{}", logs(&worker, &api)))?;
    let api_said = api_said.map_err(|e| anyhow::anyhow!("{e}\n{}", logs(&worker, &api)))?;
    assert!(
        worker_said.starts_with("redis lost its data (epoch marker ")
            && worker_said.ends_with(" s ago\n"),
        "{worker_said:?}"
    );
    let body: serde_json::Value = serde_json::from_str(&api_said)?;
    assert_eq!(body["error"]["code"], "unavailable", "{api_said}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("redis lost its data (epoch marker "),
        "{api_said}"
    );

    // Ready again once `epoch_unready_for` has passed.
    wait_status(&http, "the worker to be ready again", &worker_base, ready).await?;
    wait_status(&http, "the API to be ready again", &api.base, ready).await?;

    for base in [&worker_base, &api.base] {
        let (_, text) = get(&http, base, "/metrics").await.context("metrics")?;
        assert!(
            text.contains("vidq_redis_epoch_changes_total 1"),
            "{base}: {text}"
        );
    }
    assert_eq!(lost_lines(&worker.log()), 1, "{}", worker.log());
    assert_eq!(lost_lines(&api.log()), 1, "{}", api.log());
    assert!(worker.is_running(), "{}", worker.log());
    assert!(api.is_running(), "{}", api.log());

    assert_eq!(api.terminate().await?, Some(0), "{}", api.log());
    assert_eq!(
        worker.terminate(Duration::from_secs(30)).await?,
        Some(0),
        "{}",
        worker.log()
    );
    sim.stop().await;
    env.cleanup().await?;
    Ok(())
}
