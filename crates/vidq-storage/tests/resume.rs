//! Resumable uploads against a real S3-compatible server (see `support`): an upload whose
//! source broke goes on from its recorded parts, and the sha256 is still the whole body's.

mod support;

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::future::BoxFuture;
use support::{MIB, TestS3, chunked, pattern, sha256_hex};
use vidq_storage::{BoxError, Checkpoint, Error, Journal, StoredPart};

/// Records what the upload reports; `owned` false plays a caller that lost the upload.
#[derive(Default)]
struct Recorder {
    upload_id: Mutex<Option<String>>,
    parts: Mutex<Vec<StoredPart>>,
    disowned: bool,
}

impl Journal for Recorder {
    fn started<'a>(&'a self, upload_id: &'a str) -> BoxFuture<'a, Result<bool, BoxError>> {
        *self.upload_id.lock().unwrap() = Some(upload_id.to_owned());
        Box::pin(async { Ok(true) })
    }

    fn stored<'a>(
        &'a self,
        _upload_id: &'a str,
        part: &'a StoredPart,
    ) -> BoxFuture<'a, Result<bool, BoxError>> {
        self.parts.lock().unwrap().push(part.clone());
        let owned = !self.disowned;
        Box::pin(async move { Ok(owned) })
    }

    fn may_complete(&self) -> BoxFuture<'_, Result<bool, BoxError>> {
        Box::pin(async { Ok(true) })
    }
}

impl Recorder {
    fn checkpoint(&self) -> Checkpoint {
        Checkpoint::from_recorded(
            self.upload_id
                .lock()
                .unwrap()
                .clone()
                .expect("upload started"),
            self.parts.lock().unwrap().clone(),
        )
    }
}

fn broken_after(body: &[u8]) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    chunked(body, MIB).chain(futures::stream::iter([Err(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "upstream hung up",
    ))]))
}

#[tokio::test]
async fn a_broken_upload_resumes_from_its_recorded_parts_with_the_whole_sha256() {
    let s3 = TestS3::start();
    let storage = s3.storage(5 * MIB, 2).await;
    let key = storage.object_key("job-resume");
    let body = pattern(23 * MIB + 321, 11);
    let journal = Arc::new(Recorder::default());

    // The source breaks after 12 MiB: parts 1 and 2 are stored, the upload stays open.
    let err = storage
        .upload_resumable(
            &key,
            "video/mp4",
            broken_after(&body[..12 * MIB]),
            Some(body.len() as u64),
            None,
            journal.clone(),
        )
        .await
        .expect_err("source failed");
    assert!(matches!(err, Error::Source(_)), "{err:?}");
    let recorded = journal.checkpoint();
    assert_eq!(recorded.parts.len(), 2, "{recorded:?}");
    assert_eq!(recorded.offset(), 10 * MIB as u64);
    if !s3.is_external() {
        assert!(s3.pending_uploads(storage.bucket()).await > 0, "left open");
    }

    // The store holds both parts as recorded.
    let usable = storage
        .check_checkpoint(&key, &recorded)
        .await
        .unwrap()
        .expect("usable");
    assert_eq!(usable, recorded);

    // The rest of the body, from the checkpoint's offset.
    let offset = usize::try_from(usable.offset()).unwrap();
    let done = storage
        .upload_resumable(
            &key,
            "video/mp4",
            chunked(&body[offset..], 64 * 1024 + 3),
            Some(body.len() as u64),
            Some(usable),
            journal.clone(),
        )
        .await
        .expect("resumed upload");
    assert_eq!(done.bytes, body.len() as u64);
    assert_eq!(done.parts, 5);
    assert_eq!(done.sha256, sha256_hex(&body), "the whole body's sha256");
    assert_eq!(s3.download(storage.bucket(), &key).await, body);
    if !s3.is_external() {
        assert_eq!(s3.pending_uploads(storage.bucket()).await, 0);
    }
    assert_eq!(storage.buffered_bytes(), 0);
}

#[tokio::test]
async fn an_aborted_upload_cannot_be_resumed() {
    let s3 = TestS3::start();
    let storage = s3.storage(5 * MIB, 2).await;
    let key = storage.object_key("job-aborted");
    let body = pattern(12 * MIB, 3);
    let journal = Arc::new(Recorder::default());
    storage
        .upload_resumable(
            &key,
            "video/mp4",
            broken_after(&body),
            None,
            None,
            journal.clone(),
        )
        .await
        .expect_err("source failed");
    let recorded = journal.checkpoint();
    assert_eq!(recorded.parts.len(), 2);
    storage
        .abort_upload(&key, &recorded.upload_id)
        .await
        .unwrap();
    assert_eq!(
        storage.check_checkpoint(&key, &recorded).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn an_upload_taken_over_stops_without_aborting() {
    let s3 = TestS3::start();
    let storage = s3.storage(5 * MIB, 1).await;
    let key = storage.object_key("job-taken-over");
    let body = pattern(16 * MIB, 5);
    let journal = Arc::new(Recorder {
        disowned: true,
        ..Recorder::default()
    });
    let err = storage
        .upload_resumable(
            &key,
            "video/mp4",
            chunked(&body, MIB),
            Some(body.len() as u64),
            None,
            journal.clone(),
        )
        .await
        .expect_err("taken over");
    assert!(matches!(err, Error::Superseded), "{err:?}");
    assert_eq!(storage.head(&key).await.unwrap(), None, "never completed");
    if !s3.is_external() {
        assert!(
            s3.pending_uploads(storage.bucket()).await > 0,
            "left to the new owner"
        );
    }
}

#[tokio::test]
async fn a_damaged_checkpoint_is_refused() {
    let s3 = TestS3::start();
    let storage = s3.storage(5 * MIB, 1).await;
    let key = storage.object_key("job-damaged");
    let checkpoint = Checkpoint {
        upload_id: "u".into(),
        parts: vec![StoredPart {
            number: 1,
            bytes: 5 * MIB as u64,
            etag: None,
            sha256_state: "not hex".into(),
        }],
    };
    let err = storage
        .upload_resumable(
            &key,
            "video/mp4",
            chunked(&pattern(MIB, 1), MIB),
            Some(6 * MIB as u64),
            Some(checkpoint),
            Arc::new(Recorder::default()),
        )
        .await
        .expect_err("damaged");
    assert!(matches!(err, Error::BadCheckpoint(_)), "{err:?}");
}
