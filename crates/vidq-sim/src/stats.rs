//! What the simulator saw: the [`Stats`] snapshot and the counters behind it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// A snapshot of everything the simulator counted, as served by `GET /_sim/stats`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// `reference_video_url` → number of ACCEPTED submissions (refused ones are not counted).
    pub submissions: BTreeMap<String, u64>,
    /// Every `POST /api/v1/video2video/generate` that reached the simulator, accepted or not
    /// (faulted ones included).
    pub submit_requests: u64,
    /// `img_uuid` → status requests answered for that known job.
    pub status_requests: BTreeMap<String, u64>,
    /// Result-URL `GET`s answered with 2xx.
    pub downloads: u64,
    /// Body bytes of result URLs actually written to clients.
    pub bytes_served: u64,
    /// `GET /api/v1/user/tokens` requests.
    pub token_requests: u64,
    /// `GET /api/v1/video2video/modellist` requests.
    pub modellist_requests: u64,
    /// Credit balance now.
    pub credits: i64,
    /// Most accepted jobs running (submitted, processing time not yet over) at once since the
    /// start: with a `queue_limit`, never above it.
    #[serde(default)]
    pub peak_running: u64,
    /// Every accepted job, by `img_uuid`.
    pub jobs: BTreeMap<String, JobStats>,
    /// Requests refused by the simulated service's own rules.
    pub rejected: Rejections,
    /// Faults injected so far.
    pub faults: FaultCounts,
}

/// One accepted job as the simulator decided it at submission.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobStats {
    /// Final outcome: `success` or `failed` (whether or not the job got there yet).
    pub status: String,
    /// True once the processing time has elapsed.
    pub finished: bool,
    /// Processing time drawn at submission.
    pub processing_ms: u64,
    /// Size in bytes of the result video.
    pub size: u64,
    /// Hex sha256 of the result video; `None` for failed jobs and results over 64 MiB (compute
    /// those with [`crate::result_bytes_sha256`]).
    pub sha256: Option<String>,
    /// The submitted `reference_video_url`.
    pub reference_video_url: String,
    /// The submitted `model`.
    pub model: i64,
    /// Result-URL `GET`s of this job answered with 2xx (a part of `Stats::downloads`).
    #[serde(default)]
    pub downloads: u64,
    /// When it was accepted (Unix ms, the simulator's clock).
    #[serde(default)]
    pub submitted_unix_ms: u64,
}

/// Requests the simulated service refused, by reason.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rejections {
    /// Missing or wrong API key (HTTP 401).
    pub unauthorized: u64,
    /// Envelope code 400.
    pub invalid_args: u64,
    /// Envelope code 402.
    pub insufficient_credits: u64,
    /// Envelope code 429 with HTTP 200: the queue limit.
    pub queue_limited: u64,
    /// HTTP 429 from the configured request rate limit.
    pub rate_limited: u64,
    /// Envelope code 404 on status requests, and 404s on result URLs.
    pub unknown_job: u64,
    /// Result URLs refused with 403 (expired or bad signature).
    pub forbidden_url: u64,
}

/// Faults injected so far, by kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultCounts {
    /// Injected HTTP 429s.
    pub http_429: u64,
    /// Injected HTTP 5xx answers.
    pub http_5xx: u64,
    /// Connections closed without an answer.
    pub dropped: u64,
    /// HTTP 200 answers with a broken body.
    pub malformed: u64,
    /// Status answers carrying an unknown status.
    pub unknown_status: u64,
    /// Jobs decided to fail.
    pub jobs_failed: u64,
}

/// Lock-free counters behind [`Stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) submit_requests: AtomicU64,
    pub(crate) downloads: AtomicU64,
    pub(crate) bytes_served: AtomicU64,
    pub(crate) token_requests: AtomicU64,
    pub(crate) modellist_requests: AtomicU64,
    pub(crate) unauthorized: AtomicU64,
    pub(crate) invalid_args: AtomicU64,
    pub(crate) insufficient_credits: AtomicU64,
    pub(crate) queue_limited: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) unknown_job: AtomicU64,
    pub(crate) forbidden_url: AtomicU64,
    pub(crate) http_429: AtomicU64,
    pub(crate) http_5xx: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) malformed: AtomicU64,
    pub(crate) unknown_status: AtomicU64,
    pub(crate) jobs_failed: AtomicU64,
    pub(crate) peak_running: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    /// Fills the counter fields of `stats`.
    pub(crate) fn fill(&self, stats: &mut Stats) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        stats.submit_requests = get(&self.submit_requests);
        stats.downloads = get(&self.downloads);
        stats.bytes_served = get(&self.bytes_served);
        stats.token_requests = get(&self.token_requests);
        stats.modellist_requests = get(&self.modellist_requests);
        stats.peak_running = get(&self.peak_running);
        stats.rejected = Rejections {
            unauthorized: get(&self.unauthorized),
            invalid_args: get(&self.invalid_args),
            insufficient_credits: get(&self.insufficient_credits),
            queue_limited: get(&self.queue_limited),
            rate_limited: get(&self.rate_limited),
            unknown_job: get(&self.unknown_job),
            forbidden_url: get(&self.forbidden_url),
        };
        stats.faults = FaultCounts {
            http_429: get(&self.http_429),
            http_5xx: get(&self.http_5xx),
            dropped: get(&self.dropped),
            malformed: get(&self.malformed),
            unknown_status: get(&self.unknown_status),
            jobs_failed: get(&self.jobs_failed),
        };
    }
}
