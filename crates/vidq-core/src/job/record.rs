//! `JobRecord`: everything the job store keeps about one job, and the event published when
//! a job finishes.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{JobId, JobState, TransformRequest};

/// Milliseconds since the Unix epoch, now.
#[must_use]
pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A signed download URL: a bearer credential, so its `Debug` form hides everything but the
/// host. Read it with [`SignedUrl::expose`] where it is used.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SignedUrl(String);

impl SignedUrl {
    /// Wraps a signed URL.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL itself, to download from.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SignedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = url::Url::parse(&self.0)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        write!(f, "SignedUrl({host}/<redacted>)")
    }
}

/// Where a succeeded job's video is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// S3 bucket.
    pub bucket: String,
    /// Object key (deterministic per job).
    pub key: String,
    /// Object size.
    pub bytes: u64,
    /// Lowercase hex sha256 of the object.
    pub sha256: String,
    /// MIME type, e.g. `video/mp4`.
    pub content_type: String,
}

/// One entry of a job's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// The state the job left.
    pub from: JobState,
    /// The state the job entered.
    pub to: JobState,
    /// When, in Unix milliseconds.
    pub at_ms: u64,
    /// Why, when the mover said.
    pub note: Option<String>,
}

/// Everything the store keeps about one job. The Redis hash is the source of truth; this is
/// its decoded form.
///
/// The serde form is the public view of a job (for APIs and CLIs): it leaves out the signed
/// `result_url`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job's id.
    pub id: JobId,
    /// What was asked for.
    pub request: TransformRequest,
    /// The tenant that owns the job (the API token's name, or what a Rust producer passed);
    /// `None` for records written before jobs had owners, which only an admin sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Where the job is now.
    pub state: JobState,
    /// Upstream's job id, once upstream accepted the job.
    pub img_uuid: Option<String>,
    /// Submission attempts so far.
    pub attempts: u32,
    /// When the job was created, Unix ms.
    pub created_at: u64,
    /// When the record last changed, Unix ms.
    pub updated_at: u64,
    /// When the job expires if not finished, Unix ms.
    pub deadline_at: u64,
    /// Why the job failed, when it did.
    pub error: Option<String>,
    /// The signed URL of upstream's result, while it is being transferred.
    #[serde(skip_serializing, default)]
    pub result_url: Option<SignedUrl>,
    /// The stored video, once succeeded.
    pub output: Option<Output>,
    /// Credits upstream charged, when it said.
    pub upstream_cost: Option<f64>,
    /// Upstream's `request_id` of the submission, when it gave one.
    pub upstream_request_id: Option<String>,
    /// The newest transitions, oldest first (capped by the store).
    pub history: Vec<Transition>,
    /// The W3C trace context the job was created in (the API request's span), so each of
    /// its tasks is a span of that trace; `None` when the creator had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceContext>,
}

/// A W3C trace context as carried by the `traceparent` and `tracestate` headers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    /// `00-<trace id>-<parent span id>-<flags>`.
    pub traceparent: String,
    /// Vendor entries, when there were any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// The 32-hex-digit trace id of a well-formed `traceparent`.
    #[must_use]
    pub fn trace_id(&self) -> Option<&str> {
        let mut parts = self.traceparent.split('-');
        let (_version, id) = (parts.next()?, parts.next()?);
        (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
    }
}

impl JobRecord {
    /// A new `queued` job created now, with a fresh id, expiring `deadline` from now.
    #[must_use]
    pub fn new(request: TransformRequest, deadline: Duration) -> Self {
        let now = unix_ms_now();
        let deadline_ms = u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX);
        Self {
            id: JobId::new(),
            request,
            owner: None,
            state: JobState::Queued,
            img_uuid: None,
            attempts: 0,
            created_at: now,
            updated_at: now,
            deadline_at: now.saturating_add(deadline_ms),
            error: None,
            result_url: None,
            output: None,
            upstream_cost: None,
            upstream_request_id: None,
            history: Vec::new(),
            trace: None,
        }
    }
}

/// Published as JSON on `<prefix>:{jobs}:events` when a job reaches a terminal state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobEvent {
    /// The job.
    pub id: JobId,
    /// The terminal state it reached.
    pub state: JobState,
    /// When, Unix ms.
    pub at_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_url_debug_hides_the_signature() {
        let url = SignedUrl::new("https://cdn.example/v.mp4?X-Amz-Signature=abcdef123");
        let shown = format!("{url:?}");
        assert!(shown.contains("cdn.example"), "{shown}");
        assert!(!shown.contains("abcdef123"), "{shown}");
    }

    #[test]
    fn public_view_leaves_out_the_result_url() {
        let request = TransformRequest::new("https://videos.example/a.mp4", 2000).unwrap();
        let mut record = JobRecord::new(request, Duration::from_secs(1800));
        record.result_url = Some(SignedUrl::new("https://cdn.example/v.mp4?sig=secret"));
        let json = serde_json::to_string(&record).unwrap();
        assert!(!json.contains("secret"), "{json}");
        assert_eq!(record.deadline_at - record.created_at, 1_800_000);
    }
}
