//! Reads the upstream credit balance periodically: a gauge for dashboards and alerts, and a
//! copy in Redis for `vidq usage`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::pipeline::Pipeline;

pub(crate) async fn watch_credits(pipeline: Pipeline, every: Duration, stop: CancellationToken) {
    if let Err(err) = pipeline.limits().record_budget().await {
        tracing::debug!(error = %err, "could not store the daily submission budget");
    }
    if every.is_zero() {
        return;
    }
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        // Background work, not any job's: each check is a trace of its own (a root span
        // `check credits` with the `GET goenhance tokens` call under it), on purpose.
        let check = tracing::info_span!(
            parent: None,
            "check credits",
            otel.name = "check credits",
            otel.kind = "internal"
        );
        match tracing::Instrument::instrument(pipeline.upstream().tokens(), check.clone()).await {
            Ok(tokens) => {
                metrics::gauge!("vidq_upstream_credits").set(tokens.count);
                if let Some(limit) = tokens.queue_limit {
                    metrics::gauge!("vidq_upstream_queue_limit").set(f64::from(limit));
                }
                // `at_ms` is added by Redis's clock.
                let json = serde_json::json!({
                    "count": tokens.count,
                    "queue_limit": tokens.queue_limit,
                });
                if let Err(err) = pipeline.limits().record_balance(&json.to_string()).await {
                    tracing::debug!(error = %err, "could not store the credit balance");
                }
            }
            Err(err) => tracing::warn!(error = %err, "could not read the upstream credit balance"),
        }
    }
}
