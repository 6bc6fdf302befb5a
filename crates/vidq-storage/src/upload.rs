//! Streaming upload: one PutObject for small bodies, a bounded multipart upload otherwise.

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, MetadataDirective};
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::task::{JoinError, JoinSet};
use tracing::Instrument as _;

use crate::buffer::{Part, PartBuf};
use crate::error::{BoxError, Error, Result};
use crate::resume::{Checkpoint, Journal, StoredPart, load_state};
use crate::source::Reader;
use crate::storage::{SHA256_META, Storage};

/// S3 allows at most this many parts per upload.
const MAX_PARTS: u32 = 10_000;

/// A stored object, as recorded in the job's output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uploaded {
    /// Bucket holding the object.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Object length.
    pub bytes: u64,
    /// Hex sha256 of the whole body (also stored as `x-amz-meta-sha256`).
    pub sha256: String,
    /// ETag returned by the store, when it sent one.
    pub etag: Option<String>,
    /// Parts sent: 1 for a single PutObject.
    pub parts: u32,
}

impl Storage {
    /// Streams `stream` into `key` with memory bounded by about
    /// `(parts_in_flight + 1) * part_size`, whatever the body's size.
    ///
    /// Bodies shorter than one part go up in a single PutObject; longer ones in a multipart
    /// upload with at most `parts_in_flight` parts on the wire at once. The sha256 of the
    /// body is computed on the way and stored as `x-amz-meta-sha256`. When `expected_len` is
    /// given, a body of any other length is rejected. On any failure the multipart upload is
    /// aborted, so no partial object becomes visible. (If the returned future is dropped
    /// mid-upload, the pending upload is left to the bucket's `AbortIncompleteMultipartUpload`
    /// lifecycle rule.)
    pub async fn upload_stream<S, E>(
        &self,
        key: &str,
        content_type: &str,
        stream: S,
        expected_len: Option<u64>,
    ) -> Result<Uploaded>
    where
        S: Stream<Item = std::result::Result<Bytes, E>>,
        E: Into<BoxError>,
    {
        self.upload(key, content_type, stream, expected_len, None, None)
            .await
    }

    /// [`Storage::upload_stream`] that can be resumed after a crash: `journal` hears of the
    /// multipart upload's id as soon as it exists and of each part once the store confirmed
    /// it (with the sha256 state at the part's end), and is asked before completing.
    ///
    /// With `resume` (checked first with [`Storage::check_checkpoint`]), the upload goes on
    /// from the part after the checkpoint's last: `stream` is the rest of the body from
    /// [`Checkpoint::offset`], `expected_len` the whole body's length, and the sha256 returned
    /// is still that of the whole body. On failure nothing is aborted: the caller decides
    /// between resuming and [`Storage::abort_upload`] (the journal holds the id). A body
    /// shorter than one part, without `resume`, goes up in a single PutObject and the journal
    /// hears nothing.
    pub async fn upload_resumable<S, E>(
        &self,
        key: &str,
        content_type: &str,
        stream: S,
        expected_len: Option<u64>,
        resume: Option<Checkpoint>,
        journal: Arc<dyn Journal>,
    ) -> Result<Uploaded>
    where
        S: Stream<Item = std::result::Result<Bytes, E>>,
        E: Into<BoxError>,
    {
        self.upload(
            key,
            content_type,
            stream,
            expected_len,
            resume,
            Some(journal),
        )
        .await
    }

    async fn upload<S, E>(
        &self,
        key: &str,
        content_type: &str,
        stream: S,
        expected_len: Option<u64>,
        resume: Option<Checkpoint>,
        journal: Option<Arc<dyn Journal>>,
    ) -> Result<Uploaded>
    where
        S: Stream<Item = std::result::Result<Bytes, E>>,
        E: Into<BoxError>,
    {
        let resume = resume.filter(|cp| !cp.parts.is_empty());
        if resume.is_none()
            && let Some(len) = expected_len
            && len > self.part_size as u64
            && len <= self.single_put_max
        {
            let put = self.put_streamed(key, content_type, stream, len);
            return self.traced("PutObject", "PUT", put).await;
        }
        let part_size = self.part_size_for(expected_len);
        let stream = std::pin::pin!(stream);
        let (mut reader, resumed) = match resume {
            Some(cp) => {
                let last = cp.parts.last().map(|p| p.sha256_state.as_str());
                let hasher = load_state(last.unwrap_or_default())?;
                let offset = cp.offset();
                (
                    Reader::resuming(stream, expected_len, hasher, offset),
                    Some(cp),
                )
            }
            None => (Reader::new(stream, expected_len), None),
        };
        let (upload_id, stored, first) = match resumed {
            Some(cp) => {
                tracing::info!(
                    key,
                    parts = cp.parts.len(),
                    offset = cp.offset(),
                    "resuming a multipart upload"
                );
                (cp.upload_id, cp.parts, None)
            }
            None => {
                let mut first = PartBuf::new(&self.gauge, part_size);
                reader.fill(&mut first).await?;
                let state = reader.hash_state();
                if reader.at_end().await? {
                    let (bytes, sha256) = reader.finish()?;
                    let put = self.put_whole(key, content_type, first.freeze(), bytes, sha256);
                    return self.traced("PutObject", "PUT", put).await;
                }
                let create = self.create_multipart(key, content_type);
                let upload_id = self.traced("CreateMultipartUpload", "POST", create).await?;
                if let Some(journal) = &journal {
                    let recorded = journal.started(&upload_id).await;
                    if !matches!(recorded, Ok(true)) {
                        self.abort(key, &upload_id).await;
                        return Err(match recorded {
                            Err(err) => Error::Journal(err),
                            _ => Error::Superseded,
                        });
                    }
                }
                (upload_id, Vec::new(), Some((first.freeze(), state)))
            }
        };
        let outcome = async {
            let next = u32::try_from(stored.len() + 1).unwrap_or(u32::MAX);
            let sent = self
                .send_parts(
                    key,
                    &upload_id,
                    (first, next, part_size),
                    &mut reader,
                    journal.clone(),
                )
                .await?;
            let (bytes, sha256) = reader.finish()?;
            let mut parts: Vec<CompletedPart> = stored
                .iter()
                .map(|p| {
                    CompletedPart::builder()
                        .part_number(i32::try_from(p.number).unwrap_or(i32::MAX))
                        .set_e_tag(p.etag.clone())
                        .build()
                })
                .collect();
            parts.extend(sent);
            let count = parts.len();
            if let Some(journal) = &journal {
                match journal.may_complete().await {
                    Ok(true) => {}
                    Ok(false) => return Err(Error::Superseded),
                    Err(err) => return Err(Error::Journal(err)),
                }
            }
            let complete = self.complete(key, &upload_id, parts);
            self.traced("CompleteMultipartUpload", "POST", complete)
                .await?;
            Ok((bytes, sha256, count))
        }
        .await;
        let (bytes, sha256, count) = match outcome {
            Ok(done) => done,
            Err(err) => {
                // With a journal the caller owns the upload: it resumes or aborts it.
                if journal.is_none() {
                    self.abort(key, &upload_id).await;
                }
                return Err(err);
            }
        };
        let etag = if self.checksum_metadata {
            self.set_checksum_metadata(key, content_type, &sha256)
                .await?
        } else {
            None
        };
        tracing::debug!(key, bytes, parts = count, "multipart upload complete");
        Ok(Uploaded {
            bucket: self.bucket.to_string(),
            key: key.to_owned(),
            bytes,
            sha256,
            etag,
            parts: u32::try_from(count).unwrap_or(u32::MAX),
        })
    }

    /// The part size of a body of `len` bytes: `storage.part_size`, or more when that would
    /// take over S3's 10,000 parts (whole MiB, so a resumed upload of the same body cuts it
    /// the same way).
    fn part_size_for(&self, len: Option<u64>) -> usize {
        const MIB: u64 = 1024 * 1024;
        let needed = len.map_or(0, |len| {
            len.div_ceil(u64::from(MAX_PARTS)).div_ceil(MIB) * MIB
        });
        self.part_size
            .max(usize::try_from(needed).unwrap_or(usize::MAX))
    }

    async fn put_whole(
        &self,
        key: &str,
        content_type: &str,
        part: Part,
        bytes: u64,
        sha256: String,
    ) -> Result<Uploaded> {
        let request = self
            .client
            .put_object()
            .bucket(&*self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(part.bytes.len() as i64)
            .metadata(SHA256_META, &sha256)
            .body(ByteStream::from(part.bytes.clone()))
            .customize();
        let request = if self.sign_payload {
            request
        } else {
            request.disable_payload_signing()
        };
        let out = request
            .send()
            .await
            .map_err(|err| Error::from_sdk("PutObject", &self.bucket, err))?;
        drop(part);
        tracing::debug!(key, bytes, "single-part upload complete");
        Ok(Uploaded {
            bucket: self.bucket.to_string(),
            key: key.to_owned(),
            bytes,
            sha256,
            etag: out.e_tag,
            parts: 1,
        })
    }

    async fn create_multipart(&self, key: &str, content_type: &str) -> Result<String> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&*self.bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|err| Error::from_sdk("CreateMultipartUpload", &self.bucket, err))?;
        out.upload_id.ok_or_else(|| Error::S3 {
            op: "CreateMultipartUpload",
            status: None,
            code: None,
            message: "response carried no upload id".to_owned(),
        })
    }

    /// Uploads `first` (when given) and the rest of the source as parts `number`, `number +
    /// 1`, ... of `part_size` bytes, reading the next part while earlier ones are on the wire.
    /// At most `parts_in_flight` uploads plus one part being filled exist at any time. Each
    /// part the store confirms is told to `journal` with the sha256 state at its end.
    ///
    /// Each part goes up in a task of its own, so signing and sending it run on another core
    /// while this one hashes and copies the next part. The tasks belong to a [`JoinSet`]: if
    /// this future is dropped, they are aborted with it.
    async fn send_parts<S, E>(
        &self,
        key: &str,
        upload_id: &str,
        (first, mut number, part_size): (Option<(Part, String)>, u32, usize),
        reader: &mut Reader<S>,
        journal: Option<Arc<dyn Journal>>,
    ) -> Result<Vec<CompletedPart>>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: Into<BoxError>,
    {
        let key: Arc<str> = key.into();
        let upload_id: Arc<str> = upload_id.into();
        let mut in_flight = JoinSet::new();
        let spawn = |in_flight: &mut JoinSet<_>, number: u32, part: Part, state: String| {
            let (storage, key, upload_id) = (self.clone(), key.clone(), upload_id.clone());
            let journal = journal.clone();
            in_flight.spawn(
                async move {
                    let bytes = part.bytes.len() as u64;
                    let put = storage.upload_part(&key, &upload_id, number, part);
                    let done = storage.traced("UploadPart", "PUT", put).await?;
                    if let Some(journal) = journal {
                        let stored = StoredPart {
                            number,
                            bytes,
                            etag: done.e_tag().map(str::to_owned),
                            sha256_state: state,
                        };
                        match journal.stored(&upload_id, &stored).await {
                            Ok(true) => {}
                            Ok(false) => return Err(Error::Superseded),
                            Err(err) => tracing::warn!(
                                part = number,
                                error = %err,
                                "could not record a stored part; a resumed upload sends it again"
                            ),
                        }
                    }
                    Ok(done)
                }
                .in_current_span(),
            );
        };
        let mut done = Vec::new();
        if let Some((first, state)) = first {
            spawn(&mut in_flight, number, first, state);
        } else {
            number -= 1;
        }
        loop {
            let mut next = PartBuf::new(&self.gauge, part_size);
            {
                let fill = reader.fill(&mut next);
                let mut fill = std::pin::pin!(fill);
                loop {
                    tokio::select! {
                        filled = &mut fill => {
                            if let Err(err) = filled {
                                // The parts already read are whole: let them be stored (and
                                // recorded), so a resumed upload need not read them again.
                                while let Some(uploaded) = in_flight.join_next().await {
                                    let _ = joined(uploaded);
                                }
                                return Err(err);
                            }
                            break;
                        }
                        Some(uploaded) = in_flight.join_next(), if !in_flight.is_empty() => {
                            done.push(joined(uploaded)?);
                        }
                    }
                }
            }
            if next.len() == 0 {
                break;
            }
            let state = reader.hash_state();
            let is_last = next.room() > 0;
            while in_flight.len() >= self.parts_in_flight {
                if let Some(uploaded) = in_flight.join_next().await {
                    done.push(joined(uploaded)?);
                }
            }
            number += 1;
            if number > MAX_PARTS {
                return Err(Error::TooManyParts {
                    part_size: part_size as u64,
                });
            }
            spawn(&mut in_flight, number, next.freeze(), state);
            if is_last {
                break;
            }
        }
        while let Some(uploaded) = in_flight.join_next().await {
            done.push(joined(uploaded)?);
        }
        done.sort_by_key(|p| p.part_number);
        Ok(done)
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        part: Part,
    ) -> Result<CompletedPart> {
        let number = i32::try_from(number).unwrap_or(i32::MAX);
        let request = self
            .client
            .upload_part()
            .bucket(&*self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .content_length(part.bytes.len() as i64)
            .body(ByteStream::from(part.bytes.clone()))
            .customize();
        let request = if self.sign_payload {
            request
        } else {
            request.disable_payload_signing()
        };
        let out = request
            .send()
            .await
            .map_err(|err| Error::from_sdk("UploadPart", &self.bucket, err))?;
        tracing::trace!(
            key,
            part = number,
            bytes = part.bytes.len(),
            "part uploaded"
        );
        drop(part);
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(out.e_tag)
            .build())
    }

    async fn complete(&self, key: &str, upload_id: &str, parts: Vec<CompletedPart>) -> Result<()> {
        self.client
            .complete_multipart_upload()
            .bucket(&*self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|err| Error::from_sdk("CompleteMultipartUpload", &self.bucket, err))?;
        Ok(())
    }

    /// Best effort: the upload already failed, and a lifecycle rule catches what this misses.
    async fn abort(&self, key: &str, upload_id: &str) {
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(&*self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(err) = aborted {
            tracing::warn!(
                key,
                error = %DisplayErrorContext(&err),
                "could not abort multipart upload; the bucket's AbortIncompleteMultipartUpload rule must clean it up"
            );
        }
    }

    /// The sha256 is known only once the last byte passed, after CreateMultipartUpload fixed
    /// the metadata: copy the object onto itself with the checksum added. Returns the new ETag.
    pub(crate) async fn set_checksum_metadata(
        &self,
        key: &str,
        content_type: &str,
        sha256: &str,
    ) -> Result<Option<String>> {
        let copied = self
            .client
            .copy_object()
            .bucket(&*self.bucket)
            .key(key)
            .copy_source(copy_source(&self.bucket, key))
            .metadata_directive(MetadataDirective::Replace)
            .content_type(content_type)
            .metadata(SHA256_META, sha256)
            .send()
            .await;
        match copied {
            Ok(out) => Ok(out.copy_object_result.and_then(|r| r.e_tag)),
            // The object stays: its bytes are whole, and the key may be the one a job that
            // succeeded through another delivery points to. A retried transfer overwrites it;
            // a job that fails for good removes it (the worker's transfer task).
            Err(err) => Err(Error::from_sdk("CopyObject", &self.bucket, err)),
        }
    }
}

/// The outcome of a part's task; a task that panicked or was cancelled fails the upload.
fn joined(outcome: std::result::Result<Result<CompletedPart>, JoinError>) -> Result<CompletedPart> {
    outcome.unwrap_or_else(|err| {
        Err(Error::S3 {
            op: "UploadPart",
            status: None,
            code: None,
            message: format!("the part's upload task ended early: {err}"),
        })
    })
}

/// `bucket/key` with the key percent-encoded (slashes kept), as CopyObject expects.
fn copy_source(bucket: &str, key: &str) -> String {
    let mut out = String::with_capacity(bucket.len() + key.len() + 1);
    out.push_str(bucket);
    out.push('/');
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~/".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_encodes_the_key() {
        assert_eq!(copy_source("b", "videos/a-1.mp4"), "b/videos/a-1.mp4");
        assert_eq!(copy_source("b", "a b+é"), "b/a%20b%2B%C3%A9");
    }

    #[tokio::test]
    async fn parts_grow_so_a_known_length_takes_at_most_10000() {
        let mut settings = crate::StorageSettings::new("b");
        settings.endpoint = Some("http://127.0.0.1:1".into());
        let storage = Storage::new(&settings).await.unwrap();
        let mib = 1024 * 1024;
        assert_eq!(storage.part_size_for(None), 8 * mib);
        assert_eq!(storage.part_size_for(Some(1024 * mib as u64)), 8 * mib);
        // 100 GiB in 8 MiB parts would be 12,800 parts.
        let big = 100 * 1024 * mib as u64;
        assert_eq!(storage.part_size_for(Some(big)), 11 * mib);
        assert!(big.div_ceil(11 * mib as u64) <= u64::from(MAX_PARTS));
    }

    fn assert_send<T: Send>(_: &T) {}

    #[tokio::test]
    async fn upload_future_is_send() {
        let mut settings = crate::StorageSettings::new("b");
        settings.endpoint = Some("http://127.0.0.1:1".into());
        let storage = Storage::new(&settings).await.unwrap();
        let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"x"))]);
        let fut = storage.upload_stream("k", "video/mp4", body, None);
        assert_send(&fut);
    }
}
