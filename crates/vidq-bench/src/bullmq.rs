//! The BullMQ peer: `node bench/peers/bullmq/bench.mjs <scenario> ...`, one JSON line back.

use anyhow::Context as _;
use serde_json::Value;

use crate::ctx::Ctx;

/// BullMQ's figures for one scenario, as the peer script printed them.
pub(crate) struct Peer(Value);

impl Peer {
    /// A number from the peer's reply, 0 if absent.
    pub(crate) fn num(&self, key: &str) -> f64 {
        self.0[key].as_f64().unwrap_or(0.0)
    }

    /// BullMQ's version.
    pub(crate) fn version(&self) -> String {
        self.0["bullmq"].as_str().unwrap_or("?").to_owned()
    }

    pub(crate) fn flag(&self, key: &str) -> bool {
        self.0[key].as_bool().unwrap_or(false)
    }
}

/// Runs the peer's `scenario` with `args` (`--n`, `--concurrency`, ...) on the measured Redis.
pub(crate) async fn run(
    ctx: &Ctx,
    scenario: &str,
    args: &[(&str, String)],
) -> anyhow::Result<Peer> {
    let script = ctx.bullmq_dir.join("bench.mjs");
    anyhow::ensure!(
        ctx.bullmq_dir.join("node_modules/bullmq").exists(),
        "BullMQ is not installed in {}: run `npm ci` there (scripts/bench does)",
        ctx.bullmq_dir.display()
    );
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(&script)
        .arg(scenario)
        .args(["--redis", ctx.redis_url.as_str()]);
    for (k, v) in args {
        cmd.arg(format!("--{k}")).arg(v);
    }
    let out = cmd
        .kill_on_drop(true)
        .output()
        .await
        .context("running node (is Node.js installed?)")?;
    anyhow::ensure!(
        out.status.success(),
        "BullMQ peer {scenario} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("BullMQ peer printed no JSON")?;
    Ok(Peer(serde_json::from_str(line)?))
}
