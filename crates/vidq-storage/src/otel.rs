//! One span per S3 request of an upload (HTTP client semantic conventions), a child of the
//! task that uploads, so a job's trace shows each part, the PutObject and the completion.

use std::future::Future;

use tracing::Instrument as _;

use crate::error::{Error, Result};
use crate::storage::Storage;

impl Storage {
    /// Runs `request` (S3 operation `op`, sent with `method`) inside its span, and records
    /// its outcome: the HTTP status the store answered (200 on success), and an error status
    /// when it failed.
    pub(crate) async fn traced<T>(
        &self,
        op: &'static str,
        method: &'static str,
        request: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let (host, port) = (&self.server.0, self.server.1);
        let span = tracing::info_span!(
            "s3 request",
            otel.name = format!("S3 {op}"),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            http.request.method = method,
            server.address = host.as_str(),
            server.port = port,
            http.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
            rpc.system = "aws-api",
            rpc.service = "S3",
            rpc.method = op,
            s3.bucket = &*self.bucket,
        );
        let outcome = request.instrument(span.clone()).await;
        match &outcome {
            Ok(_) => {
                span.record("http.response.status_code", 200u16);
            }
            Err(err) => {
                if let Error::S3 {
                    status: Some(status),
                    ..
                } = err
                {
                    span.record("http.response.status_code", *status);
                }
                // `error.type`: the HTTP status the store answered, else what kind of failure.
                let kind = match err {
                    Error::S3 {
                        status: Some(status),
                        ..
                    } => status.to_string(),
                    Error::S3 { .. } => "transport".to_owned(),
                    _ => "_OTHER".to_owned(),
                };
                span.record("error.type", kind.as_str());
                span.record("otel.status_code", "ERROR");
            }
        }
        outcome
    }
}

/// The host and port requests go to: the configured endpoint, else AWS's regional one.
pub(crate) fn server_of(endpoint: Option<&str>, region: &str) -> (String, u16) {
    match endpoint {
        Some(url) => host_port(url),
        None => (format!("s3.{region}.amazonaws.com"), 443),
    }
}

/// `host` and port of an `http(s)://host[:port][/...]` URL (the scheme's port by default).
fn host_port(url: &str) -> (String, u16) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let default = if scheme == "http" { 80 } else { 443 };
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            match port.parse() {
                Ok(port) => (host.trim_matches(['[', ']']).to_owned(), port),
                Err(_) => (authority.trim_matches(['[', ']']).to_owned(), default),
            }
        }
        _ => (authority.trim_matches(['[', ']']).to_owned(), default),
    }
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn host_and_port_of_an_endpoint() {
        assert_eq!(
            host_port("http://127.0.0.1:9000"),
            ("127.0.0.1".into(), 9000)
        );
        assert_eq!(
            host_port("https://s3.example/base"),
            ("s3.example".into(), 443)
        );
        assert_eq!(host_port("http://minio"), ("minio".into(), 80));
        assert_eq!(host_port("http://[::1]:9000/"), ("::1".into(), 9000));
    }
}
