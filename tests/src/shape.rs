//! Which Redis shape a test runs vidq on: one server, a Redis Cluster or a primary behind
//! Sentinel. The shape gives the `[redis]` settings of the binaries (`VIDQ__REDIS__...`) and
//! the test's own reads: the primaries to scan for the test's keys, and the node holding a key.

use std::collections::BTreeSet;

use anyhow::Context as _;

use crate::redis_rigs::{parse_cluster_nodes, query};
use crate::rigs::{ClusterRig, SentinelRig};

/// Where the Redis of a test is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisShape {
    /// One server.
    Standalone(String),
    /// A Redis Cluster, by seed nodes.
    Cluster(Vec<String>),
    /// A primary with replicas behind these sentinels.
    Sentinel {
        /// The sentinels' URLs.
        sentinels: Vec<String>,
        /// The monitored primary's name.
        master_name: String,
    },
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl RedisShape {
    /// The shared server of `scripts/test` (`VIDQ_TEST_REDIS_URL`).
    #[must_use]
    pub fn standalone_from_env() -> Self {
        Self::Standalone(crate::redis_url())
    }

    /// The shared cluster of `scripts/test` (`VIDQ_TEST_REDIS_CLUSTER_URLS`); the error says
    /// how to get one.
    pub fn cluster_from_env() -> anyhow::Result<Self> {
        let urls = std::env::var("VIDQ_TEST_REDIS_CLUSTER_URLS").map(|v| split_list(&v));
        match urls {
            Ok(urls) if !urls.is_empty() => Ok(Self::Cluster(urls)),
            _ => anyhow::bail!(
                "VIDQ_TEST_REDIS_CLUSTER_URLS is not set: run the tests with scripts/test, which \
                 starts a Redis Cluster (services_start_redis_cluster in scripts/services.sh)"
            ),
        }
    }

    /// The shared Sentinel set of `scripts/test` (`VIDQ_TEST_REDIS_SENTINELS`,
    /// `VIDQ_TEST_REDIS_SENTINEL_MASTER`); the error says how to get one.
    pub fn sentinel_from_env() -> anyhow::Result<Self> {
        let sentinels = std::env::var("VIDQ_TEST_REDIS_SENTINELS").map(|v| split_list(&v));
        let master = std::env::var("VIDQ_TEST_REDIS_SENTINEL_MASTER");
        match (sentinels, master) {
            (Ok(sentinels), Ok(master_name))
                if !sentinels.is_empty() && !master_name.is_empty() =>
            {
                Ok(Self::Sentinel {
                    sentinels,
                    master_name,
                })
            }
            _ => anyhow::bail!(
                "VIDQ_TEST_REDIS_SENTINELS / VIDQ_TEST_REDIS_SENTINEL_MASTER are not set: run the \
                 tests with scripts/test, which starts a Sentinel set \
                 (services_start_redis_sentinel in scripts/services.sh)"
            ),
        }
    }

    /// A private cluster rig.
    #[must_use]
    pub fn of_cluster(rig: &ClusterRig) -> Self {
        Self::Cluster(rig.urls())
    }

    /// A private Sentinel rig.
    #[must_use]
    pub fn of_sentinel(rig: &SentinelRig) -> Self {
        Self::Sentinel {
            sentinels: rig.sentinel_urls(),
            master_name: rig.master_name().to_owned(),
        }
    }

    /// `standalone`, `cluster` or `sentinel`.
    #[must_use]
    pub fn mode(&self) -> &'static str {
        match self {
            Self::Standalone(_) => "standalone",
            Self::Cluster(_) => "cluster",
            Self::Sentinel { .. } => "sentinel",
        }
    }

    /// The `VIDQ__REDIS__...` settings of a binary on this shape (standalone: only
    /// `VIDQ__REDIS__URL`, as before `redis.mode` existed).
    #[must_use]
    pub fn settings_env(&self) -> Vec<(String, String)> {
        let pairs: Vec<(&str, String)> = match self {
            Self::Standalone(url) => vec![("VIDQ__REDIS__URL", url.clone())],
            Self::Cluster(urls) => vec![
                ("VIDQ__REDIS__MODE", "cluster".to_owned()),
                ("VIDQ__REDIS__URLS", urls.join(",")),
            ],
            Self::Sentinel {
                sentinels,
                master_name,
            } => vec![
                ("VIDQ__REDIS__MODE", "sentinel".to_owned()),
                ("VIDQ__REDIS__SENTINELS", sentinels.join(",")),
                ("VIDQ__REDIS__MASTER_NAME", master_name.clone()),
            ],
        };
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// A URL for a first look: the server, the first seed, or the first sentinel.
    #[must_use]
    pub fn first_url(&self) -> String {
        match self {
            Self::Standalone(url) => url.clone(),
            Self::Cluster(urls) => urls[0].clone(),
            Self::Sentinel { sentinels, .. } => sentinels[0].clone(),
        }
    }

    /// The primary behind Sentinel now, as `redis://host:port`.
    async fn sentinel_primary(sentinels: &[String], master_name: &str) -> anyhow::Result<String> {
        let mut last_error = None;
        for sentinel in sentinels {
            let asked = query::<Option<(String, String)>>(
                sentinel,
                redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(master_name),
            )
            .await;
            match asked {
                Ok(Some((host, port))) => return Ok(format!("redis://{host}:{port}")),
                Ok(None) => last_error = Some(anyhow::anyhow!("{sentinel} knows no {master_name}")),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no sentinel given")))
    }

    /// The cluster's live primaries with slots, as `(url, slot ranges)`, per the first seed
    /// that answers.
    async fn cluster_primaries(urls: &[String]) -> anyhow::Result<Vec<(String, Vec<(u16, u16)>)>> {
        let mut last_error = None;
        for url in urls {
            match query::<String>(url, redis::cmd("CLUSTER").arg("NODES")).await {
                Ok(text) => {
                    let host = url
                        .trim_start_matches("redis://")
                        .rsplit_once(':')
                        .map_or("127.0.0.1", |(h, _)| h)
                        .to_owned();
                    return Ok(parse_cluster_nodes(&text)?
                        .into_iter()
                        .filter(|n| n.primary && !n.failed && !n.slots.is_empty())
                        .map(|n| (format!("redis://{host}:{}", n.port), n.slots))
                        .collect());
                }
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no seed node given")))
    }

    /// The primaries that hold data: the server, the cluster's primaries, or Sentinel's primary.
    pub async fn primaries(&self) -> anyhow::Result<Vec<String>> {
        Ok(match self {
            Self::Standalone(url) => vec![url.clone()],
            Self::Cluster(urls) => Self::cluster_primaries(urls)
                .await?
                .into_iter()
                .map(|(url, _)| url)
                .collect(),
            Self::Sentinel {
                sentinels,
                master_name,
            } => vec![Self::sentinel_primary(sentinels, master_name).await?],
        })
    }

    /// The URL of the primary holding `key`.
    pub async fn url_for_key(&self, key: &str) -> anyhow::Result<String> {
        match self {
            Self::Standalone(url) => Ok(url.clone()),
            Self::Sentinel {
                sentinels,
                master_name,
            } => Self::sentinel_primary(sentinels, master_name).await,
            Self::Cluster(urls) => {
                let slot = vidq_slot(key);
                Self::cluster_primaries(urls)
                    .await?
                    .into_iter()
                    .find(|(_, slots)| slots.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
                    .map(|(url, _)| url)
                    .with_context(|| format!("no live primary serves slot {slot} ({key})"))
            }
        }
    }

    /// Every key matching `pattern` (SCAN on every primary), with the primary that holds it.
    pub async fn scan(&self, pattern: &str) -> anyhow::Result<Vec<(String, String)>> {
        let mut out = BTreeSet::new();
        for url in self.primaries().await? {
            let client = redis::Client::open(url.as_str())?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await
                    .with_context(|| format!("SCAN on {url}"))?;
                out.extend(batch.into_iter().map(|k| (k, url.clone())));
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Deletes `keys` as found by [`RedisShape::scan`], one key per command (they may be of
    /// different slots).
    pub async fn delete(&self, keys: &[(String, String)]) -> anyhow::Result<()> {
        let mut by_node: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for (key, url) in keys {
            by_node.entry(url).or_default().push(key);
        }
        for (url, keys) in by_node {
            let client = redis::Client::open(url)?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            for chunk in keys.chunks(500) {
                let mut pipe = redis::pipe();
                for key in chunk {
                    pipe.del(*key).ignore();
                }
                pipe.query_async::<()>(&mut conn).await?;
            }
        }
        Ok(())
    }
}

/// The hash slot of `key` (CRC16/XMODEM of its hash tag, or of the whole key, mod 16384).
#[must_use]
pub fn vidq_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = match bytes.iter().position(|b| *b == b'{') {
        Some(open) => match bytes[open + 1..].iter().position(|b| *b == b'}') {
            Some(len) if len > 0 => &bytes[open + 1..open + 1 + len],
            _ => bytes,
        },
        None => bytes,
    };
    let mut crc: u16 = 0;
    for byte in hashed {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_hash_tag() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(vidq_slot("123456789"), 12739);
        assert_eq!(vidq_slot("foo"), 12182);
        assert_eq!(vidq_slot("a:{foo}:b"), 12182);
    }
}
