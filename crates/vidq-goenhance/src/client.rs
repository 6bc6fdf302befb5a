//! The [`Client`]: one method per upstream endpoint, every call bounded by a timeout.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::RETRY_AFTER;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use url::Url;

use crate::envelope::{self, Reply};
use crate::types::{DetailData, SubmittedData, url_without_query};
use crate::{
    ClientSettings, Error, GenerateRequest, JobDetail, Result, StyleGroup, Submitted, Tokens,
};

const GENERATE: &str = "api/v1/video2video/generate";
const DETAIL: &str = "api/v1/jobs/detail";
const TOKENS: &str = "api/v1/user/tokens";
const MODEL_LIST: &str = "api/v1/video2video/modellist";
/// The largest reply body read; API answers are a few kilobytes.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// A typed client of the GoEnhanceAI API. Cloning is cheap (one `Arc`).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    api_key: SecretString,
    base_url: Url,
    endpoints: Endpoints,
    timeout: Duration,
}

/// The four endpoint URLs, joined below the base URL once.
struct Endpoints {
    generate: Url,
    detail: Url,
    tokens: Url,
    model_list: Url,
}

impl Client {
    /// Builds a client from settings; refuses a base URL that is not http(s) or a blank key.
    pub fn new(settings: &ClientSettings) -> Result<Self> {
        let base_url = parse_base_url(&settings.base_url)?;
        if settings.api_key_is_blank() {
            return Err(Error::InvalidSettings {
                field: "goenhance.api_key",
                reason: "is empty".to_owned(),
            });
        }
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .user_agent(settings.user_agent.as_str())
            .build()
            .map_err(|err| Error::InvalidSettings {
                field: "goenhance",
                reason: err.without_url().to_string(),
            })?;
        let endpoint = |path: &str| {
            base_url.join(path).map_err(|err| Error::InvalidSettings {
                field: "goenhance.base_url",
                reason: err.to_string(),
            })
        };
        let endpoints = Endpoints {
            generate: endpoint(GENERATE)?,
            detail: endpoint(DETAIL)?,
            tokens: endpoint(TOKENS)?,
            model_list: endpoint(MODEL_LIST)?,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                api_key: settings.api_key.clone(),
                base_url,
                endpoints,
                timeout: settings.timeout,
            }),
        })
    }

    /// The base URL calls go to.
    pub fn base_url(&self) -> &Url {
        &self.inner.base_url
    }

    /// The longest one call may last, connection included: after it, the call has ended.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Submits a generation (`POST /api/v1/video2video/generate`) and returns its `img_uuid`.
    pub async fn generate(&self, request: &GenerateRequest) -> Result<Submitted> {
        let http = self
            .inner
            .http
            .post(self.inner.endpoints.generate.clone())
            .json(request);
        let reply = self.call("generate", http).await?;
        let data: SubmittedData = envelope::decode(reply.data)?;
        Ok(Submitted {
            img_uuid: data.img_uuid,
            cost: data.cost,
            request_id: reply.request_id.or(data.request_id),
        })
    }

    /// Reads one job's status (`GET /api/v1/jobs/detail?img_uuid=`).
    pub async fn detail(&self, img_uuid: &str) -> Result<JobDetail> {
        let http = self
            .inner
            .http
            .get(self.inner.endpoints.detail.clone())
            .query(&[("img_uuid", img_uuid)]);
        let reply = self.call("detail", http).await?;
        let detail = envelope::decode::<DetailData>(reply.data)?.into_detail(img_uuid);
        tracing::debug!(
            goenhance.img_uuid = %detail.img_uuid,
            goenhance.status = %detail.raw_status,
            goenhance.result = detail.video_url.as_deref().map(url_without_query),
            "goenhance job detail"
        );
        Ok(detail)
    }

    /// Reads the credit balance and queue limit (`GET /api/v1/user/tokens`).
    pub async fn tokens(&self) -> Result<Tokens> {
        let http = self.inner.http.get(self.inner.endpoints.tokens.clone());
        self.call_decode("tokens", http).await
    }

    /// Lists the available styles (`GET /api/v1/video2video/modellist`).
    pub async fn model_list(&self) -> Result<Vec<StyleGroup>> {
        let http = self.inner.http.get(self.inner.endpoints.model_list.clone());
        self.call_decode("model_list", http).await
    }

    async fn call_decode<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        http: reqwest::RequestBuilder,
    ) -> Result<T> {
        envelope::decode(self.call(endpoint, http).await?.data)
    }

    /// Sends one request with the key and classifies the reply; logs one debug event.
    async fn call(&self, endpoint: &'static str, http: reqwest::RequestBuilder) -> Result<Reply> {
        let started = Instant::now();
        let span = self.span(endpoint);
        let result = tracing::Instrument::instrument(self.send(http), span.clone()).await;
        if let Err(err) = &result {
            // Any failed call is an error span, whatever the HTTP status (an error envelope
            // in a 200 reply too); `error.type` is the failure's kind (`rate_limited`, ...).
            span.record("otel.status_code", "ERROR");
            span.record("error.type", err.kind());
        }
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &result {
            Ok(_) => tracing::debug!(
                goenhance.endpoint = endpoint,
                goenhance.outcome = "ok",
                latency_ms,
                "goenhance call"
            ),
            Err(err) => tracing::debug!(
                goenhance.endpoint = endpoint,
                goenhance.outcome = err.kind(),
                latency_ms,
                error = %chain(err),
                "goenhance call"
            ),
        }
        result
    }

    /// The client span of one call (HTTP client semantic conventions); `send` records the
    /// status code, an error marks it failed.
    fn span(&self, endpoint: &'static str) -> tracing::Span {
        let (method, name) = match endpoint {
            "generate" => ("POST", "POST goenhance generate"),
            "detail" => ("GET", "GET goenhance detail"),
            "tokens" => ("GET", "GET goenhance tokens"),
            _ => ("GET", "GET goenhance model_list"),
        };
        let url = &self.inner.base_url;
        tracing::info_span!(
            "goenhance request",
            otel.name = name,
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            http.request.method = method,
            server.address = url.host_str().unwrap_or_default(),
            server.port = url.port_or_known_default().unwrap_or_default(),
            http.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
            goenhance.endpoint = endpoint,
        )
    }

    async fn send(&self, http: reqwest::RequestBuilder) -> Result<Reply> {
        // The header is built from the secret here, per request, and marked sensitive.
        let response = http
            .bearer_auth(self.inner.api_key.expose_secret())
            .send()
            .await
            .map_err(|err| {
                tracing::Span::current().record("otel.status_code", "error");
                Error::from_transport(err)
            })?;
        let status = response.status();
        let span = tracing::Span::current();
        span.record("http.response.status_code", status.as_u16());
        if status.is_client_error() || status.is_server_error() {
            span.record("otel.status_code", "error");
        }
        let retry_after = response.headers().get(RETRY_AFTER).cloned();
        let body = read_capped(response).await?;
        envelope::classify(status, retry_after.as_ref(), &body)
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url.as_str())
            .field("api_key", &"[REDACTED]")
            .field("timeout", &self.inner.timeout)
            .finish()
    }
}

/// Reads a reply body; one larger than [`MAX_BODY`] is not an API answer.
async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Error::from_transport)? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_BODY {
            return Err(Error::malformed(&body));
        }
    }
    Ok(body)
}

/// An error and its sources, `: `-separated, for one log field.
fn chain(err: &Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Parses the base URL and makes its path end in `/`, so endpoints join below it.
fn parse_base_url(raw: &str) -> Result<Url> {
    let invalid = |reason: String| Error::InvalidSettings {
        field: "goenhance.base_url",
        reason,
    };
    let mut url = Url::parse(raw.trim()).map_err(|err| invalid(format!("{err}: {raw:?}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(format!(
            "must be an http(s) URL with a host: {raw:?}"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(invalid(
            "must not carry credentials, a query or a fragment".to_owned(),
        ));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_keeps_a_path_prefix() {
        let url = parse_base_url("http://127.0.0.1:9/proxy").unwrap();
        assert_eq!(
            url.join(DETAIL).unwrap().as_str(),
            "http://127.0.0.1:9/proxy/api/v1/jobs/detail"
        );
        let url = parse_base_url("https://api.goenhance.ai").unwrap();
        assert_eq!(
            url.join(TOKENS).unwrap().as_str(),
            "https://api.goenhance.ai/api/v1/user/tokens"
        );
    }

    #[test]
    fn bad_base_urls_name_the_setting() {
        for raw in [
            "",
            "not a url",
            "ftp://x",
            "http://u:p@host/",
            "https://h/?a=1",
        ] {
            let err = parse_base_url(raw).unwrap_err();
            assert!(
                err.to_string().contains("goenhance.base_url"),
                "{raw}: {err}"
            );
        }
    }
}
