//! `Redis`: built once per process from `[redis]`; hands out `Conn`s and subscriptions.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{AsyncConnectionConfig, ConnectionInfo};

use crate::conn::{Conn, Inner};
use crate::error::RedisError;
use crate::sentinel::SentinelShared;
use crate::settings::{Mode, RedisSettings, parse_url};
use crate::slot::slot;
use crate::subscribe::{self, Subscription};

const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// The deployment vidq talks to. Cheap to clone; build one per process.
#[derive(Clone)]
pub struct Redis {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) settings: RedisSettings,
    pub(crate) conn: Conn,
    pub(crate) shape: Shape,
    /// Sentinel mode: the task checking which node the Sentinels name.
    watcher: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(watcher) = self.watcher.take() {
            watcher.abort();
        }
    }
}

/// How often Sentinel mode asks the Sentinels whether the primary is still the same node.
const SENTINEL_CHECK_EVERY: Duration = Duration::from_secs(1);

pub(crate) enum Shape {
    Standalone { info: ConnectionInfo },
    Cluster { seed: ConnectionInfo },
    Sentinel(Arc<SentinelShared>),
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("settings", &self.shared.settings)
            .finish()
    }
}

/// What `wait_replicas` saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// `redis.min_replicas_acked` is 0: nothing was waited for.
    Skipped,
    /// This many replicas acknowledged (at least the minimum).
    Acked(u32),
    /// Fewer than the minimum acknowledged within `redis.replication_timeout` (or WAIT
    /// failed): logged and counted in `vidq_redis_wait_short_total`.
    Short {
        /// Replicas that acknowledged.
        acked: u32,
        /// `redis.min_replicas_acked`.
        wanted: u32,
    },
    /// WAIT itself failed (the connection broke or timed out): the primary that took the
    /// write may be gone, and the write with it. A caller that still holds what it wrote
    /// should check it and write it again (logged and counted like `Short`).
    Failed,
}

impl Redis {
    /// Validates `settings` and connects (cluster: discovers the nodes; Sentinel: resolves
    /// the primary). Fails when the deployment cannot be reached now.
    pub async fn connect(settings: &RedisSettings) -> Result<Self, RedisError> {
        settings.validate()?;
        let (conn, shape) = match settings.mode {
            Mode::Standalone => {
                let info = parse_url("redis.url", &settings.url)?;
                let client = redis::Client::open(info.clone())
                    .map_err(RedisError::redis("opening redis.url"))?;
                let config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_connection_timeout(Some(CONNECTION_TIMEOUT))
                    .set_max_delay(Duration::from_secs(2));
                let manager = ConnectionManager::new_with_config(client, config)
                    .await
                    .map_err(RedisError::redis(format!(
                        "connecting to Redis ({})",
                        settings.describe()
                    )))?;
                (Inner::Standalone(manager), Shape::Standalone { info })
            }
            Mode::Cluster => {
                let seeds: Vec<ConnectionInfo> = settings
                    .urls
                    .iter()
                    .enumerate()
                    .map(|(i, u)| parse_url(&format!("redis.urls[{i}]"), u))
                    .collect::<Result<_, _>>()?;
                let client = ClusterClientBuilder::new(seeds.clone())
                    .connection_timeout(CONNECTION_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .build()
                    .map_err(RedisError::redis(
                        "configuring the cluster client (redis.urls)",
                    ))?;
                let conn = client
                    .get_async_connection()
                    .await
                    .map_err(RedisError::redis(format!(
                        "connecting to Redis ({})",
                        settings.describe()
                    )))?;
                (
                    Inner::Cluster(conn),
                    Shape::Cluster {
                        seed: seeds[0].clone(),
                    },
                )
            }
            Mode::Sentinel => {
                let config = AsyncConnectionConfig::new()
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_connection_timeout(Some(CONNECTION_TIMEOUT));
                let sentinel = Arc::new(SentinelShared::new(settings, config)?);
                // Resolve now, so a wrong master_name or unreachable Sentinels fail the start.
                sentinel
                    .primary_info()
                    .await
                    .map_err(RedisError::redis(format!(
                        "resolving the primary ({})",
                        settings.describe()
                    )))?;
                (Inner::Sentinel(sentinel.clone()), Shape::Sentinel(sentinel))
            }
        };
        tracing::debug!(redis = %settings.describe(), "connected to Redis");
        let watcher = match &shape {
            Shape::Sentinel(sentinel) => Some(tokio::spawn(SentinelShared::watch(
                Arc::downgrade(sentinel),
                SENTINEL_CHECK_EVERY,
            ))),
            _ => None,
        };
        Ok(Self {
            shared: Arc::new(Shared {
                settings: settings.clone(),
                conn: Conn { inner: conn },
                shape,
                watcher,
            }),
        })
    }

    /// A connection (a clone of the shared one: multiplexed, cheap).
    pub fn conn(&self) -> Conn {
        self.shared.conn.clone()
    }

    /// The settings this was built from.
    pub fn settings(&self) -> &RedisSettings {
        &self.shared.settings
    }

    /// Standalone, cluster or Sentinel.
    pub fn mode(&self) -> Mode {
        self.shared.settings.mode
    }

    /// Subscribes to sharded channels (`SSUBSCRIBE`, Redis ≥ 7.0) until the stream is
    /// dropped, subscribing again after a lost connection or a failover.
    pub fn subscribe_sharded(&self, channels: Vec<String>) -> Subscription {
        subscribe::spawn(self.shared.clone(), channels)
    }

    /// `WAIT redis.min_replicas_acked redis.replication_timeout` on `conn` — in a cluster on
    /// the primary holding `routing_key` — after a write a client will rely on. Never fails:
    /// a short count (or a failed WAIT) is logged and counted.
    pub async fn wait_replicas(&self, conn: &mut Conn, routing_key: &str) -> WaitOutcome {
        let wanted = self.shared.settings.min_replicas_acked;
        if wanted == 0 {
            return WaitOutcome::Skipped;
        }
        let timeout_ms = self.shared.settings.replication_timeout.as_millis() as u64;
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(wanted).arg(timeout_ms.max(1));
        let started = std::time::Instant::now();
        let result: redis::RedisResult<i64> = match conn.cluster() {
            Some(cluster) => {
                let route = Route::new(slot(routing_key.as_bytes()), SlotAddr::Master);
                match cluster
                    .route_command(
                        cmd,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await
                {
                    Ok(v) => redis::from_redis_value(v).map_err(Into::into),
                    Err(e) => Err(e),
                }
            }
            None => cmd.query_async(conn).await,
        };
        metrics::histogram!("vidq_redis_wait_seconds").record(started.elapsed().as_secs_f64());
        let acked = match result {
            Ok(n) => u32::try_from(n.max(0)).unwrap_or(u32::MAX),
            Err(error) => {
                tracing::warn!(%error, wanted, "WAIT for replicas failed: the write may be lost");
                metrics::counter!("vidq_redis_wait_short_total").increment(1);
                return WaitOutcome::Failed;
            }
        };
        if acked >= wanted {
            WaitOutcome::Acked(acked)
        } else {
            tracing::warn!(
                acked,
                wanted,
                timeout_ms,
                "fewer replicas than redis.min_replicas_acked hold the write; a failover now could lose it"
            );
            metrics::counter!("vidq_redis_wait_short_total").increment(1);
            WaitOutcome::Short { acked, wanted }
        }
    }
}
