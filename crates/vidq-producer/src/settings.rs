//! The producer's settings (`[log]`, `[redis]`, `[jobs]`), layered like every vidq binary's.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use vidq_core::{LogSettings, SettingsError, load_settings};

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
}

/// `[redis]`.
#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    /// `redis://` or `rediss://` URL.
    pub url: String,
    /// Prefix of every key; must match the workers'.
    pub prefix: String,
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
            },
            jobs: JobSettings {
                deadline: Duration::from_secs(1800),
            },
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
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse() {
        let s: ProducerSettings = load_settings(DEFAULTS, None, std::iter::empty()).unwrap();
        assert_eq!(s.jobs.deadline, Duration::from_secs(1800));
        assert_eq!(s.redis.prefix, "vidq");
    }
}
