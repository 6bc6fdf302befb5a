//! Sessions: a random id in an `HttpOnly; SameSite=Strict; Path=/console` cookie, and in Redis
//! under `<prefix>:console:session:<sha256 of the id>` the principal (the token's name and
//! scopes, never the token), the SHA-256 digest of the token (checked against the configured
//! tokens on every request, so a session ends when its token is removed) and the session's
//! CSRF token, expiring after the session TTL.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use redis::AsyncCommands as _;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;
use vidq_redis::Conn;

use crate::Principal;

/// The cookie's name.
pub(crate) const COOKIE: &str = "vidq_console";

/// A signed-in operator's session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Session {
    pub(crate) principal: Principal,
    /// Every action form carries it; a POST without it is refused.
    pub(crate) csrf: String,
    /// Hex SHA-256 of the token signed in with (the token itself is never stored).
    pub(crate) token_digest: String,
}

/// Hex SHA-256 of `token`.
pub(crate) fn token_digest(token: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(token.as_bytes()).into()
}

impl Session {
    /// The digest of the session's token, if well formed.
    pub(crate) fn digest(&self) -> Option<[u8; 32]> {
        let bytes = hex::decode(&self.token_digest).ok()?;
        bytes.try_into().ok()
    }
}

impl Session {
    /// Whether `presented` is this session's CSRF token (compared in constant time).
    pub(crate) fn csrf_matches(&self, presented: &str) -> bool {
        !presented.is_empty() && bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// Where sessions live.
#[derive(Clone)]
pub(crate) struct Sessions {
    conn: Conn,
    prefix: String,
    ttl: Duration,
}

fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl Sessions {
    pub(crate) fn new(conn: Conn, prefix: &str, ttl: Duration) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
            ttl,
        }
    }

    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The Redis key of session `id`: a digest, so reading Redis gives no usable cookie.
    fn key(&self, id: &str) -> String {
        use sha2::Digest as _;
        let digest = hex::encode(sha2::Sha256::digest(id.as_bytes()));
        format!("{}:console:session:{digest}", self.prefix)
    }

    /// Starts a session for `principal`; returns its id (the cookie's value).
    pub(crate) async fn create(
        &self,
        principal: Principal,
        digest: &[u8; 32],
    ) -> Result<String, redis::RedisError> {
        let id = random_hex();
        let session = Session {
            principal,
            csrf: random_hex(),
            token_digest: hex::encode(digest),
        };
        let value = serde_json::to_string(&session).map_err(|e| {
            redis::RedisError::from((redis::ErrorKind::Client, "session", e.to_string()))
        })?;
        let ttl_ms = u64::try_from(self.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut conn = self.conn.clone();
        let _: () = redis::cmd("SET")
            .arg(self.key(&id))
            .arg(value)
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut conn)
            .await?;
        Ok(id)
    }

    /// The session whose id the request's cookie carries, if it exists and is well formed.
    pub(crate) async fn find(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<Session>, redis::RedisError> {
        let Some(id) = cookie(headers) else {
            return Ok(None);
        };
        let mut conn = self.conn.clone();
        let raw: Option<String> = conn.get(self.key(&id)).await?;
        Ok(raw.and_then(|raw| serde_json::from_str(&raw).ok()))
    }

    /// Sign-in attempts from `client` allowed by a GCRA limit kept in Redis by Redis's clock
    /// (`<prefix>:console:signin:<client>`): `per_minute` a minute, bursts of `burst`. `Err`
    /// carries the wait before the next attempt may go.
    pub(crate) async fn admit_sign_in(
        &self,
        client: &str,
        per_minute: u32,
        burst: u32,
    ) -> Result<Result<(), Duration>, redis::RedisError> {
        static GCRA: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(include_str!("signin.lua")));
        let interval_ms = 60_000 / u64::from(per_minute.max(1));
        let mut conn = self.conn.clone();
        let wait_ms: u64 = GCRA
            .key(format!("{}:console:signin:{client}", self.prefix))
            .arg(interval_ms)
            .arg(interval_ms * u64::from(burst.max(1)))
            .invoke_async(&mut conn)
            .await?;
        Ok(if wait_ms == 0 {
            Ok(())
        } else {
            Err(Duration::from_millis(wait_ms))
        })
    }

    /// Ends the session the request's cookie names.
    pub(crate) async fn delete(&self, headers: &HeaderMap) -> Result<(), redis::RedisError> {
        if let Some(id) = cookie(headers) {
            let mut conn = self.conn.clone();
            let _: i64 = conn.del(self.key(&id)).await?;
        }
        Ok(())
    }
}

/// The session id of the request's `vidq_console` cookie (64 hex digits, else ignored).
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `Set-Cookie` for session `id` (`Secure` when `secure`).
pub(crate) fn set_cookie(id: &str, ttl: Duration, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let value = format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/console; Max-Age={}{secure}",
        ttl.as_secs()
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Set-Cookie` that removes the session cookie.
pub(crate) fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("vidq_console=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0")
}
