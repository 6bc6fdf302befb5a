//! The worker's settings: defaults compiled in, then an optional file, then `VIDQ__...`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use std::collections::BTreeMap;

use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use vidq_core::{LogSettings, SettingsError, load_settings};
use vidq_goenhance::ClientSettings;
use vidq_storage::StorageSettings;

use crate::limits::LimitSettings;

/// Built-in defaults. Every setting can be overridden by a file or `VIDQ__SECTION__KEY`.
pub const DEFAULTS: &str = include_str!("../defaults.toml");

/// Everything the worker daemon is configured by.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Logging.
    pub log: LogSettings,
    /// Where the queues and job records live.
    pub redis: RedisSettings,
    /// The upstream API (its key comes from `VIDQ__GOENHANCE__API_KEY`).
    pub goenhance: ClientSettings,
    /// Where finished videos are stored.
    pub storage: StorageSettings,
    /// Timing of a job's life.
    pub jobs: JobSettings,
    /// Per-kind worker settings.
    pub queues: QueuesSettings,
    /// The safety net that re-enqueues stuck jobs.
    pub reconciler: ReconcilerSettings,
    /// Health probes and metrics.
    pub http: HttpSettings,
    /// Graceful stop.
    pub shutdown: ShutdownSettings,
    /// Terminal events posted to each job's `callback_url`.
    pub webhooks: WebhookSettings,
    /// Limits shared by all replicas.
    pub limits: LimitSettings,
    /// How submissions are shared across tenants.
    #[serde(default)]
    pub fair_share: crate::limits::FairShareSettings,
    /// This process's beat in the registry of live workers (`vidq workers`).
    #[serde(default)]
    pub heartbeat: crate::heartbeat::HeartbeatSettings,
    /// OpenTelemetry traces (`[otel]`): off unless `otel.endpoint` is set.
    #[serde(default)]
    pub otel: vidq_otel::OtelSettings,
}

/// `[redis]`: the shared settings of the connection layer (standalone, cluster, Sentinel).
pub use vidq_redis::RedisSettings;

/// `[jobs]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSettings {
    /// Time between two status requests for one job (the provider asks for 5 s).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How long finished job records are kept.
    #[serde(with = "humantime_serde")]
    pub finished_ttl: Duration,
}

/// `[queues]`: one section per task kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueuesSettings {
    /// Upstream submissions.
    pub submit: QueueSettings,
    /// Status requests.
    pub poll: QueueSettings,
    /// Downloads and uploads of finished videos.
    pub transfer: QueueSettings,
    /// Webhook deliveries (`max_attempts` caps them; `webhooks.retry_for` usually ends first).
    pub notify: QueueSettings,
    /// Lease of a claimed task; renewed while it runs.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// A task whose worker vanished (its lease expired) this many times in a row goes to the
    /// dead set: it probably crashes the worker. Handled failures never count against it.
    #[serde(default = "default_max_deliveries")]
    pub max_deliveries: u64,
}

fn default_max_deliveries() -> u64 {
    10
}

/// One task kind's worker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    /// Tasks of this kind one process runs at once.
    pub concurrency: usize,
    /// Attempts before a failing task gives up (its job then fails with the last error).
    pub max_attempts: u64,
    /// Delay after the first failed attempt; doubles after each, up to `backoff_max`.
    #[serde(with = "humantime_serde")]
    pub backoff: Duration,
    /// Longest delay between two attempts.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
}

/// `[reconciler]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcilerSettings {
    /// How often each replica looks for stuck jobs.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// A job whose next task is this late is re-enqueued.
    #[serde(with = "humantime_serde")]
    pub stale_after: Duration,
    /// Most jobs repaired per round.
    pub batch: usize,
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    pub listen: SocketAddr,
}

/// `[webhooks]`: how terminal events reach each job's `callback_url`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// The HMAC-SHA256 key of `Vidq-Signature`. Unset: no webhook is sent unsigned; each
    /// delivery goes to the dead set saying so.
    #[serde(default)]
    pub secret: Option<SecretString>,
    /// One delivery attempt, connection included.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How long after the job ended failed deliveries are retried before they go dead.
    #[serde(with = "humantime_serde")]
    pub retry_for: Duration,
    /// Hosts that may be called over plain `http` (a list, or comma-separated in the
    /// environment: `VIDQ__WEBHOOKS__ALLOW_HTTP_HOSTS=127.0.0.1,hooks.internal`).
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub allow_http_hosts: Vec<String>,
    /// Allow loopback, private, link-local and reserved addresses (tests and development).
    pub allow_private: bool,
    /// Per-tenant secrets (`[webhooks.tenants.<tenant>] secrets = ["new", "old"]`): a job
    /// whose owner is listed is signed with each of its secrets (every signature is sent, so a
    /// receiver holding either secret of a rotation verifies) and never with `secret`, which
    /// stays the key of every other job.
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantWebhooks>,
}

/// `[webhooks.tenants.<tenant>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantWebhooks {
    /// One to four secrets, the current one first (a list, or comma-separated in the
    /// environment: `VIDQ__WEBHOOKS__TENANTS__ACME__SECRETS=new,old`).
    #[serde(deserialize_with = "secrets_list")]
    pub secrets: Vec<SecretString>,
}

impl WebhookSettings {
    /// The secrets that sign the webhooks of a job owned by `owner`, the signing one first:
    /// the tenant's own, else `secret`. Empty: nothing may be sent.
    pub fn secrets_for(&self, owner: Option<&str>) -> Vec<&SecretString> {
        match owner.and_then(|o| self.tenants.get(o)) {
            Some(tenant) => tenant.secrets.iter().collect(),
            None => self
                .secret
                .iter()
                .filter(|s| !s.expose_secret().is_empty())
                .collect(),
        }
    }
}

fn secrets_list<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Vec<SecretString>, D::Error> {
    Ok(list_or_comma_separated(de)?
        .into_iter()
        .map(SecretString::from)
        .collect())
}

fn list_or_comma_separated<'de, D: serde::Deserializer<'de>>(
    de: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Hosts {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Hosts::deserialize(de)? {
        Hosts::List(list) => list,
        Hosts::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// `[shutdown]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    /// How long running tasks may take to finish after SIGTERM; what is left is handed back.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
}

impl WorkerSettings {
    /// Loads the settings from the defaults, `file` and the process environment, and checks
    /// them. The error names the setting that is missing or wrong.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_from(file, std::env::vars())
    }

    /// Like [`WorkerSettings::load`] with the environment given.
    pub fn load_from(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let settings: Self = load_settings(DEFAULTS, file, vars)?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |name: &str, why: &str| Err(SettingsError::Invalid(format!("{name}: {why}")));
        if self.jobs.poll_interval < Duration::from_millis(100) {
            return invalid("jobs.poll_interval", "must be at least 100ms");
        }
        for (name, q) in [
            ("queues.submit", &self.queues.submit),
            ("queues.poll", &self.queues.poll),
            ("queues.transfer", &self.queues.transfer),
            ("queues.notify", &self.queues.notify),
        ] {
            if q.concurrency == 0 {
                return invalid(&format!("{name}.concurrency"), "must be at least 1");
            }
            if q.max_attempts == 0 {
                return invalid(&format!("{name}.max_attempts"), "must be at least 1");
            }
        }
        if self.queues.max_deliveries == 0 {
            return invalid("queues.max_deliveries", "must be at least 1");
        }
        if self.queues.lease < Duration::from_secs(1) {
            return invalid("queues.lease", "must be at least 1s");
        }
        if self.webhooks.timeout < Duration::from_millis(100) {
            return invalid("webhooks.timeout", "must be at least 100ms");
        }
        for (tenant, hooks) in &self.webhooks.tenants {
            let name = format!("webhooks.tenants.{tenant}.secrets");
            if !(1..=4).contains(&hooks.secrets.len()) {
                return invalid(&name, "must hold 1 to 4 secrets, the signing one first");
            }
            if hooks.secrets.iter().any(|s| s.expose_secret().len() < 16) {
                return invalid(&name, "each secret must be at least 16 characters");
            }
        }
        self.otel.validate().map_err(SettingsError::Invalid)?;
        if self.heartbeat.interval < Duration::from_millis(100) {
            return invalid("heartbeat.interval", "must be at least 100ms");
        }
        if self.reconciler.batch == 0 {
            return invalid("reconciler.batch", "must be at least 1");
        }
        self.redis
            .validate()
            .map_err(|e| SettingsError::Invalid(e.to_string()))?;
        self.storage
            .validate()
            .map_err(|e| SettingsError::Invalid(e.to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const REQUIRED: [(&str, &str); 2] = [
        ("VIDQ__GOENHANCE__API_KEY", "k-123"),
        ("VIDQ__STORAGE__BUCKET", "videos"),
    ];

    #[test]
    fn defaults_load_with_the_required_settings() {
        let s = WorkerSettings::load_from(None, vars(&REQUIRED)).unwrap();
        assert_eq!(s.jobs.poll_interval, Duration::from_secs(5));
        assert_eq!(s.storage.bucket, "videos");
        assert_eq!(s.redis.epoch_unready_for, Duration::from_secs(60));
        assert!(!format!("{s:?}").contains("k-123"));
    }

    #[test]
    fn webhook_hosts_read_as_a_list_or_comma_separated() {
        let s = WorkerSettings::load_from(None, vars(&REQUIRED)).unwrap();
        assert!(s.webhooks.allow_http_hosts.is_empty() && !s.webhooks.allow_private);
        assert!(s.webhooks.secret.is_none());
        assert_eq!(s.webhooks.retry_for, Duration::from_secs(3600));
        let mut env = vars(&REQUIRED);
        env.push((
            "VIDQ__WEBHOOKS__ALLOW_HTTP_HOSTS".into(),
            "127.0.0.1, hooks.internal".into(),
        ));
        env.push(("VIDQ__WEBHOOKS__SECRET".into(), "whsec-9f2".into()));
        let s = WorkerSettings::load_from(None, env).unwrap();
        assert_eq!(s.webhooks.allow_http_hosts, ["127.0.0.1", "hooks.internal"]);
        assert!(!format!("{s:?}").contains("whsec-9f2"));
    }

    #[test]
    fn tenant_webhook_secrets_from_a_file_or_the_environment() {
        let path = std::env::temp_dir().join(format!(
            "vidq-worker-tenant-secrets-{}.toml",
            std::process::id()
        ));
        std::fs::write(
            &path,
            r#"
            [webhooks]
            secret = "global-secret-0123456789"
            [webhooks.tenants.team-a]
            secrets = ["team-a-new-0123456789", "team-a-old-0123456789"]
            "#,
        )
        .unwrap();
        let s = WorkerSettings::load_from(Some(&path), vars(&REQUIRED)).unwrap();
        std::fs::remove_file(&path).unwrap();
        let shown = |owner| -> Vec<String> {
            s.webhooks
                .secrets_for(owner)
                .iter()
                .map(|s| s.expose_secret().to_owned())
                .collect()
        };
        assert_eq!(
            shown(Some("team-a")),
            ["team-a-new-0123456789", "team-a-old-0123456789"]
        );
        assert_eq!(shown(Some("team-b")), ["global-secret-0123456789"]);
        assert_eq!(shown(None), ["global-secret-0123456789"]);
        assert!(!format!("{s:?}").contains("team-a-old"));

        let mut env = vars(&REQUIRED);
        env.push((
            "VIDQ__WEBHOOKS__TENANTS__ACME__SECRETS".into(),
            "acme-new-0123456789,acme-old-0123456789".into(),
        ));
        let s = WorkerSettings::load_from(None, env).unwrap();
        assert_eq!(s.webhooks.secrets_for(Some("acme")).len(), 2);
        assert!(
            s.webhooks.secrets_for(Some("other")).is_empty(),
            "no global secret"
        );

        let mut env = vars(&REQUIRED);
        env.push((
            "VIDQ__WEBHOOKS__TENANTS__ACME__SECRETS".into(),
            "short".into(),
        ));
        let err = WorkerSettings::load_from(None, env).unwrap_err();
        assert!(
            err.to_string().contains("webhooks.tenants.acme.secrets"),
            "{err}"
        );
        assert!(!err.to_string().contains("short"), "{err}");
    }

    #[test]
    fn a_missing_api_key_is_named() {
        let err =
            WorkerSettings::load_from(None, vars(&[("VIDQ__STORAGE__BUCKET", "v")])).unwrap_err();
        assert!(err.to_string().contains("api_key"), "{err}");
    }

    #[test]
    fn a_bad_value_is_named() {
        let mut env = vars(&REQUIRED);
        env.push(("VIDQ__QUEUES__POLL__CONCURRENCY".into(), "0".into()));
        let err = WorkerSettings::load_from(None, env).unwrap_err();
        assert!(err.to_string().contains("queues.poll.concurrency"), "{err}");

        let mut env = vars(&REQUIRED);
        env.push(("VIDQ__JOBS__POLL_INTERVAL".into(), "soon".into()));
        let err = WorkerSettings::load_from(None, env).unwrap_err();
        assert!(err.to_string().contains("poll_interval"), "{err}");
    }
}
