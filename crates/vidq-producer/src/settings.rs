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

/// What the producer needs: where Redis is, and the deadline given to new jobs. An unknown
/// key anywhere is refused at start, naming it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// The workers' `[webhooks]` `allow_http_hosts` / `allow_private` (the rest of the section
    /// is ignored here): `POST /v1/jobs` refuses a `callback_url` they would refuse.
    #[serde(default)]
    pub webhooks: vidq_core::CallbackPolicy,
    /// OpenTelemetry traces (`[otel]`): off unless `otel.endpoint` is set.
    #[serde(default)]
    pub otel: vidq_otel::OtelSettings,
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
    /// `[api.quotas]`: per-tenant quotas and the backlog cap.
    #[serde(default)]
    pub quotas: crate::QuotaSettings,
    /// `[api.limits]`: request timeout, requests at once, batch size.
    #[serde(default)]
    pub limits: crate::ServerLimits,
    /// How long an `Idempotency-Key` keeps pointing at its job.
    #[serde(with = "humantime_serde")]
    pub idempotency_ttl: Duration,
    /// Longest an event stream stays open.
    #[serde(with = "humantime_serde")]
    pub events_max: Duration,
    /// Event streams one token may hold open at once (more are 429 `too_many_streams`).
    #[serde(default = "default_events_per_token")]
    pub events_per_token: usize,
    /// Who may call the API: a list in a file (`[[api.tokens]]`), or indexed in the
    /// environment (`VIDQ__API__TOKENS__0__NAME`, `..._0__SHA256`, `..._0__SCOPES=read,write`),
    /// which then replaces the file's list.
    #[serde(default, deserialize_with = "tokens_list_or_indexed")]
    pub tokens: Vec<ApiToken>,
    /// A TOML file of more tokens (`[[tokens]]` entries like `[[api.tokens]]`), read at start
    /// and again on SIGHUP, when every source of tokens is read again.
    #[serde(default)]
    pub tokens_file: Option<std::path::PathBuf>,
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
            quotas: crate::QuotaSettings::default(),
            limits: crate::ServerLimits::default(),
            idempotency_ttl: Duration::from_secs(24 * 3600),
            events_max: Duration::from_secs(15 * 60),
            events_per_token: default_events_per_token(),
            tokens: Vec::new(),
            tokens_file: None,
        }
    }
}

/// One caller of the API: its name, scopes, and either the token itself or (better: the
/// settings then hold nothing a caller could present) its SHA-256 digest. `Debug` never shows
/// the token or the digest.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    /// Who this is, for logs and metrics, and the tenant owning the jobs it creates: a token
    /// sees only its tenant's jobs (several tokens may share a name, e.g. while rotating).
    /// 1 to 64 ASCII letters, digits, `-`, `_` or `.`.
    pub name: String,
    /// The bearer token itself (at least 16 characters); empty when `sha256` is given.
    #[serde(default = "no_token")]
    pub token: SecretString,
    /// Lowercase or uppercase hex SHA-256 of the token (`printf %s "$TOKEN" | sha256sum`),
    /// instead of `token`.
    #[serde(default)]
    pub sha256: Option<SecretString>,
    /// What it may do (a list, or comma-separated in the environment).
    #[serde(deserialize_with = "scopes_list_or_comma_separated")]
    pub scopes: Vec<Scope>,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl ApiToken {
    /// The SHA-256 digest callers' tokens are compared against: `sha256` decoded, or the
    /// digest of `token`. `None` if neither is usable (validation reports which).
    #[must_use]
    pub fn digest(&self) -> Option<[u8; 32]> {
        use secrecy::ExposeSecret as _;
        use sha2::Digest as _;
        match &self.sha256 {
            Some(hex_digest) => {
                let mut out = [0u8; 32];
                hex::decode_to_slice(hex_digest.expose_secret().trim(), &mut out).ok()?;
                Some(out)
            }
            None => {
                let token = self.token.expose_secret();
                (!token.is_empty()).then(|| sha2::Sha256::digest(token.as_bytes()).into())
            }
        }
    }
}

fn default_events_per_token() -> usize {
    8
}

fn no_token() -> SecretString {
    SecretString::from(String::new())
}

/// `[[api.tokens]]` from a file, or `VIDQ__API__TOKENS__<i>__...` (the `config` crate makes
/// the environment's indices a table keyed "0", "1", ...: taken in numeric order).
fn tokens_list_or_indexed<'de, D: serde::Deserializer<'de>>(
    de: D,
) -> Result<Vec<ApiToken>, D::Error> {
    struct Tokens;
    impl<'de> serde::de::Visitor<'de> for Tokens {
        type Value = Vec<ApiToken>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of tokens, or tokens indexed 0, 1, ...")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(token) = seq.next_element()? {
                out.push(token);
            }
            Ok(out)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut indexed = std::collections::BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                let index: usize = key.parse().map_err(|_| {
                    serde::de::Error::custom(format!(
                        "api.tokens: `{key}` is not an index (0, 1, ...)"
                    ))
                })?;
                indexed.insert(index, map.next_value::<ApiToken>()?);
            }
            Ok(indexed.into_values().collect())
        }
    }
    de.deserialize_any(Tokens)
}

fn scopes_list_or_comma_separated<'de, D: serde::Deserializer<'de>>(
    de: D,
) -> Result<Vec<Scope>, D::Error> {
    vidq_core::list_or_comma_separated(de)?
        .iter()
        .map(|scope| match scope.to_ascii_lowercase().as_str() {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            "admin" => Ok(Scope::Admin),
            other => Err(serde::de::Error::custom(format!(
                "unknown scope `{}`: read, write or admin",
                other.chars().take(16).collect::<String>()
            ))),
        })
        .collect()
}

/// A `api.tokens_file`: `[[tokens]]` entries.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    tokens: Vec<ApiToken>,
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

// `[redis]`: the shared settings of the connection layer (standalone, cluster, Sentinel).
use vidq_redis::RedisSettings;

/// `[jobs]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
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
            redis: RedisSettings::default(),
            jobs: JobSettings {
                deadline: Duration::from_secs(1800),
            },
            api: ApiSettings::default(),
            storage: None,
            webhooks: vidq_core::CallbackPolicy::default(),
            otel: vidq_otel::OtelSettings::default(),
        })
    }
}

impl ProducerSettings {
    /// Loads defaults, then `file`, then `VIDQ__...` from the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        let settings: Self = load_settings(DEFAULTS, file, std::env::vars())?;
        settings
            .redis
            .validate()
            .map_err(|e| SettingsError::Invalid(e.to_string()))?;
        if settings.jobs.deadline < Duration::from_secs(1) {
            return Err(SettingsError::Invalid(
                "jobs.deadline: must be at least 1s".into(),
            ));
        }
        settings.api.quotas.validate()?;
        settings.api.limits.validate()?;
        settings.otel.validate().map_err(SettingsError::Invalid)?;
        let mut settings = settings;
        settings.api.tokens = settings.api.load_tokens()?;
        Ok(settings)
    }
}

impl ApiSettings {
    /// Every token: `tokens` followed by those of `tokens_file`, all checked. The error names
    /// the token (by its name) and what is wrong, never the token or its digest.
    pub fn load_tokens(&self) -> Result<Vec<ApiToken>, SettingsError> {
        let mut tokens = self.tokens.clone();
        if let Some(path) = &self.tokens_file {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| SettingsError::File {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
            let file: TokensFile = load_settings(&text, None, std::iter::empty()).map_err(|e| {
                SettingsError::File {
                    path: shown,
                    reason: e.to_string(),
                }
            })?;
            tokens.extend(file.tokens);
        }
        let all = Self {
            tokens,
            ..self.clone()
        };
        all.validate()?;
        Ok(all.tokens)
    }

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
        if self.events_per_token == 0 {
            return invalid("events_per_token: must be at least 1");
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
            let plain = !token.token.expose_secret().is_empty();
            match (&token.sha256, plain) {
                (Some(_), true) => {
                    return invalid(&format!(
                        "tokens: `{}` has both `token` and `sha256`: give one",
                        token.name
                    ));
                }
                (Some(_), false) if token.digest().is_none() => {
                    return invalid(&format!(
                        "tokens: the sha256 of `{}` must be 64 hex digits",
                        token.name
                    ));
                }
                (None, false) => {
                    return invalid(&format!(
                        "tokens: `{}` needs `token` or `sha256`",
                        token.name
                    ));
                }
                (None, true) if token.token.expose_secret().len() < 16 => {
                    return invalid(&format!(
                        "tokens: the token of `{}` must be at least 16 characters",
                        token.name
                    ));
                }
                _ => {}
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

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn loaded(file: Option<&Path>, vars: &[(&str, &str)]) -> Result<ApiSettings, SettingsError> {
        let s: ProducerSettings = load_settings(DEFAULTS, file, env(vars))?;
        let tokens = s.api.load_tokens()?;
        Ok(ApiSettings { tokens, ..s.api })
    }

    // printf %s 0123456789abcdef-digest | sha256sum
    const DIGEST: &str = "ab997a86a338923ffe0eef99d62cc3aec59eb72303f1ad5837b45972e8571e54";

    #[test]
    fn tokens_as_digests_from_the_environment_and_a_file() {
        use sha2::Digest as _;
        let digest = hex::encode(sha2::Sha256::digest(b"0123456789abcdef-digest"));
        let api = loaded(
            None,
            &[
                ("VIDQ__API__TOKENS__0__NAME", "backend"),
                ("VIDQ__API__TOKENS__0__SHA256", &digest),
                ("VIDQ__API__TOKENS__0__SCOPES", "read,write"),
                ("VIDQ__API__TOKENS__1__NAME", "ops"),
                ("VIDQ__API__TOKENS__1__TOKEN", "0123456789abcdef-plain"),
                ("VIDQ__API__TOKENS__1__SCOPES", "admin"),
            ],
        )
        .unwrap();
        assert_eq!(api.tokens.len(), 2);
        assert_eq!(api.tokens[0].name, "backend");
        assert_eq!(api.tokens[0].scopes, [Scope::Read, Scope::Write]);
        assert_eq!(
            api.tokens[0].digest(),
            Some(sha2::Sha256::digest(b"0123456789abcdef-digest").into())
        );
        assert_eq!(api.tokens[1].scopes, [Scope::Admin]);
        let shown = format!("{api:?}");
        assert!(
            !shown.contains(&digest) && !shown.contains("plain"),
            "{shown}"
        );

        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens.toml");
        std::fs::write(
            &tokens,
            format!("[[tokens]]\nname = \"file\"\nsha256 = \"{DIGEST}\"\nscopes = [\"read\"]\n"),
        )
        .unwrap();
        let api = loaded(
            None,
            &[("VIDQ__API__TOKENS_FILE", tokens.to_str().unwrap())],
        )
        .unwrap();
        assert_eq!(api.tokens.len(), 1);
        assert_eq!(api.tokens[0].name, "file");
    }

    #[test]
    fn a_bad_token_is_named_without_its_secret() {
        for (vars, wanted) in [
            (
                vec![
                    ("VIDQ__API__TOKENS__0__NAME", "backend"),
                    ("VIDQ__API__TOKENS__0__SHA256", "abc123-not-a-digest"),
                    ("VIDQ__API__TOKENS__0__SCOPES", "read"),
                ],
                "the sha256 of `backend` must be 64 hex digits",
            ),
            (
                vec![
                    ("VIDQ__API__TOKENS__0__NAME", "backend"),
                    ("VIDQ__API__TOKENS__0__SHA256", DIGEST),
                    ("VIDQ__API__TOKENS__0__TOKEN", "0123456789abcdef-both"),
                    ("VIDQ__API__TOKENS__0__SCOPES", "read"),
                ],
                "`backend` has both `token` and `sha256`",
            ),
            (
                vec![
                    ("VIDQ__API__TOKENS__0__NAME", "backend"),
                    ("VIDQ__API__TOKENS__0__SCOPES", "read"),
                ],
                "`backend` needs `token` or `sha256`",
            ),
            (
                vec![
                    ("VIDQ__API__TOKENS__0__NAME", "backend"),
                    ("VIDQ__API__TOKENS__0__TOKEN", "0123456789abcdef-scope"),
                    ("VIDQ__API__TOKENS__0__SCOPES", "read,sudo"),
                ],
                "unknown scope `sudo`",
            ),
        ] {
            let err = loaded(None, &vars).unwrap_err().to_string();
            assert!(err.contains(wanted), "{err}");
            for secret in ["abc123", DIGEST, "0123456789abcdef"] {
                assert!(!err.contains(secret), "{err}");
            }
        }
        let err = loaded(
            None,
            &[("VIDQ__API__TOKENS_FILE", "/nonexistent/tokens.toml")],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/tokens.toml"),
            "{err}"
        );
    }

    #[test]
    fn the_callback_policy_is_the_workers_webhooks_section() {
        let s: ProducerSettings = load_settings(
            DEFAULTS,
            None,
            env(&[
                ("VIDQ__WEBHOOKS__ALLOW_HTTP_HOSTS", "127.0.0.1"),
                ("VIDQ__WEBHOOKS__ALLOW_PRIVATE", "true"),
                ("VIDQ__WEBHOOKS__SECRET", "ignored-here"),
            ]),
        )
        .unwrap();
        assert_eq!(s.webhooks.allow_http_hosts, ["127.0.0.1"]);
        assert!(s.webhooks.allow_private);
        assert_eq!(
            ProducerSettings::default().webhooks,
            vidq_core::CallbackPolicy::default()
        );
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
