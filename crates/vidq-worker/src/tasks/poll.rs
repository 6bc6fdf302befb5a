//! `poll`: one status request. Still running → the same task is rescheduled one interval later
//! (atomically with its ack) and returns: nothing waits in memory. Done → `transfer`, or
//! `failed`.

use apalis::prelude::{Attempt, Data};
use tracing::instrument;
use vidq_core::{JobId, JobState, JobTask, Patch, SignedUrl, TaskKind, Transitioned};
use vidq_goenhance::{Error as UpstreamError, JobDetail, JobStatus};
use vidq_queue::{Delivery, Reschedule};

use super::{TaskResult, TaskTimer, retry, transient};
use crate::limits::Admission;
use crate::pipeline::Pipeline;

// A span of the job's trace (messaging semantic conventions): its parent, the request that
// created the job, is set once the record is read.
#[instrument(skip_all, fields(job.id = %task.job, task.attempt = attempt.current(),
    otel.name = "process poll", otel.kind = "consumer", messaging.system = "vidq",
    messaging.destination.name = TaskKind::Poll.queue_name(),
    messaging.message.id = %TaskKind::Poll.task_id(&task.job),
    messaging.operation.type = "process", otel.status_code = tracing::field::Empty,
    error.type = tracing::field::Empty))]
pub(crate) async fn poll(
    task: JobTask,
    pipeline: Data<Pipeline>,
    attempt: Attempt,
    delivery: Data<Delivery>,
    again: Data<Reschedule>,
) -> TaskResult {
    super::outcome(run(task, pipeline, attempt, delivery, again).await)
}

/// The task itself; [`poll`] marks its span failed when it returns an error.
async fn run(
    task: JobTask,
    pipeline: Data<Pipeline>,
    attempt: Attempt,
    delivery: Data<Delivery>,
    again: Data<Reschedule>,
) -> TaskResult {
    let _timer = TaskTimer::start(TaskKind::Poll);
    // Both instants are Redis's: a skewed host clock does not distort it.
    metrics::histogram!("vidq_poll_lateness_seconds").record(delivery.lateness().as_secs_f64());
    let id = task.job;
    let store = pipeline.store();
    let Some(job) = store.get(&id).await.map_err(transient)? else {
        tracing::warn!("job not found; it was deleted or expired");
        return Ok(());
    };
    vidq_otel::set_parent(&tracing::Span::current(), job.trace.as_ref());
    if job.state != JobState::Processing {
        // A poll that moved the job on but died before its follow-up was pushed (Redis lost
        // the push, the worker crashed): push it again. One live task per job step makes this
        // a no-op when it is queued already.
        if job.state == JobState::Transferring {
            pipeline
                .schedule(TaskKind::Transfer, &id, std::time::Duration::ZERO)
                .await
                .map_err(transient)?;
        }
        return Ok(());
    }
    let Some(img_uuid) = job.img_uuid.as_deref() else {
        pipeline
            .fail(
                &id,
                JobState::Processing,
                "job is processing but has no upstream id",
            )
            .await
            .map_err(transient)?;
        return Ok(());
    };

    if let Admission::Wait { after, reason } =
        pipeline.limits().admit_call().await.map_err(transient)?
    {
        metrics::counter!("vidq_limit_deferrals_total", "reason" => reason).increment(1);
        return pipeline.again(&id, after, &again).await.map_err(transient);
    }
    let result = pipeline.upstream().detail(img_uuid).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(err) => err.kind(),
    };
    metrics::counter!("vidq_upstream_calls_total", "endpoint" => "detail", "outcome" => outcome)
        .increment(1);
    // Upstream is asked before the deadline is looked at: finished work is never thrown away.
    let past_deadline = delivery.claimed_ms > job.deadline_at;
    match result {
        Ok(detail) => on_status(&pipeline, &id, detail, &again, past_deadline).await,
        Err(err) => {
            let reason = format!("status request failed: {err}");
            // A bad key (401) is fixed by an operator; the paid job is still there upstream.
            let retryable = err.is_retryable() || matches!(err, UpstreamError::Unauthorized);
            if !retryable {
                pipeline
                    .fail(&id, JobState::Processing, &reason)
                    .await
                    .map_err(transient)?;
                return Ok(());
            }
            if past_deadline {
                return expire(
                    &pipeline,
                    &id,
                    "deadline passed while upstream could not be reached",
                )
                .await;
            }
            if pipeline.is_last_attempt(TaskKind::Poll, attempt.current()) {
                // Transient trouble never fails paid work: keep asking, at the longest backoff,
                // until the deadline.
                tracing::warn!(error = %err, "status requests keep failing; still polling");
                let after = pipeline.retry_max(TaskKind::Poll);
                return pipeline.again(&id, after, &again).await.map_err(transient);
            }
            tracing::info!(error = %err, "status request will be retried");
            Err(retry(err.retry_after(), reason))
        }
    }
}

/// The job is past its deadline while upstream still works on it (or cannot be reached):
/// `expired` for the caller. Its upstream slot is kept until its lifetime ends, since upstream
/// may still count the job against the plan's limit.
async fn expire(pipeline: &Pipeline, id: &JobId, why: &str) -> TaskResult {
    let moved = pipeline
        .store()
        .transition(
            id,
            &[JobState::Processing],
            JobState::Expired,
            Patch::new().error(why),
        )
        .await
        .map_err(transient)?;
    if let Transitioned::Applied { .. } = moved {
        tracing::warn!(reason = why, "job expired before upstream finished");
        metrics::counter!("vidq_jobs_finished_total", "state" => "expired").increment(1);
        pipeline.finished(id).await;
    }
    Ok(())
}

async fn on_status(
    pipeline: &Pipeline,
    id: &JobId,
    detail: JobDetail,
    again: &Reschedule,
    past_deadline: bool,
) -> TaskResult {
    match detail.status {
        JobStatus::Success => match detail.video_url {
            Some(url) => {
                let patch = Patch::new()
                    .result_url(SignedUrl::new(url))
                    .note("upstream finished");
                let moved = pipeline
                    .store()
                    .transition(id, &[JobState::Processing], JobState::Transferring, patch)
                    .await
                    .map_err(transient)?;
                if let Transitioned::Applied { .. } = moved {
                    pipeline.release_slot(id).await;
                    tracing::info!("upstream finished; transferring the video");
                    pipeline
                        .schedule(TaskKind::Transfer, id, std::time::Duration::ZERO)
                        .await
                        .map_err(transient)?;
                }
                Ok(())
            }
            None => Err(retry(
                None,
                "upstream reported success without a video URL".to_owned(),
            )),
        },
        JobStatus::Failed => {
            pipeline
                .fail(
                    id,
                    JobState::Processing,
                    "upstream reported the generation failed",
                )
                .await
                .map_err(transient)?;
            Ok(())
        }
        JobStatus::Pending | JobStatus::Processing | JobStatus::Unknown(_) => {
            if let JobStatus::Unknown(raw) = &detail.status {
                metrics::counter!("vidq_upstream_unknown_status_total").increment(1);
                tracing::warn!(upstream.status = %raw, "unknown upstream status; still polling");
            }
            if past_deadline {
                return expire(
                    pipeline,
                    id,
                    "deadline passed while upstream was processing",
                )
                .await;
            }
            pipeline
                .again(id, pipeline.poll_interval(), again)
                .await
                .map_err(transient)
        }
    }
}
