//! Errors of the connection layer.

/// Why a connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// A `[redis]` setting is missing, malformed or contradicts another.
    #[error("{setting}: {reason}")]
    Invalid {
        /// The setting, e.g. `redis.urls[1]`.
        setting: String,
        /// What is wrong (URLs shown with their password masked).
        reason: String,
    },
    /// Redis answered with an error or could not be reached.
    #[error("{context}: {source}")]
    Redis {
        /// What we were doing, e.g. `connecting to the cluster`.
        context: String,
        /// The client's error (it never holds a password).
        #[source]
        source: redis::RedisError,
    },
}

impl RedisError {
    pub(crate) fn redis(context: impl Into<String>) -> impl FnOnce(redis::RedisError) -> Self {
        let context = context.into();
        move |source| Self::Redis { context, source }
    }
}
