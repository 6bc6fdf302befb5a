//! Per-queue settings: lease, batching, retry policy, dead-task retention.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::QueueError;
use crate::fair::escape_group;

/// Largest claim / ack / renewal batch a single script handles.
pub(crate) const MAX_BATCH: usize = 1000;

/// Settings of one queue. Build with [`QueueConfig::new`] and adjust the public fields.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Key prefix; keys are `<prefix>:{<queue>}:<kind>`. Default `vidq`.
    pub prefix: String,
    /// Queue name; it is the Redis Cluster hash tag, so all keys of a queue share a slot.
    pub queue: String,
    /// Visibility timeout of a claimed task. Default 30 s.
    pub lease: Duration,
    /// How often held leases are renewed. Default `lease / 3`; keep it several times shorter
    /// than `lease`.
    pub renew_every: Duration,
    /// Most tasks one claim takes (1..=1000). Default 50.
    pub claim_batch: usize,
    /// Most acks sent in one round trip by the background batcher (1..=1000). Default 500.
    pub ack_batch: usize,
    /// A task claimed more often than this without finishing (it crashes its worker) goes
    /// to the dead set. Default 10.
    pub max_deliveries: u64,
    /// What to do with a task whose handler returned an error.
    pub retry: RetryPolicy,
    /// How long dead tasks are kept. Default 7 days.
    pub dead_ttl: Duration,
    /// Longest an idle worker sleeps before it looks again even without a wake-up. Default 5 s.
    pub idle_poll: Duration,
    /// Serve groups of tasks in turn (see [`QueueConfig::with_fair_share`]). Default none:
    /// one due-time order.
    pub fair: Option<FairShare>,
}

/// A fair queue's weights: a group of weight 2 gets twice the tasks of a group of weight 1
/// while both have work due. Groups not named weigh 1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FairShare {
    /// Group name -> weight (1..=10000).
    pub weights: BTreeMap<String, u32>,
}

impl QueueConfig {
    /// Defaults for the queue named `queue`.
    #[must_use]
    pub fn new(queue: impl Into<String>) -> Self {
        let lease = Duration::from_secs(30);
        Self {
            prefix: "vidq".to_owned(),
            queue: queue.into(),
            lease,
            renew_every: lease / 3,
            claim_batch: 50,
            ack_batch: 500,
            max_deliveries: 10,
            retry: RetryPolicy::default(),
            dead_ttl: Duration::from_secs(7 * 24 * 3600),
            idle_poll: Duration::from_secs(5),
            fair: None,
        }
    }

    /// Set the key prefix.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Set the lease and renew it every third of it.
    #[must_use]
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self.renew_every = lease / 3;
        self
    }

    /// Make this a fair queue: tasks pushed with a [`Place`](crate::Place) wait in their
    /// group, and each claim takes from the group with due work that has had the least so far
    /// (by weight), highest priority first within it. Tasks pushed without one share a
    /// group of their own.
    #[must_use]
    pub fn with_fair_share(mut self, weights: BTreeMap<String, u32>) -> Self {
        self.fair = Some(FairShare { weights });
        self
    }

    /// Set the retry policy.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), QueueError> {
        let bad = |why: &str| Err(QueueError::Config(why.to_owned()));
        if self.queue.is_empty() || self.queue.contains(['{', '}']) {
            return bad("queue name must be non-empty and free of braces");
        }
        if self.prefix.contains(['{', '}']) {
            return bad("prefix must be free of braces");
        }
        if self.lease < Duration::from_millis(100) {
            return bad("lease must be at least 100 ms");
        }
        if self.renew_every.is_zero() || self.renew_every * 2 > self.lease {
            return bad("renew_every must be non-zero and at most half the lease");
        }
        if !(1..=MAX_BATCH).contains(&self.claim_batch)
            || !(1..=MAX_BATCH).contains(&self.ack_batch)
        {
            return bad("claim_batch and ack_batch must be within 1..=1000");
        }
        if self.max_deliveries == 0 || self.retry.max_attempts == 0 {
            return bad("max_deliveries and retry.max_attempts must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.retry.jitter) {
            return bad("retry.jitter must be within 0..=1");
        }
        if self.idle_poll.is_zero() {
            return bad("idle_poll must be non-zero");
        }
        if let Some(fair) = &self.fair {
            if fair.weights.len() > MAX_BATCH {
                return bad("fair share: at most 1000 weights");
            }
            for (group, weight) in &fair.weights {
                if escape_group(group).is_err() {
                    return bad("fair share: group names must be 1 to 128 bytes");
                }
                if !(1..=10_000).contains(weight) {
                    return Err(QueueError::Config(format!(
                        "fair share: the weight of {group:?} must be within 1..=10000"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Retries with exponential backoff and jitter.
///
/// Attempt `n` (1-based) that fails waits `min(base * 2^(n-1), max)`, shortened by up to
/// `jitter` (a fraction) at random, unless the handler asked for a specific delay with
/// [`TaskError::retry_after`](crate::TaskError::retry_after). After `max_attempts` failed
/// attempts the task goes to the dead set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included. Default 5.
    pub max_attempts: u64,
    /// Delay after the first failure. Default 1 s.
    pub base: Duration,
    /// Longest delay. Default 10 min.
    pub max: Duration,
    /// Random fraction (0..=1) taken off each delay. Default 0.2.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base: Duration::from_secs(1),
            max: Duration::from_secs(600),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt `attempt` (1-based).
    #[must_use]
    pub fn backoff(&self, attempt: u64) -> Duration {
        let exp = u32::try_from(attempt.saturating_sub(1).min(30)).unwrap_or(30);
        let raw = self
            .base
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.max);
        if self.jitter <= 0.0 {
            return raw;
        }
        let cut = rand::random::<f64>() * self.jitter;
        raw.mul_f64(1.0 - cut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            max_attempts: 10,
            base: Duration::from_millis(100),
            max: Duration::from_millis(500),
            jitter: 0.0,
        };
        let got: Vec<u128> = (1..=5).map(|n| p.backoff(n).as_millis()).collect();
        assert_eq!(got, vec![100, 200, 400, 500, 500]);
    }

    #[test]
    fn jitter_only_shortens_within_bounds() {
        let p = RetryPolicy {
            jitter: 0.5,
            ..RetryPolicy::default()
        };
        for _ in 0..200 {
            let d = p.backoff(2);
            assert!(
                d <= Duration::from_secs(2) && d >= Duration::from_secs(1),
                "{d:?}"
            );
        }
    }

    #[test]
    fn rejects_bad_settings() {
        assert!(QueueConfig::new("q").validate().is_ok());
        assert!(QueueConfig::new("a{b}").validate().is_err());
        let mut c = QueueConfig::new("q");
        c.renew_every = c.lease;
        assert!(c.validate().is_err());
        let mut c = QueueConfig::new("q");
        c.claim_batch = 5000;
        assert!(c.validate().is_err());
    }
}
