//! Layered settings: defaults → optional file → `VIDQ__SECTION__KEY` environment.

use std::path::Path;

use config::{Config, Environment, File, FileFormat};
use serde::de::DeserializeOwned;

/// The environment prefix of every vidq setting: `VIDQ__REDIS__URL` sets `redis.url`.
pub const ENV_PREFIX: &str = "VIDQ";

/// Why the settings could not be loaded. Each variant names what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The settings file given on the command line could not be read or parsed.
    #[error("settings file {path}: {reason}")]
    File { path: String, reason: String },
    /// A setting is missing or has the wrong type or value.
    #[error("invalid setting: {0}")]
    Invalid(String),
}

/// Loads settings of type `T` in layers: `defaults` (TOML text, usually compiled in), then
/// `file` when given (TOML; it must exist), then environment variables named
/// `VIDQ__SECTION__KEY` (double underscores separate the levels; values are parsed as numbers
/// or booleans where they look like one).
///
/// `vars` is the environment to read, so tests can pass their own; binaries pass
/// `std::env::vars()`.
pub fn load_settings<T: DeserializeOwned>(
    defaults: &str,
    file: Option<&Path>,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<T, SettingsError> {
    let mut builder = Config::builder().add_source(File::from_str(defaults, FileFormat::Toml));
    if let Some(path) = file {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SettingsError::File {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        // Parse the file on its own first so a syntax error is reported against the file.
        Config::builder()
            .add_source(File::from_str(&text, FileFormat::Toml))
            .build()
            .map_err(|e| SettingsError::File {
                path: shown,
                reason: e.to_string(),
            })?;
        builder = builder.add_source(File::from_str(&text, FileFormat::Toml));
    }
    let env: config::Map<String, String> = vars
        .into_iter()
        .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
        .collect();
    builder = builder.add_source(
        Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(Some(env)),
    );
    let config = builder
        .build()
        .map_err(|e| SettingsError::Invalid(e.to_string()))?;
    config
        .try_deserialize()
        .map_err(|e| SettingsError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Demo {
        redis: Redis,
    }
    #[derive(Debug, Deserialize)]
    struct Redis {
        url: String,
        pool_size: u32,
    }

    const DEFAULTS: &str = "[redis]\nurl = \"redis://127.0.0.1:6379\"\npool_size = 4\n";

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_then_file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vidq.toml");
        std::fs::write(&path, "[redis]\npool_size = 8\n").unwrap();

        let only_defaults: Demo = load_settings(DEFAULTS, None, env(&[])).unwrap();
        assert_eq!(only_defaults.redis.pool_size, 4);

        let with_file: Demo = load_settings(DEFAULTS, Some(&path), env(&[])).unwrap();
        assert_eq!(with_file.redis.pool_size, 8);
        assert_eq!(with_file.redis.url, "redis://127.0.0.1:6379");

        let with_env: Demo = load_settings(
            DEFAULTS,
            Some(&path),
            env(&[
                ("VIDQ__REDIS__POOL_SIZE", "16"),
                ("VIDQ__REDIS__URL", "redis://10.0.0.1"),
            ]),
        )
        .unwrap();
        assert_eq!(with_env.redis.pool_size, 16);
        assert_eq!(with_env.redis.url, "redis://10.0.0.1");
    }

    #[test]
    fn invalid_value_names_the_setting() {
        let err = load_settings::<Demo>(DEFAULTS, None, env(&[("VIDQ__REDIS__POOL_SIZE", "lots")]))
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("pool_size"), "{text}");
    }

    #[test]
    fn missing_value_names_the_setting() {
        let err = load_settings::<Demo>("[redis]\npool_size = 1\n", None, env(&[])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("url"), "{text}");
    }

    #[test]
    fn missing_file_names_the_file() {
        let err = load_settings::<Demo>(
            DEFAULTS,
            Some(Path::new("/nonexistent/vidq.toml")),
            env(&[]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/vidq.toml"), "{err}");
    }
}
