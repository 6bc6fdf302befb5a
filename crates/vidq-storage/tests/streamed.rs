//! `storage.single_put_max`: a body of known length up to it goes up in one streamed
//! PutObject, against a real S3-compatible server (see `support`).

mod support;

use futures::StreamExt;
use support::{MIB, TestS3, chunked, pattern, sha256_hex};
use vidq_storage::{Error, Storage};

async fn storage(s3: &TestS3) -> Storage {
    let mut settings = s3.settings(5 * MIB, 2);
    settings.single_put_max = 16 * MIB as u64;
    let storage = Storage::new(&settings).await.unwrap();
    storage.ensure_bucket().await.unwrap();
    storage
}

#[tokio::test]
async fn a_known_length_up_to_the_threshold_is_one_streamed_put() {
    let s3 = TestS3::start();
    let storage = storage(&s3).await;
    let body = pattern(12 * MIB + 5, 21);
    let key = storage.object_key("job-streamed");
    let up = storage
        .upload_stream(
            &key,
            "video/mp4",
            chunked(&body, 64 * 1024),
            Some(body.len() as u64),
        )
        .await
        .expect("upload");
    assert_eq!(up.parts, 1, "one PutObject");
    assert_eq!(up.bytes, body.len() as u64);
    assert_eq!(up.sha256, sha256_hex(&body));
    assert_eq!(s3.download(storage.bucket(), &key).await, body);
    if !s3.is_external() {
        assert_eq!(s3.pending_uploads(storage.bucket()).await, 0);
    }
    assert_eq!(storage.buffered_peak(), 0, "nothing buffered in parts");

    // Unknown length, or above the threshold: multipart as before.
    let up = storage
        .upload_stream(&key, "video/mp4", chunked(&body, MIB), None)
        .await
        .expect("upload");
    assert_eq!(up.parts, 3);
    let big = pattern(17 * MIB, 2);
    let up = storage
        .upload_stream(
            &key,
            "video/mp4",
            chunked(&big, MIB),
            Some(big.len() as u64),
        )
        .await
        .expect("upload");
    assert_eq!(up.parts, 4);
    assert_eq!(s3.download(storage.bucket(), &key).await, big);
}

#[tokio::test]
async fn a_streamed_put_cut_short_or_overlong_stores_nothing() {
    let s3 = TestS3::start();
    let storage = storage(&s3).await;
    let body = pattern(8 * MIB, 4);
    let key = storage.object_key("job-streamed-bad");

    let err = storage
        .upload_stream(
            &key,
            "video/mp4",
            chunked(&body, MIB),
            Some(body.len() as u64 - 1),
        )
        .await
        .expect_err("overlong");
    assert!(matches!(err, Error::LengthMismatch { .. }), "{err:?}");

    let err = storage
        .upload_stream(
            &key,
            "video/mp4",
            chunked(&body, MIB),
            Some(body.len() as u64 + 1),
        )
        .await
        .expect_err("short");
    assert!(matches!(err, Error::LengthMismatch { .. }), "{err:?}");

    let broken = chunked(&body[..7 * MIB], MIB).chain(futures::stream::iter([Err(
        std::io::Error::new(std::io::ErrorKind::ConnectionReset, "upstream hung up"),
    )]));
    let err = storage
        .upload_stream(&key, "video/mp4", broken, Some(body.len() as u64))
        .await
        .expect_err("broken");
    assert!(matches!(err, Error::Source(_)), "{err:?}");
    assert_eq!(storage.head(&key).await.unwrap(), None, "no object");
}
