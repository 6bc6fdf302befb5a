//! The heartbeat of this worker process in the registry of live workers
//! ([`vidq_core::workers`]): a beat at start and every `heartbeat.interval`, live for
//! [`HEARTBEAT_TTL_BEATS`] intervals by Redis time, removed at once when the daemon stops.

use std::time::Duration;

use serde::Deserialize;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use vidq_core::TaskKind;
use vidq_core::workers::{
    DEFAULT_HEARTBEAT_INTERVAL, HEARTBEAT_TTL_BEATS, QueueLoad, WorkerInfo, WorkerRegistry,
};
use vidq_queue::WorkerLeases;

/// `[heartbeat]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatSettings {
    /// How often this process beats; it is listed for 3 intervals past its last beat.
    #[serde(with = "humantime_serde", default = "default_interval")]
    pub interval: Duration,
}

impl Default for HeartbeatSettings {
    fn default() -> Self {
        Self {
            interval: DEFAULT_HEARTBEAT_INTERVAL,
        }
    }
}

fn default_interval() -> Duration {
    DEFAULT_HEARTBEAT_INTERVAL
}

/// One queue this process runs: its concurrency and the leases its worker holds.
pub(crate) struct Queue {
    pub(crate) kind: TaskKind,
    pub(crate) concurrency: usize,
    pub(crate) leases: WorkerLeases,
}

/// Beats until `stop` is cancelled, then removes this process from the registry. Redis
/// errors are logged (once until a beat succeeds again) and the beat is tried next interval.
pub(crate) async fn run(
    registry: WorkerRegistry,
    interval: Duration,
    queues: Vec<Queue>,
    stop: CancellationToken,
) {
    let mut info = WorkerInfo::for_this_process(loads(&queues));
    let ttl = interval * HEARTBEAT_TTL_BEATS;
    tracing::info!(worker.id = %info.id, heartbeat.interval = ?interval, "registered as a live worker");
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        info.queues = loads(&queues);
        let beat = tokio::select! {
            () = stop.cancelled() => break,
            beat = registry.beat(&mut info, ttl) => beat,
        };
        match beat {
            Ok(()) => failing = false,
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(worker.id = %info.id, %error, "heartbeat failed; trying again next interval");
            }
            Err(_) => {}
        }
    }
    match registry.remove(&info.id).await {
        Ok(_) => tracing::info!(worker.id = %info.id, "removed from the live workers"),
        Err(error) => {
            tracing::warn!(worker.id = %info.id, %error, "could not remove this worker from the registry; it drops out when its heartbeat expires")
        }
    }
}

fn loads(queues: &[Queue]) -> Vec<QueueLoad> {
    queues
        .iter()
        .map(|q| QueueLoad {
            queue: q.kind.queue_name().to_owned(),
            concurrency: q.concurrency,
            running: q.leases.count(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::WorkerSettings;

    fn env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        [
            ("VIDQ__GOENHANCE__API_KEY", "k-123"),
            ("VIDQ__STORAGE__BUCKET", "videos"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    #[test]
    fn the_interval_defaults_to_5s_and_is_checked() {
        let s = WorkerSettings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.heartbeat.interval, Duration::from_secs(5));

        let s =
            WorkerSettings::load_from(None, env(&[("VIDQ__HEARTBEAT__INTERVAL", "2s")])).unwrap();
        assert_eq!(s.heartbeat.interval, Duration::from_secs(2));

        let err = WorkerSettings::load_from(None, env(&[("VIDQ__HEARTBEAT__INTERVAL", "50ms")]))
            .unwrap_err();
        assert!(err.to_string().contains("heartbeat.interval"), "{err}");
    }
}
