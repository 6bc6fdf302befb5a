//! The producer's settings (`[log]`, `[redis]`, `[jobs]`, `[api]`, `[storage]`), layered like
//! every vidq binary's.

use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use vidq_core::{LogSettings, SettingsError, load_settings};
use vidq_storage::StorageSettings;

/// Built-in defaults.
pub const DEFAULTS: &str = include_str!("../defaults.toml");

/// What the producer needs: where Redis is, and the deadline given to new jobs.
#[derive(Debug, Clone, Deserialize)]
pub struct ProducerSettings {
    /// Logging.
    pub log: LogSettings,
    /// Redis.
    pub redis: RedisSettings,
    /// New jobs.
    pub jobs: JobSettings,
    /// The HTTP API.
    #[serde(default)]
    pub api: ApiSettings,
    /// Where videos are stored, for presigned download links; optional for the CLI.
    #[serde(default)]
    pub storage: Option<StorageSettings>,
}

/// `[api]`: the HTTP API of `vidq serve`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Address to listen on, e.g. `0.0.0.0:8080`.
    pub listen: String,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Requests per second each token may make, on average.
    pub rate_per_second: f64,
    /// Requests a token may make at once after being idle.
    pub rate_burst: u32,
    /// A request whose upstream arguments match a job created this long ago or less reuses it.
    #[serde(with = "humantime_serde")]
    pub reuse_ttl: Duration,
    /// Whether reuse may answer one tenant with another tenant's identical work (default
    /// false: reuse stays within a tenant). Across tenants only a stored result is reused, copied
    /// into a new job of the caller's; another tenant's job in flight is never handed over.
    #[serde(default)]
    pub reuse_across_tenants: bool,
    /// How long an `Idempotency-Key` keeps pointing at its job.
    #[serde(with = "humantime_serde")]
    pub idempotency_ttl: Duration,
    /// Longest an event stream stays open.
    #[serde(with = "humantime_serde")]
    pub events_max: Duration,
    /// Who may call the API.
    #[serde(default)]
    pub tokens: Vec<ApiToken>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            body_limit: 65_536,
            rate_per_second: 20.0,
            rate_burst: 40,
            reuse_ttl: Duration::from_secs(24 * 3600),
            reuse_across_tenants: false,
            idempotency_ttl: Duration::from_secs(24 * 3600),
            events_max: Duration::from_secs(15 * 60),
            tokens: Vec::new(),
        }
    }
}

/// One caller of the API. `Debug` never shows the token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    /// Who this is, for logs and metrics, and the tenant owning the jobs it creates: a token
    /// sees only its tenant's jobs (several tokens may share a name, e.g. while rotating).
    /// 1 to 64 ASCII letters, digits, `-`, `_` or `.`.
    pub name: String,
    /// The bearer token itself.
    pub token: SecretString,
    /// What it may do.
    pub scopes: Vec<Scope>,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read jobs, their events and videos.
    Read,
    /// Enqueue and cancel jobs.
    Write,
    /// Read, enqueue and cancel the jobs of every tenant (implies `read` and `write`); lists
    /// all jobs, or one tenant's with `?tenant=`.
    Admin,
}

/// `[redis]`.
#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    /// `redis://` or `rediss://` URL.
    pub url: String,
    /// Prefix of every key; must match the workers'.
    pub prefix: String,
    /// How long `vidq serve`'s `/readyz` answers 503 after it saw Redis lose its data: the
    /// epoch marker `<prefix>:epoch`, read every 2 s, was missing or had changed (default 60s).
    #[serde(with = "humantime_serde", default = "default_epoch_unready_for")]
    pub epoch_unready_for: Duration,
}

fn default_epoch_unready_for() -> Duration {
    vidq_core::DEFAULT_EPOCH_UNREADY_FOR
}

/// `[jobs]`.
#[derive(Debug, Clone, Deserialize)]
pub struct JobSettings {
    /// A job not finished this long after it was enqueued ends `expired`.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
}

impl Default for ProducerSettings {
    fn default() -> Self {
        // The compiled-in defaults always parse (a unit test checks it).
        load_settings(DEFAULTS, None, std::iter::empty()).unwrap_or_else(|_| Self {
            log: LogSettings::default(),
            redis: RedisSettings {
                url: "redis://127.0.0.1:6379".to_owned(),
                prefix: "vidq".to_owned(),
                epoch_unready_for: default_epoch_unready_for(),
            },
            jobs: JobSettings {
                deadline: Duration::from_secs(1800),
            },
            api: ApiSettings::default(),
            storage: None,
        })
    }
}

impl ProducerSettings {
    /// Loads defaults, then `file`, then `VIDQ__...` from the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        let settings: Self = load_settings(DEFAULTS, file, std::env::vars())?;
        if settings.jobs.deadline < Duration::from_secs(1) {
            return Err(SettingsError::Invalid(
                "jobs.deadline: must be at least 1s".into(),
            ));
        }
        settings.api.validate()?;
        Ok(settings)
    }
}

impl ApiSettings {
    fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |what: &str| Err(SettingsError::Invalid(format!("api.{what}")));
        if self.body_limit < 1024 {
            return invalid("body_limit: must be at least 1024 bytes");
        }
        if !(self.rate_per_second > 0.0 && self.rate_per_second.is_finite()) || self.rate_burst == 0
        {
            return invalid("rate_per_second and rate_burst: must be positive");
        }
        if self.events_max < Duration::from_secs(1) {
            return invalid("events_max: must be at least 1s");
        }
        if self.idempotency_ttl < Duration::from_secs(1) {
            return invalid("idempotency_ttl: must be at least 1s");
        }
        for token in &self.tokens {
            use secrecy::ExposeSecret as _;
            if !valid_tenant_name(&token.name) {
                return invalid(&format!(
                    "tokens: the name `{}` must be 1 to 64 ASCII letters, digits, `-`, `_` or `.`",
                    token.name.chars().take(64).collect::<String>()
                ));
            }
            if token.token.expose_secret().len() < 16 {
                return invalid(&format!(
                    "tokens: the token of `{}` must be at least 16 characters",
                    token.name
                ));
            }
        }
        Ok(())
    }
}

/// A token name is a tenant name, part of Redis keys: short, and free of `{`, `}` and `:`.
pub(crate) fn valid_tenant_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse() {
        let s: ProducerSettings = load_settings(DEFAULTS, None, std::iter::empty()).unwrap();
        assert_eq!(s.jobs.deadline, Duration::from_secs(1800));
        assert_eq!(s.redis.prefix, "vidq");
        assert_eq!(s.redis.epoch_unready_for, Duration::from_secs(60));
        assert_eq!(s.api.body_limit, 65_536);
        assert!(s.api.tokens.is_empty());
        assert!(s.storage.is_none());
    }

    #[test]
    fn tokens_parse_and_hide() {
        let file = r#"
            [[api.tokens]]
            name = "backend"
            token = "0123456789abcdef-secret"
            scopes = ["read", "write"]
        "#;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vidq.toml");
        std::fs::write(&path, file).unwrap();
        let s: ProducerSettings = load_settings(DEFAULTS, Some(&path), std::iter::empty()).unwrap();
        assert_eq!(s.api.tokens[0].scopes, [Scope::Read, Scope::Write]);
        assert!(!format!("{s:?}").contains("0123456789abcdef-secret"));
    }

    #[test]
    fn admin_scope_and_tenant_names() {
        let file = r#"
            [api]
            reuse_across_tenants = true
            [[api.tokens]]
            name = "ops"
            token = "0123456789abcdef-admin"
            scopes = ["admin"]
        "#;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vidq.toml");
        std::fs::write(&path, file).unwrap();
        let s: ProducerSettings = load_settings(DEFAULTS, Some(&path), std::iter::empty()).unwrap();
        assert_eq!(s.api.tokens[0].scopes, [Scope::Admin]);
        assert!(s.api.reuse_across_tenants);
        assert!(!ApiSettings::default().reuse_across_tenants);
        assert!(s.api.validate().is_ok());
        assert!(valid_tenant_name("team-a_1.prod"));
        for bad in ["", "a:b", "a{b}", "a b", &"x".repeat(65)] {
            assert!(!valid_tenant_name(bad), "{bad}");
        }
    }
}
