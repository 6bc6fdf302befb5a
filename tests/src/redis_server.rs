//! A redis-server of one test, on a free loopback port in its own folder: for incidents that
//! kill, restart or empty Redis (never the shared one). Killed and its folder removed on drop.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::process::{Child, Command};

use crate::{unique, wait_until};

/// What the server keeps on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing: a restart starts empty.
    None,
    /// `appendonly yes`, `appendfsync always`: every acknowledged write survives a SIGKILL.
    AppendOnlyAlways,
}

/// A private redis-server.
pub struct PrivateRedis {
    child: Child,
    port: u16,
    dir: PathBuf,
    persistence: Persistence,
}

impl PrivateRedis {
    /// Starts one on a free port and waits until it answers PING.
    pub async fn start(persistence: Persistence) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(unique("vidq-test-redis"));
        std::fs::create_dir_all(&dir)?;
        let mut last_error = None;
        // A free port can be taken between the probe and the bind: try a few.
        for _ in 0..3 {
            let port = free_port()?;
            let mut child = spawn(port, &dir, persistence)?;
            match wait_listening(&mut child, port, "the private redis to listen").await {
                Ok(()) => {
                    let redis = Self {
                        child,
                        port,
                        dir,
                        persistence,
                    };
                    redis.wait_ready().await?;
                    return Ok(redis);
                }
                Err(err) => last_error = Some(err),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("redis-server did not start")))
    }

    /// `redis://127.0.0.1:<port>`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, and waits until it is gone.
    pub async fn kill9(&mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("killing redis-server")
    }

    /// Starts it again on the same port and files (after [`PrivateRedis::kill9`]), and waits
    /// until it has loaded them.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let _ = self.child.kill().await;
        self.respawn().await
    }

    /// `SHUTDOWN NOSAVE`, then the same port again: with [`Persistence::None`], empty.
    pub async fn restart_empty(&mut self) -> anyhow::Result<()> {
        let client = redis::Client::open(self.url())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        // The server closes the connection instead of answering.
        let _ = redis::cmd("SHUTDOWN")
            .arg("NOSAVE")
            .query_async::<()>(&mut conn)
            .await;
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .context("redis-server did not exit after SHUTDOWN NOSAVE")??;
        self.respawn().await
    }

    async fn respawn(&mut self) -> anyhow::Result<()> {
        self.child = spawn(self.port, &self.dir, self.persistence)?;
        wait_listening(&mut self.child, self.port, "the restarted redis to listen").await?;
        self.wait_ready().await
    }

    /// Until it answers PING (not LOADING).
    async fn wait_ready(&self) -> anyhow::Result<()> {
        let client = redis::Client::open(self.url())?;
        wait_until(
            "the private redis to answer PING",
            Duration::from_secs(30),
            || async {
                let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
                    return Ok(None);
                };
                Ok(redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .ok()
                    .map(|_| ()))
            },
        )
        .await
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn spawn(port: u16, dir: &Path, persistence: Persistence) -> anyhow::Result<Child> {
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
    ]);
    match persistence {
        Persistence::None => cmd.args(["--appendonly", "no"]),
        Persistence::AppendOnlyAlways => {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"])
        }
    };
    cmd.args(["--maxmemory-policy", "noeviction"])
        .arg("--dir")
        .arg(dir)
        .args(["--logfile", "redis.log"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting redis-server (scripts/test installs it)")
}

/// Waits until `child` accepts TCP connections on `port`; an error if it exits first.
pub(crate) async fn wait_listening(child: &mut Child, port: u16, what: &str) -> anyhow::Result<()> {
    wait_until(what, Duration::from_secs(30), || {
        let exited = child.try_wait().ok().flatten();
        async move {
            if let Some(status) = exited {
                anyhow::bail!("exited with {status} before listening on {port}");
            }
            Ok(tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ()))
        }
    })
    .await
}
