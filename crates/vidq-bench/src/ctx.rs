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
    /// Seed nodes of a Redis Cluster that scenario (a) drains its queue on instead (nothing
    /// else may use it: its figures are deltas of the counters of the queue's primary).
    pub(crate) cluster: Option<Vec<String>>,
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
            cluster: None,
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

    /// The settings a queue of scenario (a) connects with: the cluster's when one was given,
    /// else the Redis under measurement.
    pub(crate) fn queue_settings(&self) -> vidq_redis::RedisSettings {
        match &self.cluster {
            Some(urls) => vidq_redis::RedisSettings::cluster(urls.iter().cloned()),
            None => vidq_redis::RedisSettings::standalone(self.redis_url.as_str()),
        }
    }

    /// A connection to the node holding `queue`'s keys, whose counters measure it: the
    /// cluster's primary of the queue's slot (from `CLUSTER SLOTS` on the first seed), else
    /// the Redis under measurement.
    pub(crate) async fn redis_for_queue(
        &self,
        prefix: &str,
        queue: &str,
    ) -> anyhow::Result<MultiplexedConnection> {
        let Some(urls) = &self.cluster else {
            return self.redis().await;
        };
        let seed = urls.first().context("--redis-cluster lists no node")?;
        let mut conn = redis::Client::open(seed.as_str())?
            .get_multiplexed_async_connection()
            .await
            .with_context(|| format!("no cluster node answers at {seed}"))?;
        let slot = vidq_redis::slot(format!("{prefix}:{{{queue}}}:due").as_bytes());
        let ranges: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut conn)
            .await?;
        for range in ranges {
            let redis::Value::Array(fields) = range else {
                continue;
            };
            let (Some(start), Some(end), Some(redis::Value::Array(primary))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                continue;
            };
            let (start, end): (u16, u16) = (
                redis::from_redis_value(start.clone())?,
                redis::from_redis_value(end.clone())?,
            );
            if !(start..=end).contains(&slot) {
                continue;
            }
            let host: String = redis::from_redis_value(primary[0].clone())?;
            let port: u16 = redis::from_redis_value(primary[1].clone())?;
            let url = format!("redis://{host}:{port}");
            return Ok(redis::Client::open(url.as_str())?
                .get_multiplexed_async_connection()
                .await?);
        }
        anyhow::bail!("no node of the cluster serves slot {slot}")
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
