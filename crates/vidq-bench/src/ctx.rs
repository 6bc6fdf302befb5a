//! What every scenario needs: the Redis under measurement, sizes, where binaries and peers are.

use std::path::PathBuf;

use anyhow::Context as _;
use redis::aio::MultiplexedConnection;

/// The run's settings, shared by every scenario.
pub(crate) struct Ctx {
    /// The Redis under measurement (a private one: figures are deltas of its counters).
    pub(crate) redis_url: String,
    /// Small sizes, to check the harness works.
    pub(crate) quick: bool,
    /// Folder of `vidq-sim` and `vidq-worker`.
    pub(crate) bins: PathBuf,
    /// Folder of the BullMQ peer.
    pub(crate) bullmq_dir: PathBuf,
    /// Scratch folder for this run (S3 data, process logs); removed at the end of the run.
    pub(crate) scratch: PathBuf,
}

impl Ctx {
    pub(crate) async fn new(
        redis_url: &str,
        quick: bool,
        bins: PathBuf,
        bullmq_dir: PathBuf,
    ) -> anyhow::Result<Self> {
        let scratch = std::env::temp_dir().join(unique("vidq-bench"));
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("creating {}", scratch.display()))?;
        let ctx = Self {
            redis_url: redis_url.to_owned(),
            quick,
            bins,
            bullmq_dir,
            scratch,
        };
        let mut conn = ctx.redis().await?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .with_context(|| format!("no Redis answers at {redis_url}"))?;
        Ok(ctx)
    }

    /// `quick` in quick mode, else `full`.
    pub(crate) fn size<N>(&self, quick: N, full: N) -> N {
        if self.quick { quick } else { full }
    }

    /// A fresh connection to the Redis under measurement.
    pub(crate) async fn redis(&self) -> anyhow::Result<MultiplexedConnection> {
        let client = redis::Client::open(self.redis_url.as_str())?;
        Ok(client.get_multiplexed_async_connection().await?)
    }

    /// Host and port of the Redis under measurement (for redis-benchmark).
    pub(crate) fn redis_host_port(&self) -> anyhow::Result<(String, u16)> {
        let rest = self
            .redis_url
            .split("://")
            .nth(1)
            .context("Redis URL has no scheme")?;
        let authority = rest.split('/').next().unwrap_or(rest);
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        match authority.rsplit_once(':') {
            Some((host, port)) => Ok((host.to_owned(), port.parse()?)),
            None => Ok((authority.to_owned(), 6379)),
        }
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// `<base>-<8 random hex>`: a name no other run uses.
pub(crate) fn unique(base: &str) -> String {
    format!("{base}-{:08x}", rand::random::<u32>())
}
