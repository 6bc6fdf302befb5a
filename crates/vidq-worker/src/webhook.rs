//! Webhooks without I/O: the event body, its signature, and the policy a callback URL and the
//! addresses its host resolves to must pass. `tasks::notify` does the sending.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use url::{Host, Url};
use vidq_core::{JobId, JobRecord, JobState};

/// `t=<unix seconds>,v1=<hex hmac-sha256(secret, "<t>.<body>")>`.
pub(crate) const SIGNATURE_HEADER: &str = "Vidq-Signature";
/// `<job id>:<state>`: the same for every retry of one event, for receivers to deduplicate.
pub(crate) const EVENT_ID_HEADER: &str = "Vidq-Event-Id";

/// Why a callback URL will not be called. Permanent: the task goes to the dead set with it.
/// The messages name the host, never the path or query (which may carry a token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    /// Not `https`, and the host is not in `webhooks.allow_http_hosts`.
    #[error(
        "callback URL scheme `{scheme}` refused for host {host}: only https (or a host in webhooks.allow_http_hosts)"
    )]
    Scheme { scheme: String, host: String },
    /// No host to call.
    #[error("callback URL has no host")]
    NoHost,
    /// The host is, or resolves to, an address webhooks may not reach.
    #[error(
        "callback host {host} resolves to {ip}, a {class} address (allowed only with webhooks.allow_private)"
    )]
    Address {
        host: String,
        ip: IpAddr,
        class: AddressClass,
    },
    /// The host resolved to nothing.
    #[error("callback host {host} resolves to no address")]
    NoAddress { host: String },
}

/// The kinds of address a webhook may not reach by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddressClass {
    Loopback,
    Private,
    LinkLocal,
    /// 100.64.0.0/10, carrier-grade NAT.
    Shared,
    /// Documentation, benchmarking, protocol assignments, the reserved 240/4.
    Reserved,
    /// Never reachable over TCP: refused even with `allow_private`.
    Unspecified,
    /// Never reachable over TCP: refused even with `allow_private`.
    Multicast,
    /// Never reachable over TCP: refused even with `allow_private`.
    Broadcast,
}

impl AddressClass {
    fn never_allowed(self) -> bool {
        matches!(self, Self::Unspecified | Self::Multicast | Self::Broadcast)
    }
}

impl std::fmt::Display for AddressClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::LinkLocal => "link-local",
            Self::Shared => "shared (carrier-grade NAT)",
            Self::Reserved => "reserved",
            Self::Unspecified => "unspecified",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
        })
    }
}

/// What may be called: from `[webhooks]`.
#[derive(Debug, Clone, Default)]
pub(crate) struct UrlPolicy {
    /// Hosts (lowercase names or IP literals) that may be called over plain `http`.
    pub(crate) allow_http_hosts: Vec<String>,
    /// Whether loopback, private, link-local, shared and reserved addresses may be called.
    pub(crate) allow_private: bool,
}

/// A callback URL that passed the scheme check: where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The host as written (a name, or an IP literal without brackets).
    pub(crate) host: String,
    /// The IP when the host is a literal; a name must be resolved and each address checked.
    pub(crate) ip: Option<IpAddr>,
    /// The port (the scheme's default when not written).
    pub(crate) port: u16,
}

impl UrlPolicy {
    /// Checks the scheme and host of `url`; an IP literal host is checked here too.
    pub(crate) fn check_url(&self, url: &Url) -> Result<Target, Refused> {
        let (host, ip) = match url.host() {
            Some(Host::Domain(name)) => (name.to_ascii_lowercase(), None),
            Some(Host::Ipv4(ip)) => (ip.to_string(), Some(IpAddr::V4(ip))),
            Some(Host::Ipv6(ip)) => (ip.to_string(), Some(IpAddr::V6(ip))),
            None => return Err(Refused::NoHost),
        };
        let scheme_ok = match url.scheme() {
            "https" => true,
            "http" => self
                .allow_http_hosts
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(&host)),
            _ => false,
        };
        if !scheme_ok {
            return Err(Refused::Scheme {
                scheme: url.scheme().to_owned(),
                host,
            });
        }
        let port = url.port_or_known_default().ok_or(Refused::NoHost)?;
        if let Some(ip) = ip {
            self.check_addr(&host, ip)?;
        }
        Ok(Target { host, ip, port })
    }

    /// Checks one address `host` resolved to.
    pub(crate) fn check_addr(&self, host: &str, ip: IpAddr) -> Result<(), Refused> {
        match classify(ip) {
            Some(class) if class.never_allowed() || !self.allow_private => Err(Refused::Address {
                host: host.to_owned(),
                ip,
                class,
            }),
            _ => Ok(()),
        }
    }
}

/// A redirect policy for result downloads: up to 5 redirects, never to a loopback, private,
/// link-local or otherwise non-public address given literally, nor to `localhost` (a signed
/// CDN URL has no business sending the worker into its own network).
pub(crate) fn public_redirects_only() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= 5 {
            return attempt.error("more than 5 redirects");
        }
        let inward = match attempt.url().host() {
            Some(url::Host::Ipv4(ip)) => classify(IpAddr::V4(ip)).is_some(),
            Some(url::Host::Ipv6(ip)) => classify(IpAddr::V6(ip)).is_some(),
            Some(url::Host::Domain(d)) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                d == "localhost" || d.ends_with(".localhost")
            }
            None => true,
        };
        if inward {
            attempt.error("redirect to a non-public address refused")
        } else {
            attempt.follow()
        }
    })
}

/// The class of a non-public address, or `None` for a public one. IPv6 forms that embed an
/// IPv4 address (v4-mapped, v4-compatible, NAT64, 6to4) are judged by that address.
pub(crate) fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    let [a, b, c, _] = ip.octets();
    let class = if ip.is_unspecified() || a == 0 {
        AddressClass::Unspecified
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_private() {
        AddressClass::Private
    } else if ip.is_link_local() {
        AddressClass::LinkLocal
    } else if a == 100 && (64..128).contains(&b) {
        AddressClass::Shared
    } else if ip.is_broadcast() {
        AddressClass::Broadcast
    } else if ip.is_multicast() {
        AddressClass::Multicast
    } else if a >= 240
        || ip.is_documentation()
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
    {
        AddressClass::Reserved
    } else {
        return None;
    };
    Some(class)
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    let seg = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if ip.is_unspecified() {
        return Some(AddressClass::Unspecified);
    }
    if ip.is_loopback() {
        return Some(AddressClass::Loopback);
    }
    // Deprecated v4-compatible (::a.b.c.d) and NAT64 (64:ff9b::a.b.c.d): the embedded address.
    let [.., a, b, c, d] = ip.octets();
    let embedded = Ipv4Addr::new(a, b, c, d);
    if seg[..6] == [0; 6] || seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(embedded);
    }
    if seg[0] == 0x2002 {
        // 6to4: the IPv4 address sits in segments 1 and 2.
        let [hi, lo] = [seg[1].to_be_bytes(), seg[2].to_be_bytes()];
        return classify_v4(Ipv4Addr::new(hi[0], hi[1], lo[0], lo[1]));
    }
    let class = if ip.is_multicast() {
        AddressClass::Multicast
    } else if seg[0] & 0xfe00 == 0xfc00 {
        AddressClass::Private // unique local fc00::/7
    } else if seg[0] & 0xffc0 == 0xfe80 || seg[0] & 0xffc0 == 0xfec0 {
        AddressClass::LinkLocal // fe80::/10, and the deprecated site-local fec0::/10
    } else if (seg[0] == 0x2001 && seg[1] == 0x0db8) || seg[..4] == [0x100, 0, 0, 0] {
        AddressClass::Reserved // documentation 2001:db8::/32, discard 100::/64
    } else {
        return None;
    };
    Some(class)
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

/// The `Vidq-Signature` value for `body` sent at `t` (Unix seconds).
pub(crate) fn signature(secret: &[u8], t: u64, body: &[u8]) -> String {
    let mut signed = Vec::with_capacity(body.len() + 12);
    signed.extend_from_slice(t.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    format!("t={t},v1={}", hmac_sha256_hex(secret, &signed))
}

fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        unreachable!("HMAC-SHA256 takes keys of any length")
    };
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
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
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signature_covers_timestamp_dot_body() {
        // python3: hmac.new(b'whsec_test', b'1700000000.{"id":"x"}', sha256).hexdigest()
        assert_eq!(
            signature(b"whsec_test", 1_700_000_000, br#"{"id":"x"}"#),
            "t=1700000000,v1=80e8d098018f757aa814ab1abb924f35d304affa1d93d29611a54696207eb7c3"
        );
        assert_ne!(
            signature(b"whsec_test", 1_700_000_001, br#"{"id":"x"}"#),
            signature(b"whsec_test", 1_700_000_000, br#"{"id":"x"}"#),
            "the timestamp is signed"
        );
    }

    fn refused_class(ip: &str) -> Option<AddressClass> {
        classify(ip.parse().unwrap())
    }

    #[test]
    fn each_address_class_is_recognised() {
        use AddressClass::*;
        let cases = [
            ("127.0.0.1", Some(Loopback)),
            ("127.9.9.9", Some(Loopback)),
            ("10.1.2.3", Some(Private)),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("192.168.1.1", Some(Private)),
            ("169.254.169.254", Some(LinkLocal)),
            ("100.64.0.1", Some(Shared)),
            ("0.0.0.0", Some(Unspecified)),
            ("0.1.2.3", Some(Unspecified)),
            ("224.0.0.1", Some(Multicast)),
            ("255.255.255.255", Some(Broadcast)),
            ("240.0.0.1", Some(Reserved)),
            ("192.0.2.10", Some(Reserved)),
            ("198.18.0.1", Some(Reserved)),
            ("::1", Some(Loopback)),
            ("::", Some(Unspecified)),
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:10.0.0.1", Some(Private)),
            ("::ffff:169.254.169.254", Some(LinkLocal)),
            ("::10.0.0.1", Some(Private)),
            ("64:ff9b::a9fe:a9fe", Some(LinkLocal)),
            ("2002:c0a8:0101::1", Some(Private)),
            ("fc00::1", Some(Private)),
            ("fd12:3456::1", Some(Private)),
            ("fe80::1", Some(LinkLocal)),
            ("ff02::1", Some(Multicast)),
            ("2001:db8::1", Some(Reserved)),
            // public
            ("8.8.8.8", None),
            ("172.32.0.1", None),
            ("100.128.0.1", None),
            ("2606:4700:4700::1111", None),
            ("::ffff:1.1.1.1", None),
            ("2002:0808:0808::1", None),
        ];
        for (ip, expected) in cases {
            assert_eq!(refused_class(ip), expected, "{ip}");
        }
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn only_https_unless_the_host_is_allowed_plain_http() {
        let strict = UrlPolicy::default();
        let target = strict
            .check_url(&url("https://Hooks.Example/x?t=1"))
            .unwrap();
        assert_eq!(
            target,
            Target {
                host: "hooks.example".into(),
                ip: None,
                port: 443
            }
        );
        let err = strict
            .check_url(&url("http://hooks.example/x?token=s3cr3t"))
            .unwrap_err();
        assert!(matches!(err, Refused::Scheme { .. }), "{err}");
        assert!(!err.to_string().contains("s3cr3t"), "{err}");

        let dev = UrlPolicy {
            allow_http_hosts: vec!["hooks.internal".into()],
            allow_private: false,
        };
        let target = dev.check_url(&url("http://HOOKS.internal:8080/x")).unwrap();
        assert_eq!(target.port, 8080);
        assert!(dev.check_url(&url("http://other.internal/x")).is_err());
        assert!(dev.check_url(&url("ftp://hooks.internal/x")).is_err());
    }

    #[test]
    fn private_literals_are_refused_unless_allowed() {
        let strict = UrlPolicy::default();
        for u in [
            "https://127.0.0.1/x",
            "https://[::1]:8443/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.5/x",
        ] {
            let err = strict.check_url(&url(u)).unwrap_err();
            assert!(matches!(err, Refused::Address { .. }), "{u}: {err}");
        }
        assert!(strict.check_url(&url("https://8.8.8.8/x")).is_ok());

        let dev = UrlPolicy {
            allow_http_hosts: vec!["127.0.0.1".into()],
            allow_private: true,
        };
        let target = dev.check_url(&url("http://127.0.0.1:9999/hook")).unwrap();
        assert_eq!(target.ip, Some("127.0.0.1".parse().unwrap()));
        assert!(dev.check_url(&url("https://[::1]/x")).is_ok());
        // Never a TCP destination, whatever the settings.
        for u in [
            "https://0.0.0.0/x",
            "https://224.0.0.1/x",
            "https://[ff02::1]/x",
        ] {
            assert!(dev.check_url(&url(u)).is_err(), "{u}");
        }
    }

    #[test]
    fn a_resolved_address_is_checked_by_the_same_rules() {
        let strict = UrlPolicy::default();
        let err = strict
            .check_addr("rebind.example", "192.168.0.1".parse().unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("rebind.example"), "{err}");
        assert!(err.to_string().contains("private"), "{err}");
        assert!(
            strict
                .check_addr("hooks.example", "93.184.216.34".parse().unwrap())
                .is_ok()
        );
    }
}
