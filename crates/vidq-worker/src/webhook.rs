//! Webhooks without I/O: the event body and its signatures. The policy a callback URL and
//! the addresses its host resolves to must pass is `vidq_core::CallbackPolicy` (the producer
//! checks it at enqueue too). `tasks::notify` does the sending.
//!
//! Signatures follow Standard Webhooks (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64> v1,<base64>` over `<id>.<timestamp>.<body>`), one per secret
//! configured for the job's tenant, so a receiver holding either secret of a rotation verifies.
//! The older `Vidq-Signature` / `Vidq-Event-Id` pair is still sent.

use std::collections::BTreeMap;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use vidq_core::{JobId, JobRecord, JobState, classify_address, is_localhost};

/// `t=<unix seconds>,v1=<hex hmac-sha256(secret, "<t>.<body>")>`, one `v1=` per secret.
pub(crate) const SIGNATURE_HEADER: &str = "Vidq-Signature";
/// `<job id>:<state>`: the same for every retry of one event, for receivers to deduplicate.
pub(crate) const EVENT_ID_HEADER: &str = "Vidq-Event-Id";
/// Standard Webhooks: the event id, `<job id>:<state>` (the same on every retry).
pub(crate) const WEBHOOK_ID: &str = "webhook-id";
/// Standard Webhooks: Unix seconds of this attempt.
pub(crate) const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// Standard Webhooks: `v1,<base64 hmac>` per secret, space-separated.
pub(crate) const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// A redirect policy for result downloads: up to 5 redirects, never to a loopback, private,
/// link-local or otherwise non-public address given literally, nor to `localhost` (a signed
/// CDN URL has no business sending the worker into its own network).
pub(crate) fn public_redirects_only() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= 5 {
            return attempt.error("more than 5 redirects");
        }
        let inward = match attempt.url().host() {
            Some(url::Host::Ipv4(ip)) => classify_address(IpAddr::V4(ip)).is_some(),
            Some(url::Host::Ipv6(ip)) => classify_address(IpAddr::V6(ip)).is_some(),
            Some(url::Host::Domain(d)) => is_localhost(d),
            None => true,
        };
        if inward {
            attempt.error("redirect to a non-public address refused")
        } else {
            attempt.follow()
        }
    })
}

/// The JSON body of one terminal event.
#[derive(Debug, Serialize)]
pub(crate) struct Event<'a> {
    id: JobId,
    state: JobState,
    at_ms: u64,
    error: Option<&'a str>,
    output: Option<EventOutput<'a>>,
    metadata: &'a BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
struct EventOutput<'a> {
    bucket: &'a str,
    key: &'a str,
    bytes: u64,
    sha256: &'a str,
}

impl<'a> Event<'a> {
    /// The event of `job`, which has ended.
    pub(crate) fn of(job: &'a JobRecord) -> Self {
        Self {
            id: job.id,
            state: job.state,
            at_ms: ended_at(job),
            error: job.error.as_deref(),
            output: job.output.as_ref().map(|o| EventOutput {
                bucket: &o.bucket,
                key: &o.key,
                bytes: o.bytes,
                sha256: &o.sha256,
            }),
            metadata: job.request.metadata(),
        }
    }

    /// When the job ended, Unix ms.
    pub(crate) fn at_ms(&self) -> u64 {
        self.at_ms
    }

    /// `Vidq-Event-Id`: `<job id>:<state>`.
    pub(crate) fn event_id(&self) -> String {
        format!("{}:{}", self.id, self.state)
    }
}

/// When the job entered its current state: the last transition into it, else the record's
/// last change.
fn ended_at(job: &JobRecord) -> u64 {
    job.history
        .iter()
        .rev()
        .find(|t| t.to == job.state)
        .map_or(job.updated_at, |t| t.at_ms)
}

/// The `Vidq-Signature` value for `body` sent at `t` (Unix seconds): one `v1=` per secret,
/// keyed with each secret's bytes as written.
pub(crate) fn signature(secrets: &[&str], t: u64, body: &[u8]) -> String {
    let mut signed = Vec::with_capacity(body.len() + 12);
    signed.extend_from_slice(t.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    let mut header = format!("t={t}");
    for secret in secrets {
        header.push_str(",v1=");
        header.push_str(&hex::encode(hmac_sha256(secret.as_bytes(), &signed)));
    }
    header
}

/// The `webhook-signature` value (Standard Webhooks) of event `id`'s `body` sent at `t`:
/// `v1,<base64 hmac-sha256(key, "<id>.<t>.<body>")>` per secret, space-separated, the signing
/// secret first. A secret written `whsec_<base64>` is keyed with the decoded bytes, as the
/// Standard Webhooks libraries do; any other with its bytes as written.
pub(crate) fn standard_signature(secrets: &[&str], id: &str, t: u64, body: &[u8]) -> String {
    let mut signed = Vec::with_capacity(id.len() + body.len() + 14);
    signed.extend_from_slice(id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(t.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    let signatures: Vec<String> = secrets
        .iter()
        .map(|secret| {
            format!(
                "v1,{}",
                BASE64.encode(hmac_sha256(&standard_key(secret), &signed))
            )
        })
        .collect();
    signatures.join(" ")
}

/// The HMAC key of a secret: `whsec_<base64>` decoded, else the secret's bytes.
fn standard_key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|b64| BASE64.decode(b64).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        unreachable!("HMAC-SHA256 takes keys of any length")
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-shot HTTP server that answers every request with a redirect to `to`.
    async fn redirecting_to(to: &'static str) -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn result_downloads_follow_no_redirect_into_the_network() {
        let client = reqwest::Client::builder()
            .redirect(public_redirects_only())
            .build()
            .unwrap();
        for to in [
            "http://127.0.0.1:9/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.7/x",
            "http://[::1]:9/x",
            "http://localhost:9/x",
        ] {
            let addr = redirecting_to(to).await;
            let err = client
                .get(format!("http://{addr}/video.mp4"))
                .send()
                .await
                .expect_err(to);
            assert!(err.is_redirect(), "{to}: {err}");
        }
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signature_covers_timestamp_dot_body() {
        // python3: hmac.new(b'whsec_test', b'1700000000.{"id":"x"}', sha256).hexdigest()
        assert_eq!(
            signature(&["whsec_test"], 1_700_000_000, br#"{"id":"x"}"#),
            "t=1700000000,v1=80e8d098018f757aa814ab1abb924f35d304affa1d93d29611a54696207eb7c3"
        );
        assert_ne!(
            signature(&["whsec_test"], 1_700_000_001, br#"{"id":"x"}"#),
            signature(&["whsec_test"], 1_700_000_000, br#"{"id":"x"}"#),
            "the timestamp is signed"
        );
        let two = signature(&["whsec_test", "other"], 1_700_000_000, br#"{"id":"x"}"#);
        assert!(two.starts_with(
            "t=1700000000,v1=80e8d098018f757aa814ab1abb924f35d304affa1d93d29611a54696207eb7c3,v1="
        ));
    }

    #[test]
    fn standard_signature_matches_the_standard_webhooks_vector() {
        // The example of the Standard Webhooks specification (a `whsec_` secret is base64).
        assert_eq!(
            standard_signature(
                &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        // python3: base64(hmac(b'plain-secret-1', b'a:succeeded.1700000000.{"id":"x"}', sha256))
        let both = standard_signature(
            &["plain-secret-1", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
            "a:succeeded",
            1_700_000_000,
            br#"{"id":"x"}"#,
        );
        let parts: Vec<&str> = both.split(' ').collect();
        assert_eq!(parts.len(), 2, "{both}");
        assert_eq!(parts[0], "v1,TOBddcx2alDiAblUjmPnkmJPYMTOauTnIDuCurPrAJ0=");
        assert_ne!(
            standard_signature(
                &["plain-secret-1"],
                "a:failed",
                1_700_000_000,
                br#"{"id":"x"}"#
            ),
            parts[0],
            "the event id is signed"
        );
    }
}
