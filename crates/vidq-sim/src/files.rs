//! The signed result URL: `/files/<img_uuid>.mp4?expires=<unix ms>&n=<nonce>&sig=<hex>`.
//!
//! The signature is an HMAC-SHA256 over the id, expiry and nonce with a secret drawn at start,
//! so URLs cannot be forged or extended. Bodies are generated as they stream
//! ([`crate::content`]), with single `Range` requests answered by 206.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::content::{Content, next_piece};
use crate::state::{Phase, Sim, unix_ms};
use crate::stats::bump;

type HmacSha256 = Hmac<Sha256>;

fn mac(sim: &Sim, img_uuid: &str, expires: u64, nonce: u64) -> HmacSha256 {
    let mut mac = sim.url_mac.clone();
    mac.update(img_uuid.as_bytes());
    mac.update(b"\n");
    mac.update(&expires.to_le_bytes());
    mac.update(&nonce.to_le_bytes());
    mac
}

/// A fresh signed URL for the result of `img_uuid`, valid for the configured TTL from now.
pub(crate) fn signed_url(sim: &Sim, host: &str, img_uuid: &str) -> String {
    let now = SystemTime::now();
    let expires = unix_ms(now.checked_add(sim.config.url_ttl).unwrap_or(now));
    let nonce = sim.next_url_nonce();
    let sig = hex::encode(mac(sim, img_uuid, expires, nonce).finalize().into_bytes());
    format!("http://{host}/files/{img_uuid}.mp4?expires={expires}&n={nonce}&sig={sig}")
}

#[derive(Deserialize)]
pub(crate) struct Signature {
    expires: Option<u64>,
    n: Option<u64>,
    sig: Option<String>,
}

fn signature_ok(sim: &Sim, img_uuid: &str, query: Option<Signature>) -> Result<(), &'static str> {
    let Some(Signature {
        expires: Some(expires),
        n: Some(nonce),
        sig: Some(sig),
    }) = query
    else {
        return Err("missing signature\n");
    };
    let sig = hex::decode(sig).map_err(|_| "signature does not match\n")?;
    mac(sim, img_uuid, expires, nonce)
        .verify_slice(&sig)
        .map_err(|_| "signature does not match\n")?;
    if unix_ms(SystemTime::now()) > expires {
        return Err("Request has expired\n");
    }
    Ok(())
}

/// What a `Range` header asks for, over a body of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ranged {
    /// No usable range: the whole body, 200.
    Full,
    /// Bytes `start..end`, 206.
    Part(u64, u64),
    /// 416.
    Unsatisfiable,
}

pub(crate) fn parse_range(header: Option<&str>, size: u64) -> Ranged {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ranged::Full;
    };
    // Several ranges: a server may answer with the whole body instead.
    let Some((first, last)) = spec.split_once('-').filter(|_| !spec.contains(',')) else {
        return Ranged::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    match (first.parse::<u64>(), last.parse::<u64>()) {
        (Ok(a), Ok(b)) if a <= b => {
            if a >= size {
                Ranged::Unsatisfiable
            } else {
                Ranged::Part(a, b.saturating_add(1).min(size))
            }
        }
        (Ok(a), Err(_)) if last.is_empty() => {
            if a >= size {
                Ranged::Unsatisfiable
            } else {
                Ranged::Part(a, size)
            }
        }
        (Err(_), Ok(n)) if first.is_empty() => {
            if n == 0 || size == 0 {
                Ranged::Unsatisfiable
            } else {
                Ranged::Part(size - n.min(size), size)
            }
        }
        _ => Ranged::Full,
    }
}

/// `GET /files/{file}`.
pub(crate) async fn download(
    State(sim): State<Arc<Sim>>,
    Path(file): Path<String>,
    method: Method,
    headers: HeaderMap,
    query: Result<Query<Signature>, QueryRejection>,
) -> Response {
    let Some(img_uuid) = file.strip_suffix(".mp4") else {
        bump(&sim.counters.unknown_job);
        return (StatusCode::NOT_FOUND, "no such file\n").into_response();
    };
    let size = sim.with_job(img_uuid, |job| {
        (job.phase(Instant::now()) == Phase::Succeeded).then_some(job.size)
    });
    let Some(Some(size)) = size else {
        bump(&sim.counters.unknown_job);
        return (StatusCode::NOT_FOUND, "no such file\n").into_response();
    };
    if let Err(reason) = signature_ok(&sim, img_uuid, query.ok().map(|q| q.0)) {
        bump(&sim.counters.forbidden_url);
        return (StatusCode::FORBIDDEN, reason).into_response();
    }
    let range = headers.get(header::RANGE).and_then(|h| h.to_str().ok());
    let (status, start, end) = match parse_range(range, size) {
        Ranged::Full => (StatusCode::OK, 0, size),
        Ranged::Part(start, end) => (StatusCode::PARTIAL_CONTENT, start, end),
        Ranged::Unsatisfiable => {
            let mut response = (StatusCode::RANGE_NOT_SATISFIABLE, "").into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return response;
        }
    };
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        sim.count_download(img_uuid);
        body_stream(sim.clone(), Content::new(img_uuid, size), start, end)
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    response
}

/// Streams bytes `start..end`, one block-aligned piece at a time, no faster than the
/// configured download rate.
fn body_stream(sim: Arc<Sim>, content: Content, start: u64, end: u64) -> Body {
    let rate = sim.config.download_rate;
    let began = tokio::time::Instant::now();
    let pieces = futures::stream::unfold(start, move |at| {
        let (sim, content) = (sim.clone(), content.clone());
        async move {
            if at >= end {
                return None;
            }
            if rate > 0 {
                let sent = Duration::from_secs_f64((at - start) as f64 / rate as f64);
                tokio::time::sleep_until(began + sent).await;
            }
            let stop = next_piece(at, end);
            let chunk = content.chunk(at, stop);
            sim.counters
                .bytes_served
                .fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
            Some((Ok::<_, Infallible>(chunk), stop))
        }
    });
    Body::from_stream(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        let r = |h: &str| parse_range(Some(h), 1000);
        assert_eq!(parse_range(None, 1000), Ranged::Full);
        assert_eq!(r("bytes=0-99"), Ranged::Part(0, 100));
        assert_eq!(r("bytes=990-2000"), Ranged::Part(990, 1000));
        assert_eq!(r("bytes=500-"), Ranged::Part(500, 1000));
        assert_eq!(r("bytes=-10"), Ranged::Part(990, 1000));
        assert_eq!(r("bytes=-5000"), Ranged::Part(0, 1000));
        assert_eq!(r("bytes=1000-"), Ranged::Unsatisfiable);
        assert_eq!(r("bytes=1000-1001"), Ranged::Unsatisfiable);
        assert_eq!(r("bytes=-0"), Ranged::Unsatisfiable);
        assert_eq!(r("bytes=9-3"), Ranged::Full);
        assert_eq!(r("bytes=0-1,5-6"), Ranged::Full);
        assert_eq!(r("items=0-1"), Ranged::Full);
    }
}
