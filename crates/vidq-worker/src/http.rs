//! The worker's own HTTP endpoints: `/healthz` (alive), `/readyz` (Redis answers and has not
//! lost its data lately), `/metrics` (Prometheus text).

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use vidq_core::{EpochStatus, JobStore, JobTask, TaskKind};
use vidq_queue::RedisQueue;
use vidq_redis::Conn;

#[derive(Clone)]
pub(crate) struct Probes {
    pub(crate) redis: Conn,
    pub(crate) metrics: PrometheusHandle,
    pub(crate) queues: Vec<(TaskKind, RedisQueue<JobTask>)>,
    pub(crate) store: JobStore,
    pub(crate) epoch: EpochStatus,
}

/// Serves the probes on `listener` until `stop` is cancelled.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    probes: Probes,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(probes);
    axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}

pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

async fn ready(State(probes): State<Probes>) -> (StatusCode, String) {
    if let Some(reason) = probes.epoch.not_ready_reason() {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n"));
    }
    let mut conn = probes.redis.clone();
    match redis::cmd("PING").query_async::<String>(&mut conn).await {
        Ok(_) => (StatusCode::OK, "ready\n".to_owned()),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "redis unreachable\n".to_owned(),
        ),
    }
}

async fn metrics(State(probes): State<Probes>) -> String {
    for (kind, queue) in &probes.queues {
        if let Ok(depth) = queue.depth().await {
            let name = kind.queue_name();
            metrics::gauge!("vidq_queue_depth", "queue" => name, "state" => "due")
                .set(depth.due as f64);
            metrics::gauge!("vidq_queue_depth", "queue" => name, "state" => "scheduled")
                .set(depth.scheduled as f64);
            metrics::gauge!("vidq_queue_depth", "queue" => name, "state" => "leased")
                .set(depth.leased as f64);
            metrics::gauge!("vidq_queue_depth", "queue" => name, "state" => "dead")
                .set(depth.dead as f64);
        }
    }
    if let Ok(counts) = probes.store.state_counts().await {
        for (state, n) in counts {
            let family = if state.is_terminal() {
                "vidq_jobs_ended"
            } else {
                "vidq_jobs"
            };
            metrics::gauge!(family, "state" => state.as_str()).set(n as f64);
        }
    }
    probes.metrics.render()
}
