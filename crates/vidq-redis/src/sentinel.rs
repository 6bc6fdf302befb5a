//! Sentinel mode: a multiplexed connection to the current primary, resolved through the
//! Sentinels, and resolved again when it answers READONLY (it was demoted) or is lost.

use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use redis::aio::{ConnectionLike as _, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, Pipeline, RedisResult,
    ServerErrorKind, TlsMode, Value,
};

use crate::conn::Try;
use crate::error::RedisError;
use crate::settings::{RedisSettings, parse_url};

#[derive(Clone)]
struct Current {
    generation: u64,
    conn: MultiplexedConnection,
    /// `host:port` of the primary it is connected to.
    addr: String,
}

pub(crate) struct SentinelShared {
    client: tokio::sync::Mutex<SentinelClient>,
    current: RwLock<Option<Current>>,
    generation: AtomicU64,
    config: AsyncConnectionConfig,
    db: i64,
    master_name: String,
}

fn tls_of(addr: &ConnectionAddr) -> Option<TlsMode> {
    match addr {
        ConnectionAddr::TcpTls { insecure, .. } => Some(if *insecure {
            TlsMode::Insecure
        } else {
            TlsMode::Secure
        }),
        _ => None,
    }
}

impl SentinelShared {
    pub(crate) fn new(
        settings: &RedisSettings,
        config: AsyncConnectionConfig,
    ) -> Result<Self, RedisError> {
        let sentinels: Vec<ConnectionInfo> = settings
            .sentinels
            .iter()
            .enumerate()
            .map(|(i, url)| parse_url(&format!("redis.sentinels[{i}]"), url))
            .collect::<Result<_, _>>()?;
        let primary = parse_url("redis.url", &settings.url)?;
        let master_name = settings.master_name.clone().unwrap_or_default();
        let mut builder = SentinelClientBuilder::new(
            sentinels.iter().map(|s| s.addr().clone()),
            &master_name,
            SentinelServerType::Master,
        )
        .map_err(RedisError::redis("configuring the Sentinel client"))?;
        // The Sentinels' own credentials and TLS: those of the first Sentinel URL.
        let first = &sentinels[0];
        if let Some(tls) = tls_of(first.addr()) {
            builder = builder.set_client_to_sentinel_tls_mode(tls);
        }
        if let Some(user) = first.redis_settings().username() {
            builder = builder.set_client_to_sentinel_username(user);
        }
        if let Some(password) = first.redis_settings().password() {
            builder = builder.set_client_to_sentinel_password(password);
        }
        // The primary's: those of `redis.url`.
        if let Some(tls) = tls_of(primary.addr()) {
            builder = builder.set_client_to_redis_tls_mode(tls);
        }
        if let Some(user) = primary.redis_settings().username() {
            builder = builder.set_client_to_redis_username(user);
        }
        if let Some(password) = primary.redis_settings().password() {
            builder = builder.set_client_to_redis_password(password);
        }
        let db = primary.redis_settings().db();
        builder = builder.set_client_to_redis_db(db);
        let client = builder
            .build()
            .map_err(RedisError::redis("configuring the Sentinel client"))?;
        Ok(Self {
            client: tokio::sync::Mutex::new(client),
            current: RwLock::new(None),
            generation: AtomicU64::new(0),
            config,
            db,
            master_name,
        })
    }

    pub(crate) fn db(&self) -> i64 {
        self.db
    }

    fn cached(&self) -> Option<Current> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The connection to the primary, resolving it through the Sentinels when there is none.
    async fn current(&self) -> RedisResult<Current> {
        if let Some(current) = self.cached() {
            return Ok(current);
        }
        let mut client = self.client.lock().await;
        // Another caller may have resolved it while we waited.
        if let Some(current) = self.cached() {
            return Ok(current);
        }
        // The Sentinels are asked, and the node they name must answer ROLE = master.
        let primary = client.async_get_client().await?;
        let info = primary.get_connection_info().clone();
        let addr = show_addr(info.addr());
        let conn = primary
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        drop(client);
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        tracing::info!(
            master_name = %self.master_name,
            primary = %addr,
            generation,
            "connected to the Redis primary named by the Sentinels"
        );
        let current = Current {
            generation,
            conn,
            addr,
        };
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(current.clone());
        Ok(current)
    }

    /// Where the primary is now, asked of the Sentinels afresh (connection info with its
    /// credentials), for subscribers.
    pub(crate) async fn primary_info(&self) -> RedisResult<ConnectionInfo> {
        let mut client = self.client.lock().await;
        let primary = client.async_get_client().await?;
        Ok(primary.get_connection_info().clone())
    }

    /// Every `every`, asks the Sentinels which node is the primary and drops the connection
    /// when they name another one: after a failover the old primary may go on accepting
    /// writes (which the new one will not have) until the Sentinels reconfigure it. Ends when
    /// the last handle is dropped.
    pub(crate) async fn watch(this: std::sync::Weak<Self>, every: std::time::Duration) {
        loop {
            tokio::time::sleep(every).await;
            let Some(shared) = this.upgrade() else { return };
            let Some(current) = shared.cached() else {
                continue;
            };
            match shared.primary_info().await {
                Ok(info) if show_addr(info.addr()) != current.addr => {
                    shared.forget(current.generation, "the Sentinels name another primary");
                }
                Ok(_) => {}
                Err(error) => tracing::debug!(%error, "asking the Sentinels for the primary"),
            }
        }
    }

    /// Forget connection `generation`: the next request resolves the primary again.
    fn forget(&self, generation: u64, why: &str) {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_some_and(|c| c.generation == generation) {
            tracing::warn!(
                master_name = %self.master_name,
                why,
                "the Redis primary connection is no longer usable; asking the Sentinels again"
            );
            metrics::counter!("vidq_redis_sentinel_reresolve_total").increment(1);
            *current = None;
        }
    }

    pub(crate) async fn cmd(&self, cmd: &Cmd) -> Try<Value> {
        let mut current = match self.current().await {
            Ok(c) => c,
            Err(e) => return Try::NotSent(e),
        };
        let result = current.conn.req_packed_command(cmd).await;
        if let Some(why) = lost(result.as_ref().err()).or_else(|| demoted_value(&result)) {
            self.forget(current.generation, why);
        }
        Try::Sent(result)
    }

    pub(crate) async fn pipeline(
        &self,
        p: &Pipeline,
        offset: usize,
        count: usize,
    ) -> Try<Vec<Value>> {
        let mut current = match self.current().await {
            Ok(c) => c,
            Err(e) => return Try::NotSent(e),
        };
        let result = current.conn.req_packed_commands(p, offset, count).await;
        let demoted = match &result {
            Ok(values) => values.iter().any(is_readonly_value).then_some("READONLY"),
            Err(e) => lost(Some(e)),
        };
        if let Some(why) = demoted {
            self.forget(current.generation, why);
        }
        Try::Sent(result)
    }
}

fn is_readonly_value(v: &Value) -> bool {
    matches!(v, Value::ServerError(e) if e.kind() == Some(ServerErrorKind::ReadOnly))
}

fn demoted_value(result: &RedisResult<Value>) -> Option<&'static str> {
    match result {
        Ok(v) if is_readonly_value(v) => Some("READONLY"),
        _ => None,
    }
}

/// Whether an error means this connection is of no further use.
fn lost(error: Option<&redis::RedisError>) -> Option<&'static str> {
    let error = error?;
    if error.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly) {
        return Some("READONLY");
    }
    if let Some(errors) = error.clone().into_server_errors()
        && errors
            .iter()
            .any(|(_, e)| e.kind() == Some(ServerErrorKind::ReadOnly))
    {
        return Some("READONLY");
    }
    if error.is_io_error() || error.is_connection_dropped() || error.is_timeout() {
        return Some("connection lost");
    }
    None
}

/// `host:port` of an address (never credentials).
pub(crate) fn show_addr(addr: &ConnectionAddr) -> String {
    match addr {
        ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port} (TLS)"),
        ConnectionAddr::Unix(path) => path.display().to_string(),
        _ => "<address>".to_owned(),
    }
}
