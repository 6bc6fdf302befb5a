//! The real binaries, started as child processes that are killed when dropped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The path of a workspace binary, next to the test executable (`target/<profile>/<name>`).
/// `cargo test --workspace` builds every binary before running tests.
pub fn bin_path(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("test executable has no target directory")?;
    let path = dir.join(name);
    anyhow::ensure!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` (scripts/test does)",
        path.display()
    );
    Ok(path)
}

/// A running `vidq-sim`.
pub struct Sim {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
}

impl Sim {
    /// Starts `vidq-sim` on a free port with `args` (its CLI flags).
    pub async fn start(args: &[&str]) -> anyhow::Result<Self> {
        let mut child = Command::new(bin_path("vidq-sim")?)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting vidq-sim")?;
        let stdout = child.stdout.take().context("vidq-sim stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("vidq-sim did not print its address within 30 s")??
            .context("vidq-sim exited before printing its address")?;
        let base_url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .with_context(|| format!("unexpected first line from vidq-sim: {first:?}"))?
            .to_owned();
        // Keep draining stdout so the simulator never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, base_url })
    }

    /// The simulator's counters.
    pub async fn stats(&self) -> anyhow::Result<vidq_sim::Stats> {
        let url = format!("{}/_sim/stats", self.base_url);
        Ok(reqwest::get(&url).await?.error_for_status()?.json().await?)
    }

    /// Changes the injected faults while it runs.
    pub async fn set_faults(&self, faults: &serde_json::Value) -> anyhow::Result<()> {
        let url = format!("{}/_sim/faults", self.base_url);
        reqwest::Client::new()
            .post(&url)
            .json(faults)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// Stops it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A running `vidq-worker`.
pub struct Worker {
    child: Child,
    env: BTreeMap<String, String>,
    log: PathBuf,
}

impl Worker {
    /// Starts a worker with exactly `env` as its `VIDQ__` settings; its log goes to a file in
    /// the target directory, named after `name`.
    pub async fn start(name: &str, env: BTreeMap<String, String>) -> anyhow::Result<Self> {
        let log = bin_path("vidq-worker")?
            .parent()
            .context("no target dir")?
            .join(format!("{name}.log"));
        // A fresh log per test run; restarts append to it.
        std::fs::write(&log, "").with_context(|| format!("creating {}", log.display()))?;
        let child = spawn_worker(&env, &log)?;
        Ok(Self { child, env, log })
    }

    /// The OS process id.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kills it with SIGKILL (no chance to clean up) and waits for it to be gone.
    pub async fn kill9(&mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    /// Sends SIGTERM and waits up to `timeout` for it to exit; returns its exit code.
    pub async fn terminate(&mut self, timeout: Duration) -> anyhow::Result<Option<i32>> {
        if let Some(pid) = self.child.id() {
            let status = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()?;
            anyhow::ensure!(status.success(), "kill -TERM {pid} failed");
        }
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .context("worker did not exit after SIGTERM")??;
        Ok(status.code())
    }

    /// Starts it again with the same settings (after a kill or a stop).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let _ = self.child.kill().await;
        self.child = spawn_worker(&self.env, &self.log)?;
        Ok(())
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its log so far (for assertion messages).
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn spawn_worker(env: &BTreeMap<String, String>, log: &PathBuf) -> anyhow::Result<Child> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let child = Command::new(bin_path("vidq-worker")?)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .stdout(Stdio::null())
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
        .context("starting vidq-worker")?;
    Ok(child)
}

/// Peak resident memory of process `pid` in KiB (`VmHWM`), while it runs.
pub fn rss_peak_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM line")?;
    let kib = line
        .split_whitespace()
        .nth(1)
        .context("malformed VmHWM line")?
        .parse()?;
    Ok(kib)
}
