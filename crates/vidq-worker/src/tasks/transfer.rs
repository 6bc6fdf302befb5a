//! `transfer`: streams the finished video from upstream's signed URL into storage, with
//! bounded memory, under a key fixed per job (a retry overwrites, never duplicates).

use apalis::prelude::{Attempt, Data};
use futures::TryStreamExt;
use reqwest::StatusCode;
use tracing::instrument;
use vidq_core::{JobId, JobState, JobTask, Output, Patch, SignedUrl, TaskKind, Transitioned};
use vidq_storage::Error as StorageError;

use super::{TaskResult, TaskTimer, retry, transient};
use crate::pipeline::Pipeline;

const CONTENT_TYPE: &str = "video/mp4";

#[instrument(skip_all, fields(job.id = %task.job, task.attempt = attempt.current()))]
pub(crate) async fn transfer(
    task: JobTask,
    pipeline: Data<Pipeline>,
    attempt: Attempt,
) -> TaskResult {
    let _timer = TaskTimer::start(TaskKind::Transfer);
    let id = task.job;
    let Some(job) = pipeline.store().get(&id).await.map_err(transient)? else {
        tracing::warn!("job not found; it was deleted or expired");
        return Ok(());
    };
    if job.state != JobState::Transferring {
        return Ok(()); // a stale or duplicate transfer
    }
    let last = pipeline.is_last_attempt(TaskKind::Transfer, attempt.current());
    // Some S3-compatible servers create a missing bucket on the first PutObject; a job must
    // not quietly write somewhere nobody configured, so the bucket is checked first.
    if let Err(err) = pipeline.storage().check_bucket().await {
        return storage_failed(&pipeline, &id, err, last).await;
    }
    let response = match open(&pipeline, &id, job.result_url, job.img_uuid.as_deref()).await {
        Ok(response) => response,
        Err(reason) if last => {
            pipeline
                .fail(&id, JobState::Transferring, &reason)
                .await
                .map_err(transient)?;
            return Ok(());
        }
        Err(reason) => return Err(retry(None, reason)),
    };
    let expected_len = response.content_length();
    let storage = pipeline.storage();
    let max = storage.max_bytes();
    if let Some(reason) = unverifiable(&response, max) {
        if last {
            pipeline
                .fail(&id, JobState::Transferring, &reason)
                .await
                .map_err(transient)?;
            return Ok(());
        }
        return Err(retry(None, reason));
    }
    let mut seen = 0u64;
    let body = response
        .bytes_stream()
        .map_err(BoxError::from)
        .and_then(move |chunk| {
            seen += chunk.len() as u64;
            metrics::counter!("vidq_bytes_transferred_total").increment(chunk.len() as u64);
            std::future::ready(if seen > max {
                Err(BoxError::from(format!(
                    "the result is longer than storage.max_bytes ({max} bytes)"
                )))
            } else {
                Ok(chunk)
            })
        });
    let key = storage.object_key(&id.to_string());
    // A transfer that starts again first aborts what an earlier one left open (a worker killed
    // mid-upload leaves its parts billed until they are aborted).
    abort_left_open(&pipeline, &id, &key).await;
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<String>();
    let remember = async {
        if let Ok(upload_id) = started_rx.await
            && let Err(err) = pipeline.store().remember_upload(&id, &upload_id).await
        {
            tracing::debug!(error = %err, "could not remember the open upload");
        }
    };
    let upload = async {
        let (outcome, ()) = tokio::join!(
            storage.upload_stream_reporting(
                &key,
                CONTENT_TYPE,
                body,
                expected_len,
                Some(started_tx)
            ),
            remember
        );
        outcome
    };
    let outcome = tokio::select! {
        outcome = upload => outcome,
        state = left_transferring(&pipeline, &id) => {
            // Canceled (or ended elsewhere) mid-transfer: the upload is dropped here.
            return stopped(&pipeline, &id, &key, state).await;
        }
    };
    // Completed, or aborted by the upload itself on failure: nothing is open any more.
    if let Err(err) = pipeline.store().forget_upload(&id).await {
        tracing::debug!(error = %err, "could not forget the finished upload");
    }
    match outcome {
        Ok(uploaded) => {
            let output = Output {
                bucket: uploaded.bucket,
                key: uploaded.key,
                bytes: uploaded.bytes,
                sha256: uploaded.sha256,
                content_type: CONTENT_TYPE.to_owned(),
            };
            let patch = Patch::new()
                .output(output)
                .clear_result_url()
                .note("stored");
            let moved = pipeline
                .store()
                .transition(&id, &[JobState::Transferring], JobState::Succeeded, patch)
                .await
                .map_err(transient)?;
            match moved {
                Transitioned::Applied { .. } => {
                    metrics::counter!("vidq_jobs_finished_total", "state" => "succeeded")
                        .increment(1);
                    tracing::info!(bytes = uploaded.bytes, key = %key, "video stored; job succeeded");
                    pipeline.finished(&id).await;
                    Ok(())
                }
                Transitioned::Skipped { current } => stopped(&pipeline, &id, &key, current).await,
            }
        }
        Err(err) => storage_failed(&pipeline, &id, err, last).await,
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a result body cannot be stored as a verified whole, if so: announced above
/// `storage.max_bytes`, or without any length (HTTP/1 with neither `Content-Length` nor chunked
/// encoding, where a connection cut short looks like the end of the video).
fn unverifiable(response: &reqwest::Response, max: u64) -> Option<String> {
    if let Some(len) = response.content_length()
        && len > max
    {
        return Some(format!(
            "the result is {len} bytes, above storage.max_bytes ({max})"
        ));
    }
    let chunked = response
        .headers()
        .get(reqwest::header::TRANSFER_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let http1 = response.version() < reqwest::Version::HTTP_2;
    (http1 && response.content_length().is_none() && !chunked).then(|| {
        "the result has no length (no Content-Length, not chunked): a cut could not be told from its end"
            .to_owned()
    })
}

/// How often a running transfer looks whether its job was canceled.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Resolves with the job's state once it is no longer `transferring` (canceled, or ended by
/// another delivery). Read errors are ignored: the upload goes on.
async fn left_transferring(pipeline: &Pipeline, id: &JobId) -> JobState {
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        match pipeline.store().get(id).await {
            Ok(Some(job)) if job.state != JobState::Transferring => return job.state,
            Ok(None) => return JobState::Canceled,
            _ => {}
        }
    }
}

/// Aborts the multipart uploads an earlier transfer of the job left open: the one it
/// remembered beside the job (works on any S3 server), and any the store lists for the key.
async fn abort_left_open(pipeline: &Pipeline, id: &JobId, key: &str) {
    let storage = pipeline.storage();
    match pipeline.store().open_upload(id).await {
        Ok(Some(upload_id)) => match storage.abort_upload(key, &upload_id).await {
            Ok(()) => {
                tracing::info!(key, "aborted the upload an earlier transfer left open");
                if let Err(err) = pipeline.store().forget_upload(id).await {
                    tracing::debug!(error = %err, "could not forget the aborted upload");
                }
            }
            Err(err) => tracing::warn!(error = %err, "could not abort an upload left open"),
        },
        Ok(None) => {}
        Err(err) => tracing::debug!(error = %err, "could not read the open upload"),
    }
    match storage.abort_incomplete_uploads(key).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            uploads = n,
            key,
            "aborted incomplete uploads of an earlier transfer"
        ),
        Err(err) => tracing::debug!(error = %err, "could not list incomplete uploads"),
    }
}

/// The job left `transferring` while its video was being stored. A canceled job keeps no
/// object and no open upload; a job another delivery finished keeps the object it points to.
async fn stopped(pipeline: &Pipeline, id: &JobId, key: &str, state: JobState) -> TaskResult {
    abort_left_open(pipeline, id, key).await;
    if state == JobState::Succeeded {
        tracing::info!("the job was finished by another delivery");
        return Ok(());
    }
    tracing::info!(job.state = %state, "job ended during its transfer; removing what it wrote");
    pipeline
        .storage()
        .delete(key)
        .await
        .map_err(|e| transient(anyhow::anyhow!("removing the object of an ended job: {e}")))
}

/// One decision for every storage failure: try again, or fail the job with the reason.
async fn storage_failed(
    pipeline: &Pipeline,
    id: &JobId,
    err: StorageError,
    last: bool,
) -> TaskResult {
    let reason = format!("storing the video failed: {err}");
    // A short or broken download surfaces as a length mismatch or a source error: both are
    // worth another try. A missing bucket or refused credentials are not.
    let retryable = err.is_retryable() || matches!(err, StorageError::LengthMismatch { .. });
    if !retryable || last {
        let ended = pipeline
            .fail(id, JobState::Transferring, &reason)
            .await
            .map_err(transient)?;
        if ended {
            // Failed for good (never succeeded): nothing of it stays in the bucket.
            let key = pipeline.storage().object_key(&id.to_string());
            if let Err(err) = pipeline.storage().delete(&key).await {
                tracing::debug!(error = %err, "could not remove the object of a failed transfer");
            }
        }
        return Ok(());
    }
    tracing::info!(error = %err, "transfer will be retried");
    Err(retry(None, reason))
}

/// Starts the download. A URL past its lifetime (401/403/404/410) is replaced by a freshly signed one
/// from `jobs/detail` before giving up. The error is a reason fit for the job record: it never
/// holds the signed URL.
async fn open(
    pipeline: &Pipeline,
    id: &JobId,
    stored: Option<SignedUrl>,
    img_uuid: Option<&str>,
) -> Result<reqwest::Response, String> {
    let mut url = match stored {
        Some(url) => url,
        None => fresh_url(pipeline, id, img_uuid).await?,
    };
    for refreshed in [false, true] {
        let response = pipeline
            .download()
            .get(url.expose())
            .send()
            .await
            .map_err(|e| format!("downloading the result failed: {}", e.without_url()))?;
        match response.status() {
            StatusCode::OK => return Ok(response),
            StatusCode::UNAUTHORIZED
            | StatusCode::FORBIDDEN
            | StatusCode::NOT_FOUND
            | StatusCode::GONE
                if !refreshed =>
            {
                tracing::info!("result URL expired; asking upstream for a fresh one");
                url = fresh_url(pipeline, id, img_uuid).await?;
            }
            status => return Err(format!("downloading the result answered HTTP {status}")),
        }
    }
    Err("the result URL was refused even after a fresh signature".to_owned())
}

async fn fresh_url(
    pipeline: &Pipeline,
    id: &JobId,
    img_uuid: Option<&str>,
) -> Result<SignedUrl, String> {
    let img_uuid = img_uuid.ok_or("job has no upstream id to refresh its result URL")?;
    let detail = pipeline
        .upstream()
        .detail(img_uuid)
        .await
        .map_err(|e| format!("refreshing the result URL failed: {e}"))?;
    let url = detail
        .video_url
        .map(SignedUrl::new)
        .ok_or("upstream gave no result URL")?;
    pipeline
        .store()
        .patch(
            id,
            JobState::Transferring,
            Patch::new().result_url(url.clone()),
        )
        .await
        .map_err(|e| format!("storing the fresh result URL failed: {e}"))?;
    Ok(url)
}
