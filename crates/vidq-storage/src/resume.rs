//! Resuming a multipart upload after a crash: what its caller records of it (the parts the
//! store confirmed, with the sha256 state at each part's end), how that record is checked
//! against the parts the store holds, and the hook through which an upload reports progress.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use futures::future::BoxFuture;
use sha2_state::Sha256;
use sha2_state::digest::common::hazmat::{SerializableState, SerializedState};

use crate::error::{BoxError, Error, Result};
use crate::storage::Storage;

/// One part of a multipart upload that the store confirmed (its `UploadPart` answered).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPart {
    /// Part number, from 1.
    pub number: u32,
    /// Its length.
    pub bytes: u64,
    /// The ETag the store gave it, when it gave one.
    pub etag: Option<String>,
    /// The sha256 state after every body byte up to this part's end (hex of sha2's portable
    /// serialised state), so an upload resumed after this part ends with the sha256 of the
    /// whole body without reading back what is stored.
    pub sha256_state: String,
}

/// Where an interrupted multipart upload stands: its id and its first parts, `1..=n` without a
/// gap, each confirmed by the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The multipart upload's id.
    pub upload_id: String,
    /// Parts `1..=n`, in order.
    pub parts: Vec<StoredPart>,
}

impl Checkpoint {
    /// Builds a checkpoint from recorded parts in any order, keeping the leading run
    /// `1, 2, ...` without a gap (a part after a gap must be sent again anyway).
    #[must_use]
    pub fn from_recorded(upload_id: String, mut parts: Vec<StoredPart>) -> Self {
        parts.sort_by_key(|p| p.number);
        let run = parts
            .iter()
            .enumerate()
            .take_while(|(i, p)| u32::try_from(*i + 1).is_ok_and(|n| n == p.number))
            .count();
        parts.truncate(run);
        Self { upload_id, parts }
    }

    /// Body bytes the stored parts hold: where the rest of the body starts.
    #[must_use]
    pub fn offset(&self) -> u64 {
        self.parts.iter().map(|p| p.bytes).sum()
    }
}

/// Told about an upload's progress by [`Storage::upload_resumable`], so that its caller can
/// record it (fenced by whatever it owns) and resume it after a crash.
///
/// `Ok(false)` from any hook means the caller no longer owns the upload (another process took
/// it over): the upload stops with [`Error::Superseded`] and leaves the multipart upload to
/// its new owner.
pub trait Journal: Send + Sync + 'static {
    /// The multipart upload `upload_id` was created and nothing of it is stored yet. An error
    /// or `false` aborts it (an upload nobody recorded could not be resumed nor cleaned up).
    fn started<'a>(&'a self, upload_id: &'a str) -> BoxFuture<'a, Result<bool, BoxError>>;

    /// The store confirmed `part` of `upload_id`. An error is logged and the upload goes on
    /// (the part is only not resumable).
    fn stored<'a>(
        &'a self,
        upload_id: &'a str,
        part: &'a StoredPart,
    ) -> BoxFuture<'a, Result<bool, BoxError>>;

    /// Asked just before `CompleteMultipartUpload`. An error fails the upload without
    /// aborting it (the next attempt resumes it).
    fn may_complete(&self) -> BoxFuture<'_, Result<bool, BoxError>>;
}

/// The hasher's state, portable (sha2's own serialisation), as hex.
pub(crate) fn save_state(hasher: &Sha256) -> String {
    hex::encode(hasher.serialize())
}

/// A hasher back in the state [`save_state`] wrote.
pub(crate) fn load_state(hex_state: &str) -> Result<Sha256> {
    let bad = |reason: &str| Error::BadCheckpoint(format!("sha256 state: {reason}"));
    let raw = hex::decode(hex_state).map_err(|_| bad("not hex"))?;
    let state = SerializedState::<Sha256>::try_from(raw.as_slice()).map_err(|_| bad("length"))?;
    Sha256::deserialize(&state).map_err(|_| bad("not a sha256 state"))
}

impl Storage {
    /// Checks `checkpoint` against the parts the store holds for its upload (`ListParts`): the
    /// leading parts whose number, length and ETag (when the store lists one) match are kept.
    /// `None` when none is usable: the upload is gone, or its first part differs (abort it and
    /// start again). A store whose `ListParts` answer cannot be read keeps the checkpoint as
    /// recorded (each part was recorded after the store confirmed it); `CompleteMultipartUpload`
    /// then checks the ETags.
    pub async fn check_checkpoint(
        &self,
        key: &str,
        checkpoint: &Checkpoint,
    ) -> Result<Option<Checkpoint>> {
        if checkpoint.parts.is_empty() {
            return Ok(None);
        }
        let mut listed = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = match self
                .client
                .list_parts()
                .bucket(&*self.bucket)
                .key(key)
                .upload_id(&checkpoint.upload_id)
                .set_part_number_marker(marker.take())
                .send()
                .await
            {
                Ok(page) => page,
                Err(err) => {
                    let status = err.raw_response().map(|r| r.status().as_u16());
                    if err.code() == Some("NoSuchUpload") || status == Some(404) {
                        return Ok(None);
                    }
                    if matches!(err, SdkError::ResponseError(_)) {
                        // A 2xx answer in a dialect the SDK cannot read (moto's ListParts).
                        tracing::warn!(
                            error = %DisplayErrorContext(&err),
                            "the store's ListParts answer is unreadable; resuming from the recorded parts"
                        );
                        return Ok(Some(checkpoint.clone()));
                    }
                    return Err(Error::from_sdk("ListParts", &self.bucket, err));
                }
            };
            for part in page.parts() {
                let (Some(number), Some(size)) = (part.part_number(), part.size()) else {
                    continue;
                };
                listed.push((number, size, part.e_tag().map(str::to_owned)));
            }
            match page.next_part_number_marker() {
                Some(next) if page.is_truncated() == Some(true) => marker = Some(next.to_owned()),
                _ => break,
            }
        }
        Ok(usable_prefix(checkpoint, &listed))
    }
}

/// The leading recorded parts the store lists with the same length (and ETag, when both
/// have one); `None` when not even the first matches.
fn usable_prefix(
    checkpoint: &Checkpoint,
    listed: &[(i32, i64, Option<String>)],
) -> Option<Checkpoint> {
    let unquote = |e: &str| e.trim_matches('"').to_owned();
    let kept = checkpoint
        .parts
        .iter()
        .take_while(|recorded| {
            listed.iter().any(|(number, size, etag)| {
                i64::from(recorded.number) == i64::from(*number)
                    && u64::try_from(*size).is_ok_and(|s| s == recorded.bytes)
                    && match (etag, &recorded.etag) {
                        (Some(a), Some(b)) => unquote(a) == unquote(b),
                        _ => true,
                    }
            })
        })
        .count();
    (kept > 0).then(|| Checkpoint {
        upload_id: checkpoint.upload_id.clone(),
        parts: checkpoint.parts[..kept].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use sha2_state::Digest;

    use super::*;

    fn part(number: u32, bytes: u64, etag: Option<&str>) -> StoredPart {
        StoredPart {
            number,
            bytes,
            etag: etag.map(str::to_owned),
            sha256_state: String::new(),
        }
    }

    #[test]
    fn a_saved_state_goes_on_to_the_sha256_of_the_whole_body() {
        let body: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for cut in [0, 1, 63, 64, 65, 4096, 9_999, 10_000] {
            let mut first = Sha256::new();
            first.update(&body[..cut]);
            let saved = save_state(&first);
            let mut resumed = load_state(&saved).unwrap();
            resumed.update(&body[cut..]);
            assert_eq!(
                hex::encode(resumed.finalize()),
                hex::encode(Sha256::digest(&body)),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_damaged_state_is_refused() {
        assert!(matches!(load_state("zz"), Err(Error::BadCheckpoint(_))));
        assert!(matches!(load_state("00ff"), Err(Error::BadCheckpoint(_))));
    }

    #[test]
    fn recorded_parts_keep_their_leading_run() {
        let cp = Checkpoint::from_recorded(
            "u".into(),
            vec![part(2, 5, None), part(1, 5, None), part(4, 5, None)],
        );
        assert_eq!(cp.parts.len(), 2);
        assert_eq!(cp.offset(), 10);
        let none = Checkpoint::from_recorded("u".into(), vec![part(2, 5, None)]);
        assert!(none.parts.is_empty());
        assert_eq!(none.offset(), 0);
    }

    #[test]
    fn only_parts_the_store_holds_as_recorded_are_kept() {
        let cp = Checkpoint {
            upload_id: "u".into(),
            parts: vec![
                part(1, 5, Some("\"a\"")),
                part(2, 5, Some("b")),
                part(3, 5, Some("c")),
            ],
        };
        let listed = vec![
            (2, 5, Some("\"b\"".to_owned())),
            (1, 5, Some("a".to_owned())),
            (3, 4, None),
        ];
        let kept = usable_prefix(&cp, &listed).unwrap();
        assert_eq!(kept.parts.len(), 2, "part 3 has another length");
        // A store without ETags in ListParts (s3s-fs): lengths decide.
        let no_etags = vec![(1, 5, None), (2, 5, None), (3, 5, None)];
        assert_eq!(usable_prefix(&cp, &no_etags).unwrap().parts.len(), 3);
        // Another first part, or none listed (an upload that is gone): nothing usable.
        assert!(usable_prefix(&cp, &[(1, 5, Some("x".to_owned()))]).is_none());
        assert!(usable_prefix(&cp, &[]).is_none());
    }
}
