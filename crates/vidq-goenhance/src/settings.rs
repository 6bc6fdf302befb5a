//! The `[goenhance]` settings section, which builds the [`Client`].

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{Client, Result};

/// The public GoEnhanceAI endpoint.
pub const DEFAULT_BASE_URL: &str = "https://api.goenhance.ai";

/// Settings of the GoEnhanceAI client (the `[goenhance]` section).
///
/// Only `api_key` is required; `Debug` shows it as `[REDACTED]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    /// Where the API lives; tests and demos point it at `vidq-sim`.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The Bearer key. Never logged, never in an error or `Debug` output.
    pub api_key: SecretString,
    /// Budget of one whole call (connect, send, read the reply).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Budget of establishing the connection.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// The `User-Agent` header sent with every call.
    #[serde(default = "default_user_agent")]
    pub user_agent: String,
}

impl ClientSettings {
    /// Settings with every default and the given key.
    pub fn new(api_key: impl Into<SecretString>) -> Self {
        Self {
            base_url: default_base_url(),
            api_key: api_key.into(),
            timeout: default_timeout(),
            connect_timeout: default_connect_timeout(),
            user_agent: default_user_agent(),
        }
    }

    /// The same settings pointed at another base URL (a simulator, a proxy).
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// The same settings with another per-call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Builds the client these settings describe; refuses an unusable base URL or key.
    pub fn client(&self) -> Result<Client> {
        Client::new(self)
    }

    pub(crate) fn api_key_is_blank(&self) -> bool {
        self.api_key.expose_secret().trim().is_empty()
    }
}

impl fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSettings")
            .field("base_url", &self.base_url)
            .field("api_key", &"[REDACTED]")
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_owned()
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_user_agent() -> String {
    concat!("vidq/", env!("CARGO_PKG_VERSION")).to_owned()
}
