//! Where a webhook may be sent: the one check of a `callback_url` shared by the producer (at
//! enqueue, so a URL the workers would refuse is a 422 naming `callback_url` instead of a dead
//! webhook later) and the worker (at send time, again for every address the host resolves to).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Deserialize;
use url::{Host, Url};

/// Why a callback URL will not be called. Permanent: the task goes to the dead set with it.
/// The messages name the host, never the path or query (which may carry a token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackRefused {
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
    /// The host is the name `localhost` (or under `.localhost`), which always means this machine.
    #[error("callback host {host} is a loopback name (allowed only with webhooks.allow_private)")]
    LoopbackName { host: String },
    /// The host resolved to nothing.
    #[error("callback host {host} resolves to no address")]
    NoAddress { host: String },
}

/// The kinds of address a webhook may not reach by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// 127/8, `::1`.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, unique local fc00::/7.
    Private,
    /// 169.254/16 (cloud metadata lives there), fe80::/10.
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

/// What may be called: `[webhooks]` `allow_http_hosts` and `allow_private`, read by the
/// workers and by `vidq serve` alike (other keys of the section are ignored here). The default
/// is strict: https only, public addresses only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct CallbackPolicy {
    /// Hosts (lowercase names or IP literals) that may be called over plain `http`.
    /// A list, or comma-separated in the environment
    /// (`VIDQ__WEBHOOKS__ALLOW_HTTP_HOSTS=127.0.0.1,hooks.internal`).
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub allow_http_hosts: Vec<String>,
    /// Whether loopback, private, link-local, shared and reserved addresses may be called.
    pub allow_private: bool,
}

/// A callback URL that passed the scheme check: where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackTarget {
    /// The host as written (a name, or an IP literal without brackets).
    pub host: String,
    /// The IP when the host is a literal; a name must be resolved and each address checked.
    pub ip: Option<IpAddr>,
    /// The port (the scheme's default when not written).
    pub port: u16,
}

impl CallbackPolicy {
    /// Checks the scheme and host of `url`; an IP literal host is checked here too.
    pub fn check_url(&self, url: &Url) -> Result<CallbackTarget, CallbackRefused> {
        let (host, ip) = match url.host() {
            Some(Host::Domain(name)) => (name.to_ascii_lowercase(), None),
            Some(Host::Ipv4(ip)) => (ip.to_string(), Some(IpAddr::V4(ip))),
            Some(Host::Ipv6(ip)) => (ip.to_string(), Some(IpAddr::V6(ip))),
            None => return Err(CallbackRefused::NoHost),
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
            return Err(CallbackRefused::Scheme {
                scheme: url.scheme().to_owned(),
                host,
            });
        }
        let port = url.port_or_known_default().ok_or(CallbackRefused::NoHost)?;
        if let Some(ip) = ip {
            self.check_addr(&host, ip)?;
        } else if !self.allow_private && is_localhost(&host) {
            return Err(CallbackRefused::LoopbackName { host });
        }
        Ok(CallbackTarget { host, ip, port })
    }

    /// Checks one address `host` resolved to.
    pub fn check_addr(&self, host: &str, ip: IpAddr) -> Result<(), CallbackRefused> {
        match classify(ip) {
            Some(class) if class.never_allowed() || !self.allow_private => {
                Err(CallbackRefused::Address {
                    host: host.to_owned(),
                    ip,
                    class,
                })
            }
            _ => Ok(()),
        }
    }
}

/// `localhost` and names under it (RFC 6761: they resolve to loopback, whatever DNS says).
pub fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// The class of a non-public address, or `None` for a public one. IPv6 forms that embed an
/// IPv4 address (v4-mapped, v4-compatible, NAT64, 6to4) are judged by that address.
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
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

/// A list of strings, or one string of comma-separated items (as an environment variable
/// gives it); blank items are dropped.
pub fn list_or_comma_separated<'de, D: serde::Deserializer<'de>>(
    de: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Items {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Items::deserialize(de)? {
        Items::List(list) => list,
        Items::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let strict = CallbackPolicy::default();
        let target = strict
            .check_url(&url("https://Hooks.Example/x?t=1"))
            .unwrap();
        assert_eq!(
            target,
            CallbackTarget {
                host: "hooks.example".into(),
                ip: None,
                port: 443
            }
        );
        let err = strict
            .check_url(&url("http://hooks.example/x?token=s3cr3t"))
            .unwrap_err();
        assert!(matches!(err, CallbackRefused::Scheme { .. }), "{err}");
        assert!(!err.to_string().contains("s3cr3t"), "{err}");

        let dev = CallbackPolicy {
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
        let strict = CallbackPolicy::default();
        for u in [
            "https://127.0.0.1/x",
            "https://[::1]:8443/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.5/x",
        ] {
            let err = strict.check_url(&url(u)).unwrap_err();
            assert!(matches!(err, CallbackRefused::Address { .. }), "{u}: {err}");
        }
        assert!(strict.check_url(&url("https://8.8.8.8/x")).is_ok());

        let dev = CallbackPolicy {
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
    fn localhost_names_are_loopback() {
        let strict = CallbackPolicy::default();
        for u in [
            "https://localhost/x",
            "https://LOCALHOST./x",
            "https://api.localhost:8443/x",
        ] {
            let err = strict.check_url(&url(u)).unwrap_err();
            assert!(
                matches!(err, CallbackRefused::LoopbackName { .. }),
                "{u}: {err}"
            );
        }
        assert!(
            strict
                .check_url(&url("https://localhost.example/x"))
                .is_ok()
        );
        let dev = CallbackPolicy {
            allow_http_hosts: vec!["localhost".into()],
            allow_private: true,
        };
        assert!(dev.check_url(&url("http://localhost:8080/x")).is_ok());
    }

    #[test]
    fn the_policy_reads_a_list_or_comma_separated_hosts() {
        #[derive(Deserialize)]
        struct Section {
            webhooks: CallbackPolicy,
        }
        let s: Section = serde_json::from_str(
            r#"{"webhooks": {"allow_http_hosts": "127.0.0.1, hooks.internal", "secret": "x"}}"#,
        )
        .unwrap();
        assert_eq!(s.webhooks.allow_http_hosts, ["127.0.0.1", "hooks.internal"]);
        assert!(!s.webhooks.allow_private);
        let s: Section = serde_json::from_str(
            r#"{"webhooks": {"allow_http_hosts": ["a"], "allow_private": true}}"#,
        )
        .unwrap();
        assert_eq!(
            s.webhooks,
            CallbackPolicy {
                allow_http_hosts: vec!["a".into()],
                allow_private: true
            }
        );
    }

    #[test]
    fn a_request_is_checked_naming_callback_url() {
        let request = |callback: &str| {
            crate::TransformRequest::try_from(crate::TransformRequestInput {
                reference_video_url: Some("https://videos.example/a.mp4".into()),
                model: Some(2000),
                callback_url: Some(callback.into()),
                ..Default::default()
            })
            .unwrap()
        };
        let strict = CallbackPolicy::default();
        for bad in [
            "http://hooks.example/done?token=s3cr3t",
            "https://10.0.0.8/done?token=s3cr3t",
            "https://localhost/done?token=s3cr3t",
        ] {
            let err = request(bad).check_callback(&strict).unwrap_err();
            assert_eq!(err.field, "callback_url", "{bad}");
            assert!(!err.reason.contains("s3cr3t"), "{bad}: {err}");
        }
        assert!(
            request("https://hooks.example/done")
                .check_callback(&strict)
                .is_ok()
        );
        let dev = CallbackPolicy {
            allow_http_hosts: vec!["127.0.0.1".into()],
            allow_private: true,
        };
        assert!(
            request("http://127.0.0.1:9/done")
                .check_callback(&dev)
                .is_ok()
        );
        let no_callback = crate::TransformRequest::new("https://videos.example/a.mp4", 1).unwrap();
        assert!(no_callback.check_callback(&strict).is_ok());
    }

    #[test]
    fn a_resolved_address_is_checked_by_the_same_rules() {
        let strict = CallbackPolicy::default();
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
