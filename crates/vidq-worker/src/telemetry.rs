//! The worker's Prometheus metrics: installed once, every family described and present from
//! the start (at zero), so dashboards and alerts see them before the first event.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use vidq_core::{EPOCH_CHANGES_METRIC, JobState, TaskKind};

const SECONDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Installs the global recorder and registers every family.
pub(crate) fn install() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS)?
        .install_recorder()?;
    describe_gauge!(
        "vidq_jobs",
        "Jobs in each unfinished state now (all replicas)."
    );
    describe_gauge!(
        "vidq_jobs_ended",
        "Jobs that ended in each terminal state (all replicas)."
    );
    describe_counter!(
        "vidq_jobs_finished_total",
        "Jobs this process ended, by final state."
    );
    describe_histogram!(
        "vidq_task_duration_seconds",
        Unit::Seconds,
        "Time a task took, by kind."
    );
    describe_histogram!(
        "vidq_poll_lateness_seconds",
        Unit::Seconds,
        "How late a poll ran after its due time."
    );
    describe_counter!(
        "vidq_upstream_calls_total",
        "Upstream API calls, by endpoint and outcome."
    );
    describe_counter!(
        "vidq_bytes_transferred_total",
        Unit::Bytes,
        "Video bytes downloaded from upstream."
    );
    describe_gauge!(
        "vidq_queue_depth",
        "Tasks per queue and state (due, scheduled, leased, dead)."
    );
    describe_counter!(
        "vidq_uncertain_submissions_total",
        "Submissions repeated after an attempt whose outcome upstream did not confirm."
    );
    describe_counter!("vidq_submissions_total", "Jobs upstream accepted.");
    describe_histogram!(
        "vidq_submission_unrecorded_seconds",
        Unit::Seconds,
        "From upstream's accepting reply to its job id stored: the window in which a crash leaves a possible duplicate."
    );
    describe_counter!(
        "vidq_upstream_credits_spent_total",
        "Credits upstream charged."
    );
    describe_gauge!(
        "vidq_upstream_credits",
        "Upstream credit balance, as last read."
    );
    describe_gauge!(
        "vidq_upstream_queue_limit",
        "Jobs the upstream plan lets run at once, as last read."
    );
    describe_gauge!(
        "vidq_redis_may_evict",
        "1 when Redis's maxmemory-policy (read at start) is not noeviction: it may delete jobs under memory pressure."
    );
    describe_counter!(
        "vidq_upstream_unknown_status_total",
        "Status answers with a status vidq does not know."
    );
    describe_counter!(
        "vidq_limit_deferrals_total",
        "Upstream calls deferred by a shared limit, by reason."
    );
    describe_counter!(
        "vidq_reconciler_requeued_total",
        "Stuck jobs re-enqueued by the reconciler, by task kind."
    );
    describe_counter!(
        "vidq_reconciler_undecodable_total",
        "Job records the reconciler met and could not decode (each counted once per process)."
    );
    describe_counter!(
        EPOCH_CHANGES_METRIC,
        "Times this process saw Redis lose its data (its epoch marker missing or changed)."
    );

    for state in [JobState::Succeeded, JobState::Failed, JobState::Expired] {
        metrics::counter!("vidq_jobs_finished_total", "state" => state.as_str()).absolute(0);
    }
    for kind in TaskKind::ALL {
        // Registering the handle is enough for the family to be rendered.
        let _registered =
            metrics::histogram!("vidq_task_duration_seconds", "kind" => kind.queue_name());
    }
    let _registered = metrics::histogram!("vidq_poll_lateness_seconds");
    for endpoint in ["generate", "detail"] {
        metrics::counter!("vidq_upstream_calls_total", "endpoint" => endpoint, "outcome" => "ok")
            .absolute(0);
    }
    for name in [
        "vidq_bytes_transferred_total",
        "vidq_uncertain_submissions_total",
        "vidq_submissions_total",
        "vidq_upstream_credits_spent_total",
        "vidq_upstream_unknown_status_total",
        "vidq_reconciler_undecodable_total",
        EPOCH_CHANGES_METRIC,
    ] {
        metrics::counter!(name).absolute(0);
    }
    Ok(handle)
}
