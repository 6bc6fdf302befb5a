//! `submit`: one upstream submission per job, then the first `poll` one interval later.

use std::time::Duration;

use apalis::prelude::{Attempt, Data};
use tracing::{Instrument as _, instrument};
use vidq_core::{
    JobId, JobRecord, JobState, JobTask, Patch, SubmissionClaim, TaskKind, Transitioned,
};
use vidq_goenhance::{Error as UpstreamError, GenerateArgs, GenerateRequest, Submitted};
use vidq_queue::{Delivery, Lease, Reschedule};

use super::{TaskResult, TaskTimer, retry, transient};
use crate::limits::Admission;
use crate::pipeline::Pipeline;

/// Margin added to the upstream call's timeout and [`RECORD_FOR`]: together, how long a
/// submission claim is honoured.
const CLAIM_MARGIN: Duration = Duration::from_secs(5);

/// Submits the job upstream unless it already was. Upstream is called only under the job's
/// submission claim, taken by this delivery (a fenced compare-and-set on the record, by Redis
/// time). A re-delivered submit that finds `img_uuid` stored never calls generate again; one
/// that finds another delivery's claim waits until that claim's call has surely ended and its
/// answer been stored or given up (the call's timeout, [`RECORD_FOR`] and a margin since it
/// was taken), even if that delivery lost its lease — so two calls for one job are never in flight —
/// and then submits again, counting and logging that upstream may hold a duplicate (a worker
/// died between upstream accepting and the id being stored). A job still unsubmitted at its
/// deadline ends `expired` without being submitted.
// A span of the job's trace (messaging semantic conventions): its parent, the request that
// created the job, is set once the record is read.
#[instrument(skip_all, fields(job.id = %task.job, task.attempt = attempt.current(),
    otel.name = "process submit", otel.kind = "consumer", messaging.system = "vidq",
    messaging.destination.name = TaskKind::Submit.queue_name(),
    messaging.message.id = %TaskKind::Submit.task_id(&task.job),
    messaging.operation.type = "process", otel.status_code = tracing::field::Empty,
    error.type = tracing::field::Empty))]
pub(crate) async fn submit(
    task: JobTask,
    pipeline: Data<Pipeline>,
    attempt: Attempt,
    again: Data<Reschedule>,
    delivery: Data<Delivery>,
    lease: Data<Lease>,
) -> TaskResult {
    super::outcome(run(task, pipeline, attempt, again, delivery, lease).await)
}

/// The task itself; [`submit`] marks its span failed when it returns an error.
async fn run(
    task: JobTask,
    pipeline: Data<Pipeline>,
    attempt: Attempt,
    again: Data<Reschedule>,
    delivery: Data<Delivery>,
    lease: Data<Lease>,
) -> TaskResult {
    let _timer = TaskTimer::start(TaskKind::Submit);
    let id = task.job;
    let store = pipeline.store();
    let Some(job) = store.get(&id).await.map_err(transient)? else {
        tracing::warn!("job not found; it was deleted or expired");
        return Ok(());
    };
    vidq_otel::set_parent(&tracing::Span::current(), job.trace.as_ref());
    let needs_upstream = match job.state {
        JobState::Queued => true,
        JobState::Submitting => job.img_uuid.is_none(),
        _ => false,
    };
    let admission = if needs_upstream {
        pipeline
            .limits()
            .admit_submit(&id)
            .await
            .map_err(transient)?
    } else {
        Admission::Go { new_slot: false }
    };
    // Whether a give-back may free the job's concurrent-job slot: only one this delivery took.
    let own_slot = matches!(admission, Admission::Go { new_slot: true });
    if let Admission::Wait { after, reason } = admission {
        // Not now, and no other submission either (every limit here is shared): the task goes
        // back to its place in the fair order and the submit queue takes nothing until then,
        // so waiting jobs are not claimed in a loop and the next to go is the fairest.
        tracing::debug!(
            wait_ms = after.as_millis() as u64,
            reason,
            "submission deferred"
        );
        metrics::counter!("vidq_limit_deferrals_total", "reason" => reason).increment(1);
        return pipeline
            .hold_submissions(&id, after, &again)
            .await
            .map_err(transient);
    }
    let found_submitting = match job.state {
        JobState::Queued => {
            let moved = store
                .transition(
                    &id,
                    &[JobState::Queued],
                    JobState::Submitting,
                    Patch::new().bump_attempts(),
                )
                .await
                .map_err(transient)?;
            if let Transitioned::Skipped { .. } = moved {
                return Ok(());
            }
            false
        }
        JobState::Submitting => {
            if let Some(img_uuid) = &job.img_uuid {
                return accepted_before(&pipeline, &id, img_uuid).await;
            }
            true
        }
        // Already submitted: the step that follows may have been lost with a crash or a Redis
        // that lost its last writes; pushing it again is a no-op when it is queued.
        JobState::Processing => {
            pipeline
                .schedule(TaskKind::Poll, &id, pipeline.poll_interval())
                .await
                .map_err(transient)?;
            return Ok(());
        }
        // Further on, or finished: a duplicate delivery.
        _ => return Ok(()),
    };
    // The claim is honoured while this delivery may still be calling or storing the answer.
    let hold = pipeline.upstream().timeout() + RECORD_FOR + CLAIM_MARGIN;
    match store
        .claim_submission(&id, &delivery.token, hold)
        .await
        .map_err(transient)?
    {
        SubmissionClaim::Taken if !found_submitting => {}
        SubmissionClaim::Taken | SubmissionClaim::TakenOver { .. } => {
            // An earlier attempt ended (or a record from an older release has no claim)
            // without storing upstream's id: it may have been accepted.
            metrics::counter!("vidq_uncertain_submissions_total").increment(1);
            if let Err(err) = pipeline.limits().record_uncertain().await {
                tracing::debug!(error = %err, "could not count the uncertain submission");
            }
            tracing::warn!(
                "submitting again after an interrupted submission: upstream may hold a duplicate"
            );
            store
                .patch(&id, JobState::Submitting, Patch::new().bump_attempts())
                .await
                .map_err(transient)?;
        }
        SubmissionClaim::Busy { retry_in } => {
            give_back(&pipeline, &id, own_slot).await;
            // Another delivery's call may still be in flight: look again once it has ended.
            tracing::info!(
                wait_ms = retry_in.as_millis() as u64,
                "another delivery holds the submission claim; waiting for its call to end"
            );
            return pipeline
                .again(&id, retry_in, &again)
                .await
                .map_err(transient);
        }
        SubmissionClaim::Expired => {
            give_back(&pipeline, &id, true).await;
            return expire_unsubmitted(&pipeline, &id).await;
        }
        SubmissionClaim::Moved(_) | SubmissionClaim::Gone => {
            give_back(&pipeline, &id, own_slot).await;
            return Ok(());
        }
    }
    if lease.is_lost() {
        return Ok(()); // taken over since: the new holder decides
    }
    // With redis.min_replicas_acked, the claim (and `submitting`) must be on the replicas
    // before money is spent: a primary that dies with them unreplicated would let the next
    // delivery find the job unclaimed and submit it a second time. A WAIT that fails spends
    // nothing: the claim is let go and the step tried again shortly.
    if let vidq_redis::WaitOutcome::Failed = store.wait_replicas(&id).await {
        give_back(&pipeline, &id, own_slot).await;
        tracing::warn!("the submission claim may not be replicated; submitting later");
        if let Err(err) = store.release_submission(&id, &delivery.token).await {
            tracing::debug!(error = %err, "could not let go of the submission claim");
        }
        back_to_queued(&pipeline, &id, "claim not replicated").await?;
        return pipeline
            .again(&id, Duration::from_secs(1), &again)
            .await
            .map_err(transient);
    }

    // From the call on, the step runs to its end even if this delivery's lease is lost
    // meanwhile (a Redis outage longer than the lease, a stalled renewal): an answer upstream
    // gave exists only here and must be stored (the claim's hold covers that time), and a
    // call cut off would leave its outcome unknown. The spawned part ends on its own.
    let request = generate_request(&job);
    let section = call_upstream(
        (*pipeline).clone(),
        id,
        request,
        delivery.token.clone(),
        attempt.current(),
    );
    tokio::spawn(section.in_current_span())
        .await
        .map_err(|err| transient(anyhow::anyhow!("the submission call's task ended: {err}")))?
}

/// Calls upstream's `generate` under the claim this delivery holds, and stores the answer or
/// settles the claim by what the refusal says.
async fn call_upstream(
    pipeline: Pipeline,
    id: JobId,
    request: GenerateRequest,
    token: String,
    attempt: usize,
) -> TaskResult {
    let store = pipeline.store();
    let result = pipeline.upstream().generate(&request).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(err) => err.kind(),
    };
    metrics::counter!("vidq_upstream_calls_total", "endpoint" => "generate", "outcome" => outcome)
        .increment(1);
    match result {
        Ok(submitted) => accepted(&pipeline, &id, submitted).await,
        Err(err) => {
            let reason = format!("upstream refused the submission: {err}");
            if definitely_not_accepted(&err) {
                give_back(&pipeline, &id, true).await;
            }
            let last = pipeline.is_last_attempt(TaskKind::Submit, attempt);
            // One decision: give up, or try again (and when).
            let retryable = matches!(err, UpstreamError::Unauthorized) || err.is_retryable();
            if !retryable || last {
                pipeline
                    .fail(&id, JobState::Submitting, &reason)
                    .await
                    .map_err(transient)?;
                return Ok(());
            }
            // This call is over: the next attempt need not wait out the claim's hold. After a
            // definite refusal it is not uncertain either.
            let settled = if definitely_not_accepted(&err) {
                store.release_submission(&id, &token).await
            } else {
                store.end_submission_call(&id, &token).await
            };
            if let Err(err) = settled {
                tracing::debug!(error = %err, "could not settle the submission claim");
            }
            if definitely_not_accepted(&err) {
                back_to_queued(&pipeline, &id, "retry").await?;
            }
            tracing::info!(error = %err, "submission will be retried");
            Err(retry(err.retry_after(), reason))
        }
    }
}

/// Upstream surely holds nothing of this job (no call was made, or it was refused): the job
/// goes back to `queued`, so the next delivery submits it without counting it uncertain.
async fn back_to_queued(
    pipeline: &Pipeline,
    id: &JobId,
    note: &str,
) -> Result<(), apalis::prelude::BoxDynError> {
    pipeline
        .store()
        .transition(
            id,
            &[JobState::Submitting],
            JobState::Queued,
            Patch::new().note(note),
        )
        .await
        .map_err(transient)?;
    Ok(())
}

/// The admission this delivery got is not used (or upstream surely refused the call): the
/// daily budget counts submissions upstream accepted. The job's concurrent-job slot is freed
/// only with `release_slot`: a redelivered submit that finds another delivery's call in flight,
/// or the job already processing upstream, must not free the slot that job holds. Best effort.
async fn give_back(pipeline: &Pipeline, id: &JobId, release_slot: bool) {
    if let Err(err) = pipeline
        .limits()
        .give_back_submission(id, release_slot)
        .await
    {
        tracing::debug!(error = %err, "could not give the admission back");
    }
}

/// The job waited past its deadline without being submitted: it ends `expired`, unpaid.
async fn expire_unsubmitted(pipeline: &Pipeline, id: &JobId) -> TaskResult {
    let moved = pipeline
        .store()
        .transition(
            id,
            &[JobState::Submitting],
            JobState::Expired,
            Patch::new()
                .error("deadline passed before the job could be submitted (nothing was paid)"),
        )
        .await
        .map_err(transient)?;
    if let Transitioned::Applied { .. } = moved {
        tracing::warn!("job expired before it was submitted");
        metrics::counter!("vidq_jobs_finished_total", "state" => "expired").increment(1);
        pipeline.finished(id).await;
    }
    Ok(())
}

/// Whether upstream surely did not accept the job (so a retry cannot duplicate it).
fn definitely_not_accepted(err: &UpstreamError) -> bool {
    matches!(
        err,
        UpstreamError::RateLimited { .. }
            | UpstreamError::Unauthorized
            | UpstreamError::InvalidRequest { .. }
            | UpstreamError::InsufficientCredits { .. }
    )
}

async fn accepted(pipeline: &Pipeline, id: &JobId, submitted: Submitted) -> TaskResult {
    // From here until the id is stored, a crash leaves a paid job upstream that the record
    // does not know: the one uncertain window. It holds one Redis write and nothing else.
    let replied = std::time::Instant::now();
    let mut patch = Patch::new()
        .img_uuid(&submitted.img_uuid)
        .note("upstream accepted");
    if let Some(cost) = submitted.cost {
        patch = patch.upstream_cost(cost);
    }
    if let Some(request_id) = submitted.request_id {
        patch = patch.upstream_request_id(request_id);
    }
    let moved = record_accepted(pipeline, id, &submitted.img_uuid, patch).await?;
    metrics::histogram!("vidq_submission_unrecorded_seconds")
        .record(replied.elapsed().as_secs_f64());
    metrics::counter!("vidq_submissions_total").increment(1);
    if let Some(cost) = submitted.cost {
        metrics::counter!("vidq_upstream_credits_spent_total").increment(cost.max(0.0) as u64);
        if let Err(err) = pipeline.limits().record_spend(cost).await {
            tracing::debug!(error = %err, "could not record the credits spent");
        }
    }
    if let Transitioned::Skipped { current } = moved {
        // Canceled (or expired) while we were submitting: the upstream job runs out alone.
        tracing::info!(job.state = %current, img_uuid = %submitted.img_uuid, "job moved on during submission");
        return Ok(());
    }
    tracing::info!(img_uuid = %submitted.img_uuid, "submitted upstream");
    pipeline
        .schedule(TaskKind::Poll, id, pipeline.poll_interval())
        .await
        .map_err(transient)?;
    Ok(())
}

/// How long a delivery that holds upstream's answer keeps trying to store it through Redis
/// errors, refusals and failovers, rather than leaving a paid job that the record does not
/// know (longer than a Sentinel or Cluster failover). The submission claim's hold covers it,
/// so no other delivery submits the job meanwhile; it is a hard bound (a write still trying
/// at the deadline is dropped), which that hold relies on.
const RECORD_FOR: Duration = Duration::from_secs(60);

/// Stores upstream's id (the job moves to `processing`) and, with `redis.min_replicas_acked`,
/// waits until that many replicas hold it before the poll is scheduled. Redis errors are
/// retried with backoff for [`RECORD_FOR`]: the answer exists only in this process. When the
/// WAIT itself fails (the primary may have died before its replicas had the write), the
/// record is read again and the write made again if the failover lost it — a redelivery
/// would otherwise find `submitting` without an id and submit (and pay) a second time.
/// A write that did land earlier (its reply lost, or a replayed script) reads as applied.
async fn record_accepted(
    pipeline: &Pipeline,
    id: &JobId,
    img_uuid: &str,
    patch: Patch,
) -> Result<Transitioned, apalis::prelude::BoxDynError> {
    let store = pipeline.store();
    let deadline = tokio::time::Instant::now() + RECORD_FOR;
    let late = || {
        transient(anyhow::anyhow!(
            "upstream's id could not be stored within {RECORD_FOR:?}"
        ))
    };
    let mut backoff = Duration::from_millis(50);
    let pause = |backoff: &mut Duration| {
        let wait = *backoff;
        *backoff = (*backoff * 2).min(Duration::from_secs(2));
        tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + wait))
    };
    loop {
        let write = store.transition(
            id,
            &[JobState::Submitting],
            JobState::Processing,
            patch.clone(),
        );
        let moved = match tokio::time::timeout_at(deadline, write).await {
            Err(_) => return Err(late()),
            Ok(Ok(Transitioned::Skipped { current })) => {
                match tokio::time::timeout_at(deadline, store.get(id)).await {
                    Err(_) => return Err(late()),
                    // Our own write, applied by an earlier try whose reply was lost.
                    Ok(Ok(Some(job))) if job.img_uuid.as_deref() == Some(img_uuid) => {
                        Transitioned::Applied {
                            from: JobState::Submitting,
                            at_ms: job.updated_at,
                        }
                    }
                    Ok(Ok(_)) => Transitioned::Skipped { current },
                    Ok(Err(err)) => {
                        tracing::warn!(error = %err, "reading the job after storing upstream's id failed; trying again");
                        pause(&mut backoff).await;
                        continue;
                    }
                }
            }
            Ok(Ok(applied)) => applied,
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "storing upstream's id failed; trying again (the answer is only here)");
                pause(&mut backoff).await;
                continue;
            }
        };
        if let Transitioned::Skipped { .. } = moved {
            return Ok(moved); // canceled or expired meanwhile: nothing of ours to keep
        }
        match tokio::time::timeout_at(deadline, store.wait_replicas(id)).await {
            Ok(vidq_redis::WaitOutcome::Failed) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(
                    "WAIT failed after storing upstream's id; checking that the write survived"
                );
                pause(&mut backoff).await;
            }
            // Stored (a WAIT that failed or was cut off at the deadline leaves it so).
            _ => return Ok(moved),
        }
    }
}

/// The id was stored but the job did not move on (the worker died in between).
async fn accepted_before(pipeline: &Pipeline, id: &JobId, img_uuid: &str) -> TaskResult {
    let moved = pipeline
        .store()
        .transition(
            id,
            &[JobState::Submitting],
            JobState::Processing,
            Patch::new().note("resumed"),
        )
        .await
        .map_err(transient)?;
    if let Transitioned::Applied { .. } = moved {
        tracing::info!(
            img_uuid,
            "resumed a stored submission without submitting again"
        );
        pipeline
            .schedule(TaskKind::Poll, id, pipeline.poll_interval())
            .await
            .map_err(transient)?;
    }
    Ok(())
}

fn generate_request(job: &JobRecord) -> GenerateRequest {
    let r = &job.request;
    let mut args = GenerateArgs::new(r.reference_video_url().as_str(), i64::from(r.model()));
    args.duration = Some(r.duration());
    args.seed = Some(r.seed());
    args.resolution = Some(r.resolution().as_str().to_owned());
    args.prompt = r.prompt().map(str::to_owned);
    args.extra = r.extra().clone();
    GenerateRequest::new(args)
}
