//! The processes of the end-to-end scenarios (s3s-fs, vidq-sim, vidq-worker), each on a free
//! port, killed when dropped; and what /proc says about a process.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::ctx::{Ctx, unique};

/// A TCP port nobody listens on right now.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_port(port: u16) -> anyhow::Result<()> {
    crate::wait::until(
        &format!("127.0.0.1:{port} to accept connections"),
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            Ok(tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ()))
        },
    )
    .await
}

/// An S3-compatible server of this run: s3s-fs on a folder, or moto's server (scenario (f)
/// compares the two).
pub(crate) struct S3 {
    child: Child,
    /// `s3s-fs` or `moto`.
    pub(crate) kind: &'static str,
    pub(crate) endpoint: String,
    pub(crate) access_key: String,
    pub(crate) secret_key: String,
    data: PathBuf,
}

impl S3 {
    pub(crate) async fn start(ctx: &Ctx) -> anyhow::Result<Self> {
        let port = free_port()?;
        let data = ctx.scratch.join(unique("s3"));
        std::fs::create_dir_all(&data)?;
        let access_key = unique("bench");
        let secret_key = format!("{:032x}", rand::random::<u128>());
        let program = which("s3s-fs").context(
            "s3s-fs is not installed: `cargo install s3s-fs@0.14.1 --features binary` \
             (scripts/bench does)",
        )?;
        let child = Command::new(program)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", &access_key, "--secret-key", &secret_key])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting s3s-fs")?;
        wait_port(port).await?;
        Ok(Self {
            child,
            kind: "s3s-fs",
            endpoint: format!("http://127.0.0.1:{port}"),
            access_key,
            secret_key,
            data,
        })
    }

    /// moto's S3 server (`scripts/install-moto` installs it), or `None` when it is not
    /// installed. Its buckets are made with CreateBucket (see scenario (f)).
    pub(crate) async fn start_moto(ctx: &Ctx) -> anyhow::Result<Option<Self>> {
        let cached = std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".cache/vidq/moto-5.1.18/bin/moto_server"));
        let Some(program) = cached
            .filter(|p| p.is_file())
            .or_else(|| which("moto_server"))
        else {
            return Ok(None);
        };
        let port = free_port()?;
        let data = ctx.scratch.join(unique("moto"));
        std::fs::create_dir_all(&data)?;
        let child = Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting moto_server")?;
        wait_port(port).await?;
        Ok(Some(Self {
            child,
            kind: "moto",
            endpoint: format!("http://127.0.0.1:{port}"),
            access_key: unique("bench"),
            secret_key: format!("{:032x}", rand::random::<u128>()),
            data,
        }))
    }

    /// The s3s-fs process id (for its CPU time).
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// A new bucket (s3s-fs keeps one folder per bucket).
    pub(crate) fn bucket(&self, base: &str) -> anyhow::Result<String> {
        let name = unique(base);
        std::fs::create_dir_all(self.data.join(&name))?;
        Ok(name)
    }
}

/// A running `vidq-sim`.
pub(crate) struct Sim {
    child: Child,
    drain: tokio::task::JoinHandle<()>,
    pub(crate) base_url: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.drain.abort();
    }
}

impl Sim {
    pub(crate) async fn start(ctx: &Ctx, args: &[&str]) -> anyhow::Result<Self> {
        let mut child = Command::new(ctx.bins.join("vidq-sim"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {}/vidq-sim (build it: cargo build --release --bins)",
                    ctx.bins.display()
                )
            })?;
        let stdout = child.stdout.take().context("vidq-sim stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("vidq-sim printed no address within 30 s")??
            .context("vidq-sim exited before printing its address")?;
        let base_url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .with_context(|| format!("unexpected first line from vidq-sim: {first:?}"))?
            .to_owned();
        // Keep draining stdout so the simulator never blocks on a full pipe.
        let drain = tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child,
            drain,
            base_url,
        })
    }

    /// The simulator's process id (for its CPU time).
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// `GET /_sim/stats`.
    pub(crate) async fn stats(&self) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}/_sim/stats", self.base_url);
        Ok(reqwest::get(&url).await?.error_for_status()?.json().await?)
    }
}

/// A running `vidq-worker`.
pub(crate) struct Worker {
    child: Child,
    log: PathBuf,
    pub(crate) pid: u32,
}

impl Worker {
    /// Starts a worker on `prefix` against `sim` and `s3`'s `bucket`; `overrides` win.
    pub(crate) fn start(
        ctx: &Ctx,
        prefix: &str,
        sim: &Sim,
        s3: &S3,
        bucket: &str,
        overrides: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let log = ctx.scratch.join(format!("{prefix}.worker.log"));
        let file = std::fs::File::create(&log)?;
        let mut cmd = Command::new(ctx.bins.join("vidq-worker"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("VIDQ__REDIS__URL", &ctx.redis_url)
            .env("VIDQ__REDIS__PREFIX", prefix)
            .env("VIDQ__GOENHANCE__BASE_URL", &sim.base_url)
            .env("VIDQ__GOENHANCE__API_KEY", "sim-key")
            .env("VIDQ__STORAGE__ENDPOINT", &s3.endpoint)
            .env("VIDQ__STORAGE__REGION", "us-east-1")
            .env("VIDQ__STORAGE__BUCKET", bucket)
            .env("VIDQ__STORAGE__ACCESS_KEY_ID", &s3.access_key)
            .env("VIDQ__STORAGE__SECRET_ACCESS_KEY", &s3.secret_key)
            .env("VIDQ__HTTP__LISTEN", "127.0.0.1:0")
            .env("VIDQ__LOG__FILTER", "warn");
        for (k, v) in overrides {
            cmd.env(k, v);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {}/vidq-worker (build it: cargo build --release --bins)",
                    ctx.bins.display()
                )
            })?;
        let pid = child.id().context("worker has no pid")?;
        Ok(Self { child, log, pid })
    }

    /// Fails with the end of the worker's log if it is no longer running.
    pub(crate) fn check_running(&mut self) -> anyhow::Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: String = log
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            anyhow::bail!("vidq-worker exited ({status}):\n{tail}");
        }
        Ok(())
    }
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`).
pub(crate) fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// CPU seconds (user + system) process `pid` used so far.
pub(crate) fn cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, i.e. 12 and 13 after the name.
    let ticks: f64 = fields
        .get(11..13)
        .context("short stat")?
        .iter()
        .filter_map(|v| v.parse::<f64>().ok())
        .sum();
    let hz = crate::machine::output("getconf", &["CLK_TCK"])
        .parse::<f64>()
        .unwrap_or(100.0);
    Ok(ticks / hz)
}

fn which(program: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}
