//! Limits checked in the same atomic step as a create: an owner's unfinished jobs at once, the
//! jobs it creates per UTC day (by Redis's clock), and the backlog cap on every unfinished job.
//!
//! Counted from two sets kept by the scripts that create jobs and move them between states
//! (`{jobs}:unfinished` and `{jobs}:tenant:<owner>:unfinished`: an id goes in when its job is
//! created unfinished or reopened, and out when it ends), and one counter per owner and day
//! (`{jobs}:tenant:<owner>:today`, reset when Redis's UTC day changes). Sets of ids rather than counters: adding or
//! removing an id twice changes nothing, and their size is exact at every instant.

use std::fmt;
use std::time::Duration;

/// Limits of one create (`None`: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CreateQuota {
    /// Most unfinished jobs the owner may have at once.
    pub unfinished: Option<u64>,
    /// Most jobs the owner may create per UTC day (Redis's clock).
    pub per_day: Option<u64>,
    /// Most unfinished jobs in all, every owner's (and owner-less jobs) together.
    pub backlog: Option<u64>,
}

/// Which limit refused a create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    /// [`CreateQuota::unfinished`].
    Unfinished,
    /// [`CreateQuota::per_day`].
    PerDay,
    /// [`CreateQuota::backlog`].
    Backlog,
}

impl QuotaKind {
    /// The name an API shows: `unfinished_jobs`, `daily_submissions` or `backlog`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unfinished => "unfinished_jobs",
            Self::PerDay => "daily_submissions",
            Self::Backlog => "backlog",
        }
    }
}

impl fmt::Display for QuotaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A create refused by a limit: nothing was written for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaExceeded {
    /// Which limit.
    pub kind: QuotaKind,
    /// Its value.
    pub limit: u64,
    /// When it frees up for sure, if known: the daily quota at the next UTC midnight by
    /// Redis's clock. The others free up as jobs end.
    pub retry_after: Option<Duration>,
}

impl fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            QuotaKind::Unfinished => write!(
                f,
                "the tenant has {} unfinished jobs, its quota",
                self.limit
            ),
            QuotaKind::PerDay => write!(
                f,
                "the tenant created {} jobs today (UTC), its daily quota",
                self.limit
            ),
            QuotaKind::Backlog => write!(
                f,
                "the backlog holds {} unfinished jobs, its cap",
                self.limit
            ),
        }
    }
}

impl CreateQuota {
    pub(super) fn arg(limit: Option<u64>) -> u64 {
        limit.unwrap_or(0)
    }

    /// What the create script's refusal `code` means.
    pub(super) fn refusal(&self, code: i64, to_midnight: u64) -> Option<QuotaExceeded> {
        let (kind, limit, retry_after) = match code {
            -1 => (QuotaKind::Unfinished, self.unfinished, None),
            -2 => (
                QuotaKind::PerDay,
                self.per_day,
                Some(Duration::from_secs(to_midnight.max(1))),
            ),
            -3 => (QuotaKind::Backlog, self.backlog, None),
            _ => return None,
        };
        Some(QuotaExceeded {
            kind,
            limit: limit.unwrap_or(0),
            retry_after,
        })
    }
}
