//! `transfer`: streams the finished video from upstream's signed URL into storage, with
//! bounded memory, under a key fixed per job (a retry overwrites, never duplicates).
//!
//! A transfer that dies resumes: the multipart upload's id and each part the store confirmed
//! are recorded beside the job (fenced by the delivery, so a worker that lost its lease records
//! nothing and completes nothing), and the next delivery checks them against the parts the
//! store lists, asks upstream for the rest with a `Range` request and goes on from the next
//! part. The sha256 stays that of the whole object: each recorded part carries the hasher's
//! state at its end. A body whose length or validator changed starts again from zero.

use std::sync::{Arc, Mutex, PoisonError};

use apalis::prelude::{Attempt, Data};
use futures::TryStreamExt;
use futures::future::BoxFuture;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
use tracing::instrument;
use vidq_core::{
    JobId, JobState, JobStore, JobTask, Output, Patch, RecordedPart, SignedUrl, TaskKind,
    TransferRecord, TransferUpload, Transitioned,
};
use vidq_queue::{Delivery, Lease};
use vidq_storage::{Checkpoint, Error as StorageError, Journal, StoredPart};

use super::{TaskResult, TaskTimer, retry, transient};
use crate::pipeline::Pipeline;

const CONTENT_TYPE: &str = "video/mp4";

// A span of the job's trace (messaging semantic conventions): its parent, the request that
// created the job, is set once the record is read.
#[instrument(skip_all, fields(job.id = %task.job, task.attempt = attempt.current(),
    otel.name = "process transfer", otel.kind = "consumer", messaging.system = "vidq",
    messaging.destination.name = TaskKind::Transfer.queue_name(),
    messaging.message.id = %TaskKind::Transfer.task_id(&task.job),
    messaging.operation.type = "process", otel.status_code = tracing::field::Empty,
    error.type = tracing::field::Empty))]
pub(crate) async fn transfer(
    task: JobTask,
    pipeline: Data<Pipeline>,
    attempt: Attempt,
    delivery: Data<Delivery>,
    lease: Data<Lease>,
) -> TaskResult {
    super::outcome(run(task, pipeline, attempt, delivery, lease).await)
}

/// The task itself; [`transfer`] marks its span failed when it returns an error.
async fn run(
    task: JobTask,
    pipeline: Data<Pipeline>,
    attempt: Attempt,
    delivery: Data<Delivery>,
    lease: Data<Lease>,
) -> TaskResult {
    let _timer = TaskTimer::start(TaskKind::Transfer);
    let id = task.job;
    let Some(job) = pipeline.store().get(&id).await.map_err(transient)? else {
        tracing::warn!("job not found; it was deleted or expired");
        return Ok(());
    };
    vidq_otel::set_parent(&tracing::Span::current(), job.trace.as_ref());
    if job.state != JobState::Transferring {
        return Ok(()); // a stale or duplicate transfer
    }
    let last = pipeline.is_last_attempt(TaskKind::Transfer, attempt.current());
    // Some S3-compatible servers create a missing bucket on the first PutObject; a job must
    // not quietly write somewhere nobody configured, so the bucket is checked first.
    if let Err(err) = pipeline.storage().check_bucket().await {
        return storage_failed(&pipeline, &id, err, last, None).await;
    }
    let storage = pipeline.storage();
    let key = storage.object_key(&id.to_string());
    let token = delivery.token.clone();
    let record = pipeline
        .store()
        .take_transfer(&id, &token)
        .await
        .map_err(transient)?;
    let journal = Arc::new(TransferJournal {
        store: pipeline.store().clone(),
        id,
        token,
        key: key.clone(),
        lease: (*lease).clone(),
        upload_id: Mutex::new(None),
        body: Mutex::new((0, None)),
    });
    let resume = resumable(&pipeline, &journal, record).await;
    if resume.is_none() {
        // Starting from zero: first abort what an earlier transfer left open (a worker killed
        // mid-upload leaves its parts billed until they are aborted).
        abort_listed(&pipeline, &key).await;
    }
    let range = resume
        .as_ref()
        .map(|r| (r.checkpoint.offset(), r.validator.clone()));
    let (mut response, mut download) = match open(
        &pipeline,
        &id,
        job.result_url,
        job.img_uuid.as_deref(),
        range,
    )
    .await
    {
        Ok(opened) => opened,
        Err(reason) => {
            if last {
                journal.end(&pipeline).await;
                pipeline
                    .fail(&id, JobState::Transferring, &reason)
                    .await
                    .map_err(transient)?;
                return Ok(());
            }
            return Err(retry(None, reason));
        }
    };
    let mut resume = resume;
    if let Some(r) = &resume
        && !continues(&response, r)
    {
        tracing::info!(
            status = %response.status(),
            "the result's bytes changed since the stored parts (length or validator), or upstream ignored the range: starting again from zero"
        );
        journal.drop_upload(&pipeline).await;
        resume = None;
        if response.status() != StatusCode::OK {
            let url = pipeline
                .store()
                .get(&id)
                .await
                .map_err(transient)?
                .and_then(|j| j.result_url);
            (response, download) =
                match open(&pipeline, &id, url, job.img_uuid.as_deref(), None).await {
                    Ok(opened) => opened,
                    Err(reason) => return Err(retry(None, reason)),
                };
        }
    }
    let offset = resume.as_ref().map_or(0, |r| r.checkpoint.offset());
    let total = total_length(&response, offset);
    *journal.body.lock().unwrap_or_else(PoisonError::into_inner) =
        (total.unwrap_or(0), validator(&response));
    let max = storage.max_bytes();
    if let Some(reason) = unverifiable(&response, total, max) {
        if last {
            journal.end(&pipeline).await;
            pipeline
                .fail(&id, JobState::Transferring, &reason)
                .await
                .map_err(transient)?;
            return Ok(());
        }
        return Err(retry(None, reason));
    }
    let mut seen = offset;
    // The download span lives as long as the body stream: it ends when the upload has read
    // (or dropped) the body, and counts the bytes received.
    let mut received = 0u64;
    let body = response
        .bytes_stream()
        .map_err(BoxError::from)
        .and_then(move |chunk| {
            seen += chunk.len() as u64;
            received += chunk.len() as u64;
            download.record("http.response.body.size", received);
            metrics::counter!("vidq_bytes_transferred_total").increment(chunk.len() as u64);
            std::future::ready(if seen > max {
                Err(BoxError::from(format!(
                    "the result is longer than storage.max_bytes ({max} bytes)"
                )))
            } else {
                Ok(chunk)
            })
        });
    // A transfer of an older release remembered its upload elsewhere.
    abort_legacy(&pipeline, &id, &key).await;
    let upload = storage.upload_resumable(
        &key,
        CONTENT_TYPE,
        body,
        total,
        resume.map(|r| r.checkpoint),
        journal.clone(),
    );
    let outcome = tokio::select! {
        outcome = upload => outcome,
        state = left_transferring(&pipeline, &id) => {
            // Canceled (or ended elsewhere) mid-transfer: the upload is dropped here.
            return stopped(&pipeline, &journal, state).await;
        }
    };
    match outcome {
        Ok(uploaded) => {
            if let Err(err) = pipeline.store().end_transfer(&id, &journal.token).await {
                tracing::debug!(error = %err, "could not forget the finished upload");
            }
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
                Transitioned::Skipped { current } => stopped(&pipeline, &journal, current).await,
            }
        }
        Err(StorageError::Superseded) => {
            tracing::info!("another delivery took the transfer over; this one stops");
            Ok(())
        }
        Err(err) => storage_failed(&pipeline, &id, err, last, Some(&journal)).await,
    }
}

/// An upload to resume: the parts the store holds as recorded, and the upstream body they came
/// from.
struct Resume {
    checkpoint: Checkpoint,
    length: u64,
    validator: Option<String>,
}

/// What of `record` can be resumed: an upload of this key whose leading recorded parts the
/// store holds. One that cannot is aborted (and its record reset).
async fn resumable(
    pipeline: &Pipeline,
    journal: &TransferJournal,
    record: TransferRecord,
) -> Option<Resume> {
    let upload = record.upload?;
    journal.set_upload(Some(upload.upload_id.clone()));
    let parts = record
        .parts
        .into_iter()
        .map(|p| StoredPart {
            number: p.number,
            bytes: p.bytes,
            etag: p.etag,
            sha256_state: p.sha256_state,
        })
        .collect();
    let checkpoint = Checkpoint::from_recorded(upload.upload_id.clone(), parts);
    let usable = if upload.key != journal.key || upload.length == 0 {
        None
    } else {
        match pipeline
            .storage()
            .check_checkpoint(&journal.key, &checkpoint)
            .await
        {
            Ok(usable) => usable,
            Err(err) => {
                tracing::warn!(error = %err, "could not list the stored parts; starting again");
                None
            }
        }
    };
    let Some(checkpoint) = usable else {
        journal.drop_upload(pipeline).await;
        return None;
    };
    tracing::info!(
        parts = checkpoint.parts.len(),
        offset = checkpoint.offset(),
        "resuming the transfer after its stored parts"
    );
    Some(Resume {
        checkpoint,
        length: upload.length,
        validator: upload.validator,
    })
}

/// The multipart upload's progress, recorded beside the job and fenced by the delivery.
struct TransferJournal {
    store: JobStore,
    id: JobId,
    token: String,
    key: String,
    lease: Lease,
    /// The multipart upload this delivery resumes or opened.
    upload_id: Mutex<Option<String>>,
    /// The upstream body's whole length (0 unknown) and validator.
    body: Mutex<(u64, Option<String>)>,
}

impl TransferJournal {
    fn set_upload(&self, upload_id: Option<String>) {
        *self
            .upload_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = upload_id;
    }

    fn upload(&self) -> Option<String> {
        self.upload_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Aborts the upload this delivery holds and forgets the transfer's record: the transfer
    /// ended for good (failed, canceled).
    async fn end(&self, pipeline: &Pipeline) {
        self.drop_upload(pipeline).await;
        if let Err(err) = self.store.end_transfer(&self.id, &self.token).await {
            tracing::debug!(error = %err, "could not forget the transfer's record");
        }
    }

    /// Aborts the upload this delivery holds, if it still owns the transfer, and forgets it
    /// (the transfer starts again from zero, still owned by this delivery).
    async fn drop_upload(&self, pipeline: &Pipeline) {
        let Some(upload_id) = self.upload() else {
            return;
        };
        match self.store.owns_transfer(&self.id, &self.token).await {
            Ok(true) => {}
            Ok(false) => return, // another delivery's now
            Err(err) => {
                tracing::debug!(error = %err, "could not read the transfer's owner");
                return;
            }
        }
        match pipeline.storage().abort_upload(&self.key, &upload_id).await {
            Ok(()) => tracing::info!(key = %self.key, "aborted the transfer's multipart upload"),
            Err(err) => tracing::warn!(error = %err, "could not abort the multipart upload"),
        }
        if let Err(err) = self.store.reset_transfer(&self.id, &self.token).await {
            tracing::debug!(error = %err, "could not forget the aborted upload");
        }
        self.set_upload(None);
    }
}

impl Journal for TransferJournal {
    fn started<'a>(&'a self, upload_id: &'a str) -> BoxFuture<'a, Result<bool, BoxError>> {
        Box::pin(async move {
            let (length, validator) = self
                .body
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let upload = TransferUpload {
                upload_id: upload_id.to_owned(),
                key: self.key.clone(),
                length,
                validator,
            };
            let owned = self
                .store
                .begin_transfer_upload(&self.id, &self.token, &upload)
                .await?;
            if owned {
                self.set_upload(Some(upload_id.to_owned()));
            }
            Ok(owned && !self.lease.is_lost())
        })
    }

    fn stored<'a>(
        &'a self,
        upload_id: &'a str,
        part: &'a StoredPart,
    ) -> BoxFuture<'a, Result<bool, BoxError>> {
        Box::pin(async move {
            if self.lease.is_lost() {
                return Ok(false);
            }
            let part = RecordedPart {
                number: part.number,
                bytes: part.bytes,
                etag: part.etag.clone(),
                sha256_state: part.sha256_state.clone(),
            };
            Ok(self
                .store
                .record_part(&self.id, &self.token, upload_id, &part)
                .await?)
        })
    }

    fn may_complete(&self) -> BoxFuture<'_, Result<bool, BoxError>> {
        Box::pin(async move {
            if self.lease.is_lost() {
                return Ok(false);
            }
            Ok(self.store.owns_transfer(&self.id, &self.token).await?)
        })
    }
}

/// Whether `response` (to a ranged request) is the rest of the body the stored parts came
/// from: a 206 from the checkpoint's offset, of the same whole length and validator.
fn continues(response: &reqwest::Response, resume: &Resume) -> bool {
    if response.status() != StatusCode::PARTIAL_CONTENT {
        return false;
    }
    let Some((start, total)) = response
        .headers()
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_content_range)
    else {
        return false;
    };
    start == resume.checkpoint.offset()
        && total == resume.length
        && validator(response) == resume.validator
}

/// `bytes <start>-<end>/<total>` → (start, total).
fn parse_content_range(value: &str) -> Option<(u64, u64)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()?))
}

/// What tells one version of the upstream body from another: its `ETag`, else its
/// `Last-Modified`.
fn validator(response: &reqwest::Response) -> Option<String> {
    let headers = response.headers();
    headers
        .get(ETAG)
        .or_else(|| headers.get(LAST_MODIFIED))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The whole body's length: the total of a 206's `Content-Range`, else `Content-Length`.
fn total_length(response: &reqwest::Response, offset: u64) -> Option<u64> {
    if response.status() == StatusCode::PARTIAL_CONTENT {
        return response
            .headers()
            .get(CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_content_range)
            .map(|(_, total)| total)
            .or_else(|| response.content_length().map(|n| n + offset));
    }
    response.content_length()
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a result body cannot be stored as a verified whole, if so: announced above
/// `storage.max_bytes`, or without any length (HTTP/1 with neither `Content-Length` nor chunked
/// encoding, where a connection cut short looks like the end of the video).
fn unverifiable(response: &reqwest::Response, total: Option<u64>, max: u64) -> Option<String> {
    if let Some(len) = total
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

/// Aborts the multipart upload a transfer of an earlier release remembered for the job
/// (works on any S3 server).
async fn abort_legacy(pipeline: &Pipeline, id: &JobId, key: &str) {
    match pipeline.store().open_upload(id).await {
        Ok(Some(upload_id)) => match pipeline.storage().abort_upload(key, &upload_id).await {
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
}

/// Aborts every incomplete upload the store lists for `key` (stores that list them).
async fn abort_listed(pipeline: &Pipeline, key: &str) {
    match pipeline.storage().abort_incomplete_uploads(key).await {
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
async fn stopped(pipeline: &Pipeline, journal: &TransferJournal, state: JobState) -> TaskResult {
    journal.end(pipeline).await;
    abort_legacy(pipeline, &journal.id, &journal.key).await;
    abort_listed(pipeline, &journal.key).await;
    if state == JobState::Succeeded {
        tracing::info!("the job was finished by another delivery");
        return Ok(());
    }
    tracing::info!(job.state = %state, "job ended during its transfer; removing what it wrote");
    pipeline
        .storage()
        .delete(&journal.key)
        .await
        .map_err(|e| transient(anyhow::anyhow!("removing the object of an ended job: {e}")))
}

/// One decision for every storage failure: try again, or fail the job with the reason.
/// The upload (`journal`'s) stays open for the retry to resume after a failure worth
/// resuming (a broken download, a store's hiccup); it is aborted otherwise.
async fn storage_failed(
    pipeline: &Pipeline,
    id: &JobId,
    err: StorageError,
    last: bool,
    journal: Option<&TransferJournal>,
) -> TaskResult {
    let reason = format!("storing the video failed: {err}");
    // A short or broken download surfaces as a length mismatch or a source error: both are
    // worth another try. A missing bucket or refused credentials are not. A damaged record
    // of the upload, or a body of another length, starts again from zero.
    let restart = matches!(
        err,
        StorageError::LengthMismatch { .. } | StorageError::BadCheckpoint(_)
    ) || matches!(
        &err,
        StorageError::S3 { op: "CompleteMultipartUpload", code, .. }
            if matches!(code.as_deref(), Some("InvalidPart" | "InvalidPartOrder" | "NoSuchUpload" | "EntityTooSmall"))
    );
    let retryable = err.is_retryable() || restart;
    if let Some(journal) = journal {
        if !retryable || last {
            journal.end(pipeline).await;
        } else if restart {
            journal.drop_upload(pipeline).await;
        }
    }
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
///
/// With `range` (an offset and the validator recorded with it), asks for the body from that
/// offset (`Range`, and `If-Range` when there is a validator): the answer is a 206 with the
/// rest, or a 200 or 416 when upstream will not resume it.
async fn open(
    pipeline: &Pipeline,
    id: &JobId,
    stored: Option<SignedUrl>,
    img_uuid: Option<&str>,
    range: Option<(u64, Option<String>)>,
) -> Result<(reqwest::Response, tracing::Span), String> {
    let mut url = match stored {
        Some(url) => url,
        None => fresh_url(pipeline, id, img_uuid).await?,
    };
    for refreshed in [false, true] {
        let mut request = pipeline.download().get(url.expose());
        if let Some((offset, validator)) = &range {
            request = request.header(RANGE, format!("bytes={offset}-"));
            if let Some(validator) = validator {
                request = request.header(IF_RANGE, validator);
            }
        }
        let span = download_span(url.expose());
        let sent = tracing::Instrument::instrument(request.send(), span.clone()).await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                span.record("otel.status_code", "ERROR");
                span.record(
                    "error.type",
                    if e.is_timeout() {
                        "timeout"
                    } else {
                        "transport"
                    },
                );
                return Err(format!(
                    "downloading the result failed: {}",
                    e.without_url()
                ));
            }
        };
        let status = response.status();
        span.record("http.response.status_code", status.as_u16());
        if status.is_client_error() || status.is_server_error() {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", status.as_str());
        }
        match status {
            StatusCode::OK => return Ok((response, span)),
            StatusCode::PARTIAL_CONTENT | StatusCode::RANGE_NOT_SATISFIABLE if range.is_some() => {
                return Ok((response, span));
            }
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

/// The client span of one GET of the result (HTTP client semantic conventions). A signed URL
/// carries its credentials in the query: only the scheme, host, port and path are recorded.
fn download_span(url: &str) -> tracing::Span {
    let parsed = reqwest::Url::parse(url).ok();
    let parsed = parsed.as_ref();
    tracing::info_span!(
        "result download",
        otel.name = "GET result",
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
        http.request.method = "GET",
        url.scheme = parsed.map_or("", |u| u.scheme()),
        server.address = parsed.and_then(|u| u.host_str()).unwrap_or_default(),
        server.port = parsed.and_then(reqwest::Url::port_or_known_default).unwrap_or_default(),
        url.path = parsed.map_or("", |u| u.path()),
        http.response.status_code = tracing::field::Empty,
        http.response.body.size = tracing::field::Empty,
    )
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

#[cfg(test)]
mod tests {
    use super::parse_content_range;

    #[test]
    fn content_ranges_give_their_start_and_total() {
        assert_eq!(
            parse_content_range("bytes 10485760-25165823/25165824"),
            Some((10_485_760, 25_165_824))
        );
        assert_eq!(parse_content_range(" bytes 0-0/1 "), Some((0, 1)));
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(parse_content_range("bytes 0-9/*"), None);
        assert_eq!(parse_content_range("items 0-9/10"), None);
    }
}
