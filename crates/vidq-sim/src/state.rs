//! The simulated service's state: jobs (sharded), the account, the request rate window.
//!
//! Locks are `std` mutexes held for a few instructions and never across an `.await`.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::config::{Faults, SimConfig};
use crate::content::result_bytes_sha256;
use crate::stats::{Counters, JobStats, Stats, bump};

const SHARDS: usize = 64;
/// Results larger than this get no sha256 in [`Stats`]: hashing them on every snapshot would
/// cost seconds.
const STATS_SHA256_MAX: u64 = 64 * 1024 * 1024;

/// One accepted job, decided at submission.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) reference_video_url: String,
    pub(crate) model: i64,
    pub(crate) submitted_at: Instant,
    pub(crate) submitted_unix_ms: u64,
    pub(crate) processing: Duration,
    pub(crate) failed: bool,
    pub(crate) size: u64,
    pub(crate) status_requests: u64,
    /// Result-URL `GET`s answered with 2xx.
    pub(crate) downloads: u64,
    pub(crate) sha256: Option<String>,
}

/// Where a job is in its life at a given instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Pending,
    Processing,
    Succeeded,
    Failed,
}

impl Job {
    /// Pending for the first quarter of the processing time, then processing, then done.
    pub(crate) fn phase(&self, now: Instant) -> Phase {
        let elapsed = now.saturating_duration_since(self.submitted_at);
        if elapsed >= self.processing {
            if self.failed {
                Phase::Failed
            } else {
                Phase::Succeeded
            }
        } else if elapsed < self.processing / 4 {
            Phase::Pending
        } else {
            Phase::Processing
        }
    }

    pub(crate) fn end_unix_ms(&self) -> u64 {
        self.submitted_unix_ms + self.processing.as_millis() as u64
    }
}

/// The account behind the one API key.
#[derive(Debug)]
pub(crate) struct Account {
    pub(crate) credits: i64,
    /// End instants of jobs submitted and not yet finished (pruned on use).
    pub(crate) running: Vec<Instant>,
}

/// A fixed one-second window of requests for the key.
#[derive(Debug, Default)]
struct RateWindow {
    second: u64,
    count: u32,
}

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct Sim {
    pub(crate) config: SimConfig,
    pub(crate) counters: Counters,
    /// Keyed with a secret drawn at start; signs result URLs.
    pub(crate) url_mac: Hmac<Sha256>,
    addr: SocketAddr,
    faults: RwLock<Arc<Faults>>,
    account: Mutex<Account>,
    rate: Mutex<RateWindow>,
    jobs: Box<[Mutex<HashMap<String, Job>>]>,
    hasher: RandomState,
    started: Instant,
    draws: AtomicU64,
    urls: AtomicU64,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a handler panicked mid-update of plain counters; keep serving.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Sim {
    pub(crate) fn new(config: SimConfig, addr: SocketAddr) -> std::io::Result<Self> {
        let secret: [u8; 32] = rand::random();
        let url_mac = Hmac::<Sha256>::new_from_slice(&secret)
            .map_err(|e| std::io::Error::other(format!("url signing key: {e}")))?;
        let faults = RwLock::new(Arc::new(config.faults.clone()));
        let account = Mutex::new(Account {
            credits: config.credits,
            running: Vec::new(),
        });
        Ok(Self {
            counters: Counters::default(),
            url_mac,
            addr,
            faults,
            account,
            rate: Mutex::new(RateWindow::default()),
            jobs: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            started: Instant::now(),
            draws: AtomicU64::new(0),
            urls: AtomicU64::new(0),
            config,
        })
    }

    /// The address the server listens on.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn faults(&self) -> Arc<Faults> {
        self.faults
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_faults(&self, faults: Faults) {
        *self.faults.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(faults);
    }

    /// True with probability `rate`.
    pub(crate) fn hit(&self, rate: f64) -> bool {
        if rate.is_nan() || rate <= 0.0 {
            return false;
        }
        let n = self.draws.fetch_add(1, Ordering::Relaxed);
        unit(mix(self.config.seed, n)) < rate
    }

    /// A pseudo-random index, to choose among shapes of a fault.
    pub(crate) fn pick(&self) -> usize {
        let n = self.draws.fetch_add(1, Ordering::Relaxed);
        (mix(self.config.seed, n) >> 33) as usize
    }

    /// A process-unique number for signing fresh result URLs.
    pub(crate) fn next_url_nonce(&self) -> u64 {
        self.urls.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn account(&self) -> MutexGuard<'_, Account> {
        lock(&self.account)
    }

    /// Counts one request against the per-second limit; `Err(retry_after_secs)` when over it.
    pub(crate) fn take_rate(&self) -> Result<(), u64> {
        let limit = self.config.rate_limit_per_sec;
        if limit == 0 {
            return Ok(());
        }
        let elapsed = self.started.elapsed();
        let second = elapsed.as_secs();
        let mut window = lock(&self.rate);
        if window.second != second {
            *window = RateWindow { second, count: 0 };
        }
        if window.count >= limit {
            return Err(1);
        }
        window.count += 1;
        Ok(())
    }

    /// Processing time and outcome of a job, from the seed and its id.
    pub(crate) fn decide(&self, img_uuid: &str, rate_failed: f64) -> (Duration, bool) {
        let digest = Sha256::new()
            .chain_update(self.config.seed.to_le_bytes())
            .chain_update(img_uuid.as_bytes())
            .finalize();
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&digest[i * 8..i * 8 + 8]);
            unit(u64::from_le_bytes(b))
        };
        let (lo, hi) = (self.config.processing_min, self.config.processing_max);
        let (lo, hi) = if hi < lo { (hi, lo) } else { (lo, hi) };
        let processing = lo + (hi - lo).mul_f64(word(0));
        let failed = !rate_failed.is_nan() && rate_failed > 0.0 && word(1) < rate_failed;
        (processing, failed)
    }

    fn shard(&self, img_uuid: &str) -> &Mutex<HashMap<String, Job>> {
        let i = self.hasher.hash_one(img_uuid) as usize % self.jobs.len();
        &self.jobs[i]
    }

    pub(crate) fn insert_job(&self, img_uuid: String, job: Job) {
        lock(self.shard(&img_uuid)).insert(img_uuid, job);
    }

    /// Runs `f` on the job under its shard's lock.
    pub(crate) fn with_job<R>(&self, img_uuid: &str, f: impl FnOnce(&mut Job) -> R) -> Option<R> {
        lock(self.shard(img_uuid)).get_mut(img_uuid).map(f)
    }

    /// Counts one result download of `img_uuid`, overall and for the job.
    pub(crate) fn count_download(&self, img_uuid: &str) {
        bump(&self.counters.downloads);
        self.with_job(img_uuid, |job| job.downloads += 1);
    }

    /// A consistent-enough snapshot: counters are read without stopping traffic.
    pub(crate) fn stats(&self) -> Stats {
        let now = Instant::now();
        let mut stats = Stats::default();
        for shard in self.jobs.iter() {
            for (id, job) in lock(shard).iter() {
                *stats
                    .submissions
                    .entry(job.reference_video_url.clone())
                    .or_default() += 1;
                if job.status_requests > 0 {
                    stats
                        .status_requests
                        .insert(id.clone(), job.status_requests);
                }
                let phase = job.phase(now);
                stats.jobs.insert(
                    id.clone(),
                    JobStats {
                        status: if job.failed { "failed" } else { "success" }.to_owned(),
                        finished: matches!(phase, Phase::Succeeded | Phase::Failed),
                        processing_ms: job.processing.as_millis() as u64,
                        size: job.size,
                        sha256: job.sha256.clone(),
                        reference_video_url: job.reference_video_url.clone(),
                        model: job.model,
                        downloads: job.downloads,
                        submitted_unix_ms: job.submitted_unix_ms,
                    },
                );
            }
        }
        // Hash outside the shard locks, then cache the result on the job.
        for (id, job) in stats.jobs.iter_mut() {
            if job.sha256.is_none() && job.status == "success" && job.size <= STATS_SHA256_MAX {
                let sha = result_bytes_sha256(id, job.size);
                self.with_job(id, |j| j.sha256 = Some(sha.clone()));
                job.sha256 = Some(sha);
            }
        }
        self.counters.fill(&mut stats);
        stats.credits = self.account().credits;
        stats
    }
}

fn mix(seed: u64, n: u64) -> u64 {
    let mut z = (seed ^ n.wrapping_mul(0xD1B5_4A32_D192_ED03)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Maps 64 random bits to `0.0..1.0`.
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}
