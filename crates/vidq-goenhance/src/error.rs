//! The typed error of every client call, and how the task layer should treat it.

use std::time::Duration;

/// What can go wrong talking to GoEnhanceAI.
///
/// The caller decides retry vs. give up in one `match`, or with [`Error::is_retryable`] and
/// [`Error::retry_after`]. No variant ever carries the API key; messages stay short.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// HTTP 429, or envelope code 429 (the plan's concurrent-job limit is reached).
    #[error("rate limited by GoEnhanceAI{}", retry_hint(*.retry_after))]
    RateLimited {
        /// How long the upstream asked us to wait (`Retry-After`), when it said.
        retry_after: Option<Duration>,
    },
    /// HTTP 401/403 or envelope code 401: the API key is wrong or revoked.
    #[error("GoEnhanceAI rejected the API key")]
    Unauthorized,
    /// Envelope code 400, or any other unknown non-zero code: the request itself is wrong.
    #[error("GoEnhanceAI rejected the request (code {code}): {reason}")]
    InvalidRequest {
        /// The envelope code (or the HTTP status when the body was not an envelope).
        code: i64,
        /// The upstream's `msg`, verbatim (for humans; never matched on).
        reason: String,
    },
    /// Envelope code 402: the account has not enough credits for this job.
    #[error("insufficient GoEnhanceAI credits: {reason}")]
    InsufficientCredits {
        /// The upstream's `msg`, verbatim.
        reason: String,
    },
    /// Envelope code 404: the upstream does not know this `img_uuid`.
    #[error("GoEnhanceAI does not know this job")]
    NotFound,
    /// HTTP 5xx (with or without a JSON body), or an envelope code in 500..=599.
    #[error("GoEnhanceAI server error (status {status})")]
    Upstream {
        /// The HTTP status, or the envelope code when HTTP said 200.
        status: u16,
    },
    /// The connection failed, was reset or dropped before a full response arrived.
    #[error("network error talking to GoEnhanceAI")]
    Network(#[source] reqwest::Error),
    /// The call did not finish within the configured timeout.
    #[error("GoEnhanceAI call timed out")]
    Timeout,
    /// HTTP 2xx whose body is not the documented envelope (or whose `data` does not fit).
    #[error("malformed GoEnhanceAI response: {excerpt:?}")]
    Malformed {
        /// The start of the body, at most [`MAX_EXCERPT`] characters.
        excerpt: String,
    },
    /// The settings cannot build a client.
    #[error("invalid setting `{field}`: {reason}")]
    InvalidSettings {
        /// The dotted settings key, e.g. `goenhance.base_url`.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
}

/// Longest body excerpt kept in [`Error::Malformed`] and non-envelope [`Error::InvalidRequest`].
pub const MAX_EXCERPT: usize = 200;

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether trying the same call again later may succeed.
    ///
    /// Rate limits, server errors, network failures, timeouts and malformed replies are
    /// transient; a bad key, a bad request, missing credits, an unknown job or bad settings are
    /// not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::RateLimited { .. }
            | Self::Upstream { .. }
            | Self::Network(_)
            | Self::Timeout
            | Self::Malformed { .. } => true,
            Self::Unauthorized
            | Self::InvalidRequest { .. }
            | Self::InsufficientCredits { .. }
            | Self::NotFound
            | Self::InvalidSettings { .. } => false,
        }
    }

    /// The wait the upstream asked for, if any (only [`Error::RateLimited`] carries one).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// A short label for logs and metrics (`rate_limited`, `timeout`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::Unauthorized => "unauthorized",
            Self::InvalidRequest { .. } => "invalid_request",
            Self::InsufficientCredits { .. } => "insufficient_credits",
            Self::NotFound => "not_found",
            Self::Upstream { .. } => "upstream",
            Self::Network(_) => "network",
            Self::Timeout => "timeout",
            Self::Malformed { .. } => "malformed",
            Self::InvalidSettings { .. } => "invalid_settings",
        }
    }

    /// Classifies a transport error from reqwest; drops the URL from its message.
    pub(crate) fn from_transport(err: reqwest::Error) -> Self {
        if err.is_timeout() {
            Self::Timeout
        } else {
            Self::Network(err.without_url())
        }
    }

    /// A [`Error::Malformed`] holding the start of `body`.
    pub(crate) fn malformed(body: &[u8]) -> Self {
        Self::Malformed {
            excerpt: excerpt(body),
        }
    }
}

/// The first [`MAX_EXCERPT`] characters of a body, lossily decoded.
pub(crate) fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .take(MAX_EXCERPT)
        .collect()
}

fn retry_hint(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(wait) => format!(" (retry after {} s)", wait.as_secs()),
        None => String::new(),
    }
}
