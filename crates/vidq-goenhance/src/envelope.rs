//! The response envelope and THE one place where HTTP statuses and envelope codes become
//! [`Error`] variants.
//!
//! Every JSON reply is `{"code": int, "msg": string, "data": object | null}`, `code == 0`
//! meaning success. The real service's non-zero codes are undocumented; the mapping below is
//! the one `vidq-sim` implements and is checked first by HTTP status, then by envelope code:
//!
//! | HTTP status | envelope code | error |
//! | --- | --- | --- |
//! | 429 | any | [`Error::RateLimited`] with `Retry-After` (seconds or HTTP-date) |
//! | 401, 403 | any | [`Error::Unauthorized`] |
//! | 5xx | any, or no JSON | [`Error::Upstream`] with the HTTP status |
//! | 2xx | not an envelope | [`Error::Malformed`] with a body excerpt |
//! | other | not an envelope | [`Error::InvalidRequest`] with the HTTP status as code |
//! | 2xx | 0 | success |
//! | 2xx / 4xx | 401 | [`Error::Unauthorized`] |
//! | 2xx / 4xx | 402 | [`Error::InsufficientCredits`] with `msg` |
//! | 2xx / 4xx | 404 | [`Error::NotFound`] (unknown `img_uuid`) |
//! | 2xx / 4xx | 429 | [`Error::RateLimited`] (the plan's queue limit) |
//! | 2xx / 4xx | 500..=599 | [`Error::Upstream`] with the code as status |
//! | 2xx / 4xx | 400, anything else | [`Error::InvalidRequest`] with code and `msg` |
//!
//! `msg` is kept for humans and never matched on: its wording and case vary.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result, excerpt};

/// The decoded success part of a reply.
#[derive(Debug)]
pub(crate) struct Reply {
    /// `data`, `Value::Null` when absent.
    pub(crate) data: Value,
    /// The top-level `request_id`, when the upstream sent one.
    pub(crate) request_id: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    code: i64,
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    request_id: Option<String>,
}

/// Classifies one HTTP reply: the envelope's payload, or the error it stands for.
pub(crate) fn classify(
    status: StatusCode,
    retry_after: Option<&HeaderValue>,
    body: &[u8],
) -> Result<Reply> {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(Error::RateLimited {
            retry_after: retry_after.and_then(parse_retry_after),
        });
    }
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(Error::Unauthorized);
    }
    if status.is_server_error() {
        return Err(Error::Upstream {
            status: status.as_u16(),
        });
    }
    let envelope: Envelope = match serde_json::from_slice(body) {
        Ok(envelope) => envelope,
        Err(_) if status.is_success() => return Err(Error::malformed(body)),
        Err(_) => {
            return Err(Error::InvalidRequest {
                code: i64::from(status.as_u16()),
                reason: excerpt(body),
            });
        }
    };
    let reason = envelope.msg.unwrap_or_default();
    match envelope.code {
        0 if status.is_success() => Ok(Reply {
            data: envelope.data,
            request_id: envelope.request_id,
        }),
        0 => Err(Error::InvalidRequest {
            code: i64::from(status.as_u16()),
            reason,
        }),
        401 => Err(Error::Unauthorized),
        402 => Err(Error::InsufficientCredits { reason }),
        404 => Err(Error::NotFound),
        429 => Err(Error::RateLimited {
            retry_after: retry_after.and_then(parse_retry_after),
        }),
        code @ 500..=599 => Err(Error::Upstream {
            // The range pattern guarantees the conversion.
            status: u16::try_from(code).unwrap_or(500),
        }),
        code => Err(Error::InvalidRequest { code, reason }),
    }
}

/// Decodes `data` into the caller's type; a mismatch is a malformed reply.
pub(crate) fn decode<T: DeserializeOwned>(data: Value) -> Result<T> {
    T::deserialize(&data).map_err(|err| Error::Malformed {
        excerpt: excerpt(format!("{err}; data: {data}").as_bytes()),
    })
}

/// `Retry-After` as delay-seconds or an HTTP-date (a date in the past means "now").
pub(crate) fn parse_retry_after(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_json(status: u16, body: &str) -> Result<Reply> {
        let status = StatusCode::from_u16(status).unwrap();
        classify(status, None, body.as_bytes())
    }

    #[test]
    fn envelope_codes_map_to_variants() {
        let ok = classify_json(
            200,
            r#"{"code":0,"msg":"OK","data":{"a":1},"request_id":"r"}"#,
        );
        let ok = ok.unwrap();
        assert_eq!(ok.data["a"], 1);
        assert_eq!(ok.request_id.as_deref(), Some("r"));

        let err = classify_json(200, r#"{"code":402,"msg":"no credits","data":null}"#);
        assert!(
            matches!(err, Err(Error::InsufficientCredits { ref reason }) if reason == "no credits")
        );
        let err = classify_json(200, r#"{"code":404,"msg":"x","data":null}"#);
        assert!(matches!(err, Err(Error::NotFound)));
        let err = classify_json(200, r#"{"code":429,"msg":"x","data":null}"#);
        assert!(matches!(err, Err(Error::RateLimited { retry_after: None })));
        let err = classify_json(200, r#"{"code":503,"msg":"x"}"#);
        assert!(matches!(err, Err(Error::Upstream { status: 503 })));
        let err = classify_json(200, r#"{"code":1234,"msg":"odd"}"#);
        assert!(matches!(err, Err(Error::InvalidRequest { code: 1234, .. })));
        let err = classify_json(400, r#"{"code":0,"msg":"odd"}"#);
        assert!(matches!(err, Err(Error::InvalidRequest { code: 400, .. })));
    }

    #[test]
    fn http_statuses_win_over_bodies() {
        let err = classify_json(503, "<html>bad gateway</html>");
        assert!(matches!(err, Err(Error::Upstream { status: 503 })));
        let err = classify_json(403, r#"{"code":0}"#);
        assert!(matches!(err, Err(Error::Unauthorized)));
        let err = classify_json(404, "not found");
        assert!(matches!(err, Err(Error::InvalidRequest { code: 404, .. })));
    }

    #[test]
    fn malformed_excerpt_is_bounded() {
        let body = "x".repeat(10_000);
        match classify_json(200, &body) {
            Err(Error::Malformed { excerpt }) => assert_eq!(excerpt.len(), 200),
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let secs = HeaderValue::from_static("7");
        assert_eq!(parse_retry_after(&secs), Some(Duration::from_secs(7)));
        let past = HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(parse_retry_after(&past), Some(Duration::ZERO));
        let future = SystemTime::now() + Duration::from_secs(120);
        let future = HeaderValue::from_str(&httpdate::fmt_http_date(future)).unwrap();
        let wait = parse_retry_after(&future).unwrap();
        assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120));
        assert_eq!(parse_retry_after(&HeaderValue::from_static("soon")), None);
    }
}
