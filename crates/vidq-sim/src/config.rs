//! The simulator's knobs: [`SimConfig`] for the service, [`Faults`] for what goes wrong.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything the simulated service can be told. `Default` gives a well-behaved upstream on
/// `127.0.0.1:0` with the key `sim-key`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    /// Address to bind; port 0 picks a free one (read it back with [`crate::SimServer::addr`]).
    pub listen: SocketAddr,
    /// The one API key accepted in `Authorization: Bearer <key>`.
    pub api_key: String,
    /// Shortest processing time of a job (uniformly drawn between min and max).
    pub processing_min: Duration,
    /// Longest processing time of a job.
    pub processing_max: Duration,
    /// Size in bytes of every result video.
    pub result_size: u64,
    /// Bytes per second each result download is held to (a slow CDN); 0 = as fast as it goes.
    pub download_rate: u64,
    /// How long a signed result URL stays valid after the status answer that carried it.
    pub url_ttl: Duration,
    /// Starting credit balance.
    pub credits: i64,
    /// Credits charged per accepted submission.
    pub cost_per_job: i64,
    /// Concurrent unfinished jobs allowed for the key; 0 = unlimited.
    pub queue_limit: u32,
    /// Requests per second allowed for the key over every API endpoint (not the result URL);
    /// 0 = unlimited. Over it: HTTP 429 with `Retry-After`.
    pub rate_limit_per_sec: u32,
    /// Seeds job ids, outcomes, processing times and fault draws.
    pub seed: u64,
    /// Faults injected from the start (change them later with
    /// [`crate::SimServer::set_faults`] or `POST /_sim/faults`).
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            api_key: "sim-key".to_owned(),
            processing_min: Duration::from_secs(2),
            processing_max: Duration::from_secs(5),
            result_size: 1024 * 1024,
            download_rate: 0,
            url_ttl: Duration::from_secs(24 * 3600),
            credits: 1_000_000,
            cost_per_job: 10,
            queue_limit: 0,
            rate_limit_per_sec: 0,
            seed: 0,
            faults: Faults::default(),
        }
    }
}

/// Faults injected into API answers (generate, detail, tokens, modellist; never `/_sim/*` nor
/// the result URL). Each `rate_*` is a probability in `0.0..=1.0` drawn per request.
///
/// A 429 or 5xx fault answers before the request is looked at (nothing happens upstream); a
/// dropped connection or a malformed body replaces the answer after the request took effect
/// (a submission is accepted and charged, the caller just never learns its `img_uuid`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Delay added before every API answer.
    pub latency: Duration,
    /// Fraction answered HTTP 429 with `Retry-After: retry_after_secs`.
    pub rate_429: f64,
    /// `Retry-After` seconds on injected 429s.
    pub retry_after_secs: u64,
    /// Fraction answered HTTP 500/502/503, with an envelope or an HTML body.
    pub rate_5xx: f64,
    /// Fraction whose connection is closed without an answer.
    pub rate_drop: f64,
    /// Fraction answered HTTP 200 with a truncated or non-JSON body.
    pub rate_malformed: f64,
    /// Fraction of submitted jobs that end `failed` (decided at submission).
    pub rate_job_failed: f64,
    /// Report finished jobs as `completed` instead of `success`.
    pub completed_status: bool,
    /// Fraction of status answers for a running job that carry an unknown status (`queued_v2`).
    pub rate_unknown_status: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            rate_429: 0.0,
            retry_after_secs: 1,
            rate_5xx: 0.0,
            rate_drop: 0.0,
            rate_malformed: 0.0,
            rate_job_failed: 0.0,
            completed_status: false,
            rate_unknown_status: 0.0,
        }
    }
}
