//! `notify`: posts a finished job's event to its `callback_url`, signed. A receiver that is
//! down (5xx, 408, 429, timeout, network) is retried with the queue's backoff until
//! `webhooks.retry_for` after the job ended; anything that will not get better (a refused URL,
//! another 4xx, a redirect, no secret configured) goes to the dead set at once with its reason.

use std::error::Error as _;
use std::net::SocketAddr;
use std::time::Duration;

use apalis::prelude::{Attempt, Data};
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Response, StatusCode, redirect};
use secrecy::ExposeSecret;
use tracing::instrument;
use url::Url;
use vidq_core::{JobTask, WebhookDelivery, unix_ms_now};
use vidq_queue::{Delivery, TaskError};

use super::{TaskResult, retry, transient};
use crate::pipeline::{Pipeline, millis};
use crate::settings::WebhookSettings;
use crate::webhook::{
    EVENT_ID_HEADER, Event, SIGNATURE_HEADER, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP,
    signature, standard_signature,
};
use vidq_core::{
    CallbackPolicy as UrlPolicy, CallbackRefused as Refused, CallbackTarget as Target,
};

const USER_AGENT: &str = concat!("vidq/", env!("CARGO_PKG_VERSION"));

/// Why one delivery attempt did not succeed.
#[derive(Debug)]
enum Failure {
    /// No secret for the job's tenant and `webhooks.secret` not set: nothing is sent unsigned.
    Unsigned,
    /// The URL or the addresses its host resolves to are not allowed.
    Refused(Refused),
    /// The receiver answered something retrying will not change (4xx, 3xx).
    Rejected(String),
    /// Worth another try: receiver 5xx/408/429, timeout, network or DNS trouble.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
}

// A span of the job's trace (messaging semantic conventions): its parent, the request that
// created the job, is set once the record is read.
#[instrument(skip_all, fields(job.id = %task.job, task.attempt = attempt.current(),
    otel.name = "process notify", otel.kind = "consumer", messaging.system = "vidq",
    messaging.destination.name = vidq_core::TaskKind::Notify.queue_name(),
    messaging.message.id = %vidq_core::TaskKind::Notify.task_id(&task.job),
    messaging.operation.type = "process", otel.status_code = tracing::field::Empty,
    error.type = tracing::field::Empty))]
pub(crate) async fn notify(
    task: JobTask,
    pipeline: Data<Pipeline>,
    attempt: Attempt,
    delivery: Data<Delivery>,
) -> TaskResult {
    super::outcome(run(task, pipeline, attempt, delivery).await)
}

/// The task itself; [`notify`] marks its span failed when it returns an error.
async fn run(
    task: JobTask,
    pipeline: Data<Pipeline>,
    attempt: Attempt,
    delivery: Data<Delivery>,
) -> TaskResult {
    let Some(job) = pipeline.store().get(&task.job).await.map_err(transient)? else {
        tracing::warn!("job not found; its record expired before its webhook was sent");
        return Ok(());
    };
    vidq_otel::set_parent(&tracing::Span::current(), job.trace.as_ref());
    let Some(url) = job.request.callback_url() else {
        return Ok(());
    };
    if !job.state.is_terminal() {
        tracing::warn!(job.state = %job.state, "notify for a job that has not finished; ignored");
        return Ok(());
    }
    let hooks = pipeline.webhooks();
    let event = Event::of(&job);
    let host = url.host_str().unwrap_or_default();
    let delivered = deliver(hooks, url, job.owner.as_deref(), &event).await;
    let (status, error) = match &delivered {
        Ok(status) => (Some(status.as_u16()), None),
        Err(failure) => {
            let text = failure_text(failure);
            (http_status(&text), Some(text))
        }
    };
    let (outcome, result) = match delivered {
        Ok(status) => {
            tracing::info!(webhook.host = host, http.status = status.as_u16(), job.state = %job.state, "webhook delivered");
            ("delivered", Ok(()))
        }
        Err(Failure::Retry { reason, after }) => {
            // Redis's time of this delivery, not this host's clock.
            let elapsed = delivery.claimed_ms.saturating_sub(event.at_ms());
            if elapsed >= millis(hooks.retry_for) {
                let reason = format!(
                    "{reason}; gave up: retried for {:?} since the job ended (webhooks.retry_for)",
                    hooks.retry_for
                );
                tracing::warn!(webhook.host = host, reason, "webhook given up");
                ("gave_up", Err(permanent(reason)))
            } else {
                tracing::info!(webhook.host = host, reason, "webhook will be retried");
                let left = hooks
                    .retry_for
                    .saturating_sub(Duration::from_millis(elapsed));
                ("retry", Err(retry(after.map(|a| a.min(left)), reason)))
            }
        }
        Err(Failure::Unsigned) => not_retried(
            "unsigned",
            "no secret for the job's tenant (webhooks.tenants) and webhooks.secret is not set: no webhook is sent unsigned".to_owned(),
            host,
        ),
        Err(Failure::Refused(refused)) => not_retried("refused", refused.to_string(), host),
        Err(Failure::Rejected(reason)) => not_retried("rejected", reason, host),
    };
    metrics::counter!("vidq_webhooks_total", "outcome" => outcome).increment(1);
    // For the console's job page (best effort: the delivery itself is what counts).
    let record = WebhookDelivery {
        at_ms: unix_ms_now(),
        attempt: u32::try_from(attempt.current()).unwrap_or(u32::MAX),
        status,
        error,
        outcome: outcome.to_owned(),
    };
    if let Err(err) = pipeline.store().record_delivery(&job.id, &record).await {
        tracing::debug!(error = %err, "could not record the webhook delivery attempt");
    }
    result
}

/// What a failed attempt was, for the delivery record (no URL: its query may hold a token).
fn failure_text(failure: &Failure) -> String {
    match failure {
        Failure::Unsigned => "unsigned: no secret for the job's tenant".to_owned(),
        Failure::Refused(refused) => refused.to_string(),
        Failure::Rejected(reason) | Failure::Retry { reason, .. } => reason.clone(),
    }
}

/// The HTTP status in a `judge` reason (`<host> answered HTTP 503 Service Unavailable`).
fn http_status(reason: &str) -> Option<u16> {
    let (_, rest) = reason.split_once("answered HTTP ")?;
    rest.get(..3)?.parse().ok()
}

fn not_retried(outcome: &'static str, reason: String, host: &str) -> (&'static str, TaskResult) {
    tracing::warn!(
        webhook.host = host,
        reason,
        "webhook not delivered; not retried"
    );
    (outcome, Err(permanent(reason)))
}

fn permanent(reason: String) -> apalis_core::error::BoxDynError {
    Box::new(TaskError::permanent(reason))
}

/// One attempt: check the URL, resolve and check its host, post the signed event to the
/// checked addresses only (a DNS answer that changes in between cannot redirect it).
async fn deliver(
    hooks: &WebhookSettings,
    url: &Url,
    owner: Option<&str>,
    event: &Event<'_>,
) -> Result<StatusCode, Failure> {
    let secrets: Vec<&str> = hooks
        .secrets_for(owner)
        .into_iter()
        .map(ExposeSecret::expose_secret)
        .collect();
    if secrets.is_empty() {
        return Err(Failure::Unsigned);
    }
    let policy = UrlPolicy {
        allow_http_hosts: hooks.allow_http_hosts.clone(),
        allow_private: hooks.allow_private,
    };
    let target = policy.check_url(url).map_err(Failure::Refused)?;
    let addrs = resolve(&policy, &target).await?;
    let mut builder = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .no_proxy()
        .timeout(hooks.timeout)
        .connect_timeout(hooks.timeout)
        .user_agent(USER_AGENT);
    if target.ip.is_none() {
        builder = builder.resolve_to_addrs(&target.host, &addrs);
    }
    let client = builder.build().map_err(|e| Failure::Retry {
        reason: format!("building the webhook client: {}", describe(e)),
        after: None,
    })?;
    let body = serde_json::to_vec(event)
        .map_err(|e| Failure::Rejected(format!("encoding the event: {e}")))?;
    let t = unix_ms_now() / 1000;
    let id = event.event_id();
    let request = client
        .post(url.clone())
        .header(CONTENT_TYPE, "application/json")
        .header(WEBHOOK_ID, &id)
        .header(WEBHOOK_TIMESTAMP, t)
        .header(
            WEBHOOK_SIGNATURE,
            standard_signature(&secrets, &id, t, &body),
        )
        .header(SIGNATURE_HEADER, signature(&secrets, t, &body))
        .header(EVENT_ID_HEADER, id)
        .body(body);
    // The client span of the POST (HTTP client semantic conventions). A webhook URL's path or
    // query may hold a token: only the scheme, host and port are recorded.
    let span = tracing::info_span!(
        "webhook request",
        otel.name = "POST webhook",
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
        http.request.method = "POST",
        url.scheme = url.scheme(),
        server.address = target.host.as_str(),
        server.port = target.port,
        http.response.status_code = tracing::field::Empty,
    );
    let sent = tracing::Instrument::instrument(request.send(), span.clone()).await;
    let response = sent.map_err(|e| {
        span.record("otel.status_code", "ERROR");
        span.record(
            "error.type",
            if e.is_timeout() {
                "timeout"
            } else {
                "transport"
            },
        );
        Failure::Retry {
            reason: format!("posting to {}: {}", target.host, describe(e)),
            after: None,
        }
    })?;
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if !status.is_success() {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", status.as_str());
    }
    judge(&target.host, &response)
}

/// The addresses to connect to, each checked against the policy. Any refused address refuses
/// the host: a name that answers with both a public and a private address is not trusted.
async fn resolve(policy: &UrlPolicy, target: &Target) -> Result<Vec<SocketAddr>, Failure> {
    if let Some(ip) = target.ip {
        return Ok(vec![SocketAddr::new(ip, target.port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| Failure::Retry {
            reason: format!("resolving {}: {e}", target.host),
            after: None,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(Failure::Retry {
            reason: Refused::NoAddress {
                host: target.host.clone(),
            }
            .to_string(),
            after: None,
        });
    }
    for addr in &addrs {
        policy
            .check_addr(&target.host, addr.ip())
            .map_err(Failure::Refused)?;
    }
    Ok(addrs)
}

/// 2xx is delivered; 408, 429 and 5xx are retried (after `Retry-After` seconds when given);
/// redirects and other statuses are not.
fn judge(host: &str, response: &Response) -> Result<StatusCode, Failure> {
    let status = response.status();
    if status.is_success() {
        return Ok(status);
    }
    let reason = format!("{host} answered HTTP {status}");
    if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        let after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return Err(Failure::Retry { reason, after });
    }
    if status.is_redirection() {
        return Err(Failure::Rejected(format!(
            "{reason}: redirects are not followed"
        )));
    }
    Err(Failure::Rejected(reason))
}

/// A reqwest error with its causes, without the URL (its path or query may hold a token).
fn describe(err: reqwest::Error) -> String {
    if err.is_timeout() {
        return "timed out".to_owned();
    }
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
