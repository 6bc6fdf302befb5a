//! `[redis]`: which Redis shape vidq talks to, and how.

use std::fmt;
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo as _};
use serde::{Deserialize, Deserializer};

use crate::error::RedisError;

/// The shape of the Redis deployment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One server (`url`); a managed primary endpoint that fails over by DNS counts as one.
    #[default]
    Standalone,
    /// Redis Cluster, discovered from the seed nodes in `urls`.
    Cluster,
    /// A primary with replicas behind Sentinel: `sentinels` and `master_name`.
    Sentinel,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Standalone => "standalone",
            Self::Cluster => "cluster",
            Self::Sentinel => "sentinel",
        })
    }
}

/// `[redis]` of both the worker and `vidq`.
///
/// - standalone: `url` (`redis://` or `rediss://`, `user:password@` in it).
/// - cluster: `urls`, the seed nodes (any few of the cluster's nodes); TLS and the password
///   come from the first of them (`rediss://:password@host:port`).
/// - sentinel: `sentinels` (each `redis://` or `rediss://`, with the Sentinel's own password
///   if it has one) and `master_name`; the primary and replicas are reached with the scheme
///   (`rediss://` = TLS), user, password and database of `url`, whose host and port are not
///   used (the Sentinels say where the primary is).
///
/// Lists may be given in the environment comma-separated:
/// `VIDQ__REDIS__URLS="redis://a:6379,redis://b:6379"`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `standalone` (default), `cluster` or `sentinel`.
    #[serde(default)]
    pub mode: Mode,
    /// Standalone: the server. Sentinel: scheme, credentials and database of the primary.
    #[serde(default = "default_url")]
    pub url: String,
    /// Cluster: seed nodes.
    #[serde(default, deserialize_with = "list")]
    pub urls: Vec<String>,
    /// Sentinel: the Sentinels.
    #[serde(default, deserialize_with = "list")]
    pub sentinels: Vec<String>,
    /// Sentinel: the name the Sentinels monitor the primary under.
    #[serde(default)]
    pub master_name: Option<String>,
    /// After a write a client relies on (a job created, an upstream id stored), wait until
    /// this many replicas hold it (`WAIT`); 0 (default) does not wait.
    #[serde(default)]
    pub min_replicas_acked: u32,
    /// Longest such wait; a shorter acknowledgement is logged and counted
    /// (`vidq_redis_wait_short_total`), never an error.
    #[serde(with = "humantime_serde", default = "default_replication_timeout")]
    pub replication_timeout: Duration,
    /// Prefix of every key vidq writes (the workers' and the API's must match).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// How long `/readyz` answers 503 after this process saw Redis lose its data (the epoch
    /// marker `<prefix>:epoch`, read every 2 s, was missing or had changed).
    #[serde(with = "humantime_serde", default = "default_epoch_unready_for")]
    pub epoch_unready_for: Duration,
}

fn default_url() -> String {
    "redis://127.0.0.1:6379".to_owned()
}

fn default_prefix() -> String {
    "vidq".to_owned()
}

fn default_replication_timeout() -> Duration {
    Duration::from_millis(500)
}

fn default_epoch_unready_for() -> Duration {
    Duration::from_secs(60)
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            mode: Mode::Standalone,
            url: default_url(),
            urls: Vec::new(),
            sentinels: Vec::new(),
            master_name: None,
            min_replicas_acked: 0,
            replication_timeout: default_replication_timeout(),
            prefix: default_prefix(),
            epoch_unready_for: default_epoch_unready_for(),
        }
    }
}

impl RedisSettings {
    /// Standalone settings for one server at `url` (tests, tools).
    pub fn standalone(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// Cluster settings with these seed nodes.
    pub fn cluster(urls: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            mode: Mode::Cluster,
            urls: urls.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Sentinel settings.
    pub fn sentinel(
        sentinels: impl IntoIterator<Item = impl Into<String>>,
        master_name: impl Into<String>,
    ) -> Self {
        Self {
            mode: Mode::Sentinel,
            sentinels: sentinels.into_iter().map(Into::into).collect(),
            master_name: Some(master_name.into()),
            ..Self::default()
        }
    }

    /// Checks the combination; the error names the setting and never shows a password.
    pub fn validate(&self) -> Result<(), RedisError> {
        let invalid = |setting: &str, reason: String| {
            Err(RedisError::Invalid {
                setting: setting.to_owned(),
                reason,
            })
        };
        match self.mode {
            Mode::Standalone => {
                parse_url("redis.url", &self.url)?;
            }
            Mode::Cluster => {
                if self.urls.is_empty() {
                    return invalid(
                        "redis.urls",
                        "mode = \"cluster\" needs the seed nodes in redis.urls".into(),
                    );
                }
                for (i, url) in self.urls.iter().enumerate() {
                    parse_url(&format!("redis.urls[{i}]"), url)?;
                }
            }
            Mode::Sentinel => {
                if self.sentinels.is_empty() {
                    return invalid(
                        "redis.sentinels",
                        "mode = \"sentinel\" needs the Sentinels in redis.sentinels".into(),
                    );
                }
                for (i, url) in self.sentinels.iter().enumerate() {
                    parse_url(&format!("redis.sentinels[{i}]"), url)?;
                }
                match &self.master_name {
                    Some(name) if !name.trim().is_empty() => {}
                    _ => {
                        return invalid(
                            "redis.master_name",
                            "mode = \"sentinel\" needs the monitored primary's name".into(),
                        );
                    }
                }
                parse_url("redis.url", &self.url)?;
            }
        }
        if self.min_replicas_acked > 0 && self.replication_timeout.is_zero() {
            return invalid(
                "redis.replication_timeout",
                "must be more than 0 when redis.min_replicas_acked > 0 (WAIT 0 waits forever)"
                    .into(),
            );
        }
        if self.prefix.is_empty() || self.prefix.contains(['{', '}']) {
            return invalid(
                "redis.prefix",
                "must be non-empty and hold no braces".into(),
            );
        }
        Ok(())
    }

    /// Where this connects, for logs: the mode and its URLs with passwords masked.
    pub fn describe(&self) -> String {
        match self.mode {
            Mode::Standalone => format!("standalone {}", mask_url(&self.url)),
            Mode::Cluster => format!(
                "cluster [{}]",
                self.urls
                    .iter()
                    .map(|u| mask_url(u))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Mode::Sentinel => format!(
                "sentinel {} via [{}]",
                self.master_name.as_deref().unwrap_or(""),
                self.sentinels
                    .iter()
                    .map(|u| mask_url(u))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let masked = |v: &[String]| v.iter().map(|u| mask_url(u)).collect::<Vec<_>>();
        f.debug_struct("RedisSettings")
            .field("mode", &self.mode)
            .field("url", &mask_url(&self.url))
            .field("urls", &masked(&self.urls))
            .field("sentinels", &masked(&self.sentinels))
            .field("master_name", &self.master_name)
            .field("min_replicas_acked", &self.min_replicas_acked)
            .field("replication_timeout", &self.replication_timeout)
            .field("prefix", &self.prefix)
            .field("epoch_unready_for", &self.epoch_unready_for)
            .finish()
    }
}

/// `url` with its password (if any) replaced by `***`; something that is no URL at all is
/// shown as `<unparsable URL>` (it might be a password pasted in the wrong place).
pub fn mask_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

/// Parses one URL of setting `setting`; the error shows it masked.
pub(crate) fn parse_url(setting: &str, url: &str) -> Result<ConnectionInfo, RedisError> {
    let scheme_ok = url.starts_with("redis://") || url.starts_with("rediss://");
    let info = if scheme_ok {
        url.into_connection_info().ok()
    } else {
        None
    };
    match info {
        Some(info) if !matches!(info.addr(), ConnectionAddr::Unix(_)) => Ok(info),
        _ => Err(RedisError::Invalid {
            setting: setting.to_owned(),
            reason: format!(
                "{} is not a redis:// or rediss:// URL with a host",
                mask_url(url)
            ),
        }),
    }
}

/// A list given either as a list or as one comma-separated string (the environment).
fn list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        OneOrMany::Many(items) => items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Wrap {
        redis: RedisSettings,
    }

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<RedisSettings, String> {
        let vars: config::Map<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let config = config::Config::builder()
            .add_source(config::File::from_str(toml, config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("VIDQ")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(vars)),
            )
            .build()
            .map_err(|e| e.to_string())?;
        let wrap: Wrap = config.try_deserialize().map_err(|e| e.to_string())?;
        wrap.redis.validate().map_err(|e| e.to_string())?;
        Ok(wrap.redis)
    }

    const TODAY: &str = "[redis]\nurl = \"redis://127.0.0.1:6379\"\nprefix = \"vidq\"\nepoch_unready_for = \"60s\"\n";

    #[test]
    fn todays_settings_still_load_as_standalone() {
        let s = load(TODAY, &[]).unwrap();
        assert_eq!(s.mode, Mode::Standalone);
        assert_eq!(s.url, "redis://127.0.0.1:6379");
        assert_eq!(s.min_replicas_acked, 0);
        assert_eq!(s.replication_timeout, Duration::from_millis(500));
        assert_eq!(s.epoch_unready_for, Duration::from_secs(60));
    }

    #[test]
    fn cluster_urls_from_the_environment_comma_separated() {
        let s = load(
            TODAY,
            &[
                ("VIDQ__REDIS__MODE", "cluster"),
                (
                    "VIDQ__REDIS__URLS",
                    "redis://10.0.0.1:7000, redis://10.0.0.2:7001",
                ),
                ("VIDQ__REDIS__MIN_REPLICAS_ACKED", "1"),
            ],
        )
        .unwrap();
        assert_eq!(s.mode, Mode::Cluster);
        assert_eq!(s.urls, ["redis://10.0.0.1:7000", "redis://10.0.0.2:7001"]);
        assert_eq!(s.min_replicas_acked, 1);
        let one = load(
            TODAY,
            &[
                ("VIDQ__REDIS__MODE", "cluster"),
                ("VIDQ__REDIS__URLS", "redis://10.0.0.1:7000"),
            ],
        )
        .unwrap();
        assert_eq!(one.urls, ["redis://10.0.0.1:7000"]);
    }

    #[test]
    fn sentinel_from_a_file_with_lists() {
        let toml = format!(
            "{TODAY}mode = \"sentinel\"\nsentinels = [\"redis://s1:26379\", \"redis://s2:26379\"]\nmaster_name = \"mymaster\"\n"
        );
        let s = load(&toml, &[]).unwrap();
        assert_eq!(s.mode, Mode::Sentinel);
        assert_eq!(s.sentinels.len(), 2);
        assert_eq!(s.master_name.as_deref(), Some("mymaster"));
    }

    #[test]
    fn misconfigurations_name_the_setting() {
        let err = load(TODAY, &[("VIDQ__REDIS__MODE", "cluster")]).unwrap_err();
        assert!(err.contains("redis.urls"), "{err}");
        let err = load(
            TODAY,
            &[
                ("VIDQ__REDIS__MODE", "sentinel"),
                ("VIDQ__REDIS__SENTINELS", "redis://s1:26379"),
            ],
        )
        .unwrap_err();
        assert!(err.contains("redis.master_name"), "{err}");
        let err = load(TODAY, &[("VIDQ__REDIS__MODE", "sentinel")]).unwrap_err();
        assert!(err.contains("redis.sentinels"), "{err}");
        let err = load(TODAY, &[("VIDQ__REDIS__MODE", "clustered")]).unwrap_err();
        assert!(err.contains("mode") && err.contains("clustered"), "{err}");
        let err = load(
            TODAY,
            &[
                ("VIDQ__REDIS__MIN_REPLICAS_ACKED", "1"),
                ("VIDQ__REDIS__REPLICATION_TIMEOUT", "0s"),
            ],
        )
        .unwrap_err();
        assert!(err.contains("redis.replication_timeout"), "{err}");
        let err = load(TODAY, &[("VIDQ__REDIS__UNKNOWN", "1")]).unwrap_err();
        assert!(err.contains("unknown"), "{err}");
    }

    #[test]
    fn passwords_never_show() {
        let err = load(
            TODAY,
            &[
                ("VIDQ__REDIS__MODE", "cluster"),
                (
                    "VIDQ__REDIS__URLS",
                    "redis://ok:7000,http://:hunter2@host:7001",
                ),
            ],
        )
        .unwrap_err();
        assert!(err.contains("redis.urls[1]"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let s = RedisSettings::cluster(["rediss://user:hunter2@h:7000"]);
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!s.describe().contains("hunter2"));
        assert!(s.describe().contains("***"), "{}", s.describe());
        assert_eq!(mask_url("hunter2"), "<unparsable URL>");
    }
}
