//! Uploads against a real S3-compatible server (see `support`).

mod support;

use bytes::Bytes;
use futures::StreamExt;
use support::{MIB, TestS3, chunked, pattern, sha256_hex};
use vidq_storage::{Error, Storage};

#[tokio::test]
async fn multipart_upload_stores_the_exact_bytes_and_checksum() {
    let s3 = TestS3::start();
    let mut settings = s3.settings(5 * MIB, 3);
    settings.checksum_metadata = true;
    let storage = Storage::new(&settings).await.unwrap();
    storage.ensure_bucket().await.unwrap();
    let body = pattern(23 * MIB + 123, 1);
    let key = storage.object_key("job-multipart");

    let up = storage
        .upload_stream(
            &key,
            "video/mp4",
            chunked(&body, 64 * 1024 + 7),
            Some(body.len() as u64),
        )
        .await
        .expect("upload");

    assert_eq!(up.parts, 5, "23 MiB in 5 MiB parts");
    assert_eq!(up.bytes, body.len() as u64);
    assert_eq!(up.sha256, sha256_hex(&body));
    assert_eq!(up.bucket, storage.bucket());
    assert_eq!(s3.download(storage.bucket(), &key).await, body);
    let info = storage.head(&key).await.unwrap().expect("object exists");
    assert_eq!(info.bytes, body.len() as u64);
    assert_eq!(info.sha256.as_deref(), Some(up.sha256.as_str()));
    assert_eq!(info.content_type.as_deref(), Some("video/mp4"));
    assert_eq!(s3.pending_uploads(storage.bucket()).await, 0);
    assert_eq!(storage.buffered_bytes(), 0, "all part buffers released");
}

#[tokio::test]
async fn large_source_chunks_are_split_across_parts() {
    let s3 = TestS3::start();
    let storage = s3.storage(5 * MIB, 2).await;
    // One 12 MiB chunk followed by an exact part: parts must still be 5 MiB.
    let body = pattern(17 * MIB, 2);
    let key = storage.object_key("job-bigchunks");
    let up = storage
        .upload_stream(&key, "video/mp4", chunked(&body, 12 * MIB), None)
        .await
        .expect("upload");
    assert_eq!(up.parts, 4);
    assert_eq!(s3.download(storage.bucket(), &key).await, body);
}

#[tokio::test]
async fn body_of_exactly_one_part_uses_a_single_put() {
    let s3 = TestS3::start();
    let storage = s3.storage(5 * MIB, 2).await;
    let body = pattern(5 * MIB, 3);
    let key = storage.object_key("job-exact");
    let up = storage
        .upload_stream(
            &key,
            "video/mp4",
            chunked(&body, MIB),
            Some(body.len() as u64),
        )
        .await
        .expect("upload");
    assert_eq!(up.parts, 1);
    assert_eq!(s3.download(storage.bucket(), &key).await, body);
}

#[tokio::test]
async fn small_body_uses_one_put_object_with_checksum_metadata() {
    let s3 = TestS3::start();
    let storage = s3.storage(5 * MIB, 2).await;
    let body = pattern(300_000, 4);
    let key = storage.object_key("job-small");

    let up = storage
        .upload_stream(
            &key,
            "video/mp4",
            chunked(&body, 4096),
            Some(body.len() as u64),
        )
        .await
        .expect("upload");

    assert_eq!(up.parts, 1);
    let etag = up.etag.expect("etag");
    assert!(!etag.contains('-'), "a multipart ETag ends in -N: {etag}");
    assert_eq!(s3.download(storage.bucket(), &key).await, body);
    let info = storage.head(&key).await.unwrap().expect("object exists");
    assert_eq!(info.sha256, Some(sha256_hex(&body)));
    assert_eq!(info.content_type.as_deref(), Some("video/mp4"));
    assert_eq!(s3.pending_uploads(storage.bucket()).await, 0);
}

#[tokio::test]
async fn empty_body_is_stored_as_an_empty_object() {
    let s3 = TestS3::start();
    let storage = s3.storage(5 * MIB, 2).await;
    let key = storage.object_key("job-empty");
    let up = storage
        .upload_stream(&key, "video/mp4", chunked(&[], 1), Some(0))
        .await
        .expect("upload");
    assert_eq!(up.bytes, 0);
    assert_eq!(up.sha256, sha256_hex(&[]));
    assert_eq!(storage.head(&key).await.unwrap().map(|i| i.bytes), Some(0));
}

#[tokio::test]
async fn uploading_the_same_key_twice_leaves_one_object_with_the_second_content() {
    let s3 = TestS3::start();
    let storage = s3.storage(5 * MIB, 2).await;
    let key = storage.object_key("job-retry");
    let first = pattern(11 * MIB, 5);
    let second = pattern(2 * MIB + 17, 6);

    storage
        .upload_stream(&key, "video/mp4", chunked(&first, MIB), None)
        .await
        .expect("first upload");
    let up = storage
        .upload_stream(&key, "video/mp4", chunked(&second, MIB), None)
        .await
        .expect("second upload");

    assert_eq!(s3.list_keys(storage.bucket()).await, vec![key.clone()]);
    assert_eq!(s3.download(storage.bucket(), &key).await, second);
    let info = storage.head(&key).await.unwrap().expect("object exists");
    assert_eq!(info.sha256, Some(up.sha256));
    assert_eq!(info.bytes, second.len() as u64);
}

#[tokio::test]
async fn failing_source_leaves_no_object_and_no_pending_upload() {
    let s3 = TestS3::start();
    let storage = s3.storage(5 * MIB, 2).await;
    let key = storage.object_key("job-broken");
    let good = pattern(12 * MIB, 7);
    let broken = chunked(&good, MIB).chain(futures::stream::iter([Err(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "upstream hung up",
    ))]));

    let err = storage
        .upload_stream(&key, "video/mp4", broken, None)
        .await
        .expect_err("source failed");

    assert!(matches!(err, Error::Source(_)), "{err:?}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("upstream hung up"), "{err}");
    assert_eq!(storage.head(&key).await.unwrap(), None);
    assert!(s3.list_keys(storage.bucket()).await.is_empty());
    assert_eq!(s3.pending_uploads(storage.bucket()).await, 0);
    assert_eq!(storage.buffered_bytes(), 0);
}

#[tokio::test]
async fn length_mismatch_is_rejected_and_leaves_nothing() {
    let s3 = TestS3::start();
    let storage = s3.storage(5 * MIB, 2).await;
    let body = pattern(12 * MIB, 8);
    let cases = [
        ("longer", body.len() as u64 - 1),
        ("shorter", body.len() as u64 + 1),
    ];
    for (name, expected) in cases {
        let key = storage.object_key(name);
        let err = storage
            .upload_stream(&key, "video/mp4", chunked(&body, MIB), Some(expected))
            .await
            .expect_err("length mismatch");
        match err {
            Error::LengthMismatch { expected: e, .. } => assert_eq!(e, expected),
            ref other => panic!("{name}: expected LengthMismatch, got {other:?}"),
        }
        assert!(!err.is_retryable());
        assert_eq!(storage.head(&key).await.unwrap(), None, "{name}");
    }
    // Same for a body small enough for a single PutObject.
    let key = storage.object_key("small");
    let err = storage
        .upload_stream(&key, "video/mp4", chunked(&body[..1000], 100), Some(999))
        .await
        .expect_err("length mismatch");
    assert!(
        matches!(
            err,
            Error::LengthMismatch {
                expected: 999,
                got: 1000
            }
        ),
        "{err:?}"
    );
    assert!(s3.list_keys(storage.bucket()).await.is_empty());
    assert_eq!(s3.pending_uploads(storage.bucket()).await, 0);
}

#[tokio::test]
async fn unsigned_bodies_are_stored_the_same() {
    let s3 = TestS3::start();
    let mut settings = s3.settings(5 * MIB, 2);
    settings.sign_payload = Some(false);
    let storage = Storage::new(&settings).await.unwrap();
    storage.ensure_bucket().await.unwrap();
    for (name, len, parts) in [("multipart", 11 * MIB + 5, 3), ("single", 3 * MIB, 1)] {
        let body = pattern(len, 12);
        let key = storage.object_key(name);
        let up = storage
            .upload_stream(&key, "video/mp4", chunked(&body, MIB), Some(len as u64))
            .await
            .expect("upload");
        assert_eq!(up.parts, parts, "{name}");
        assert_eq!(up.sha256, sha256_hex(&body), "{name}");
        assert_eq!(s3.download(storage.bucket(), &key).await, body, "{name}");
    }
    assert_eq!(s3.pending_uploads(storage.bucket()).await, 0);
}

#[tokio::test]
async fn a_dropped_upload_releases_its_part_buffers() {
    let s3 = TestS3::start();
    let part = 5 * MIB;
    let storage = s3.storage(part, 2).await;
    let key = storage.object_key("job-dropped");
    // Two parts' worth, then a source that never ends: the upload stays mid-way.
    let pulled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = pulled.clone();
    let stalled = chunked(&pattern(2 * part, 13), MIB)
        .inspect(move |chunk| {
            if let Ok(chunk) = chunk {
                counter.fetch_add(chunk.len(), std::sync::atomic::Ordering::Relaxed);
            }
        })
        .chain(futures::stream::pending());
    let upload = storage.upload_stream(&key, "video/mp4", stalled, None);
    let mid_way = async {
        // Every byte was read: both parts went to their tasks, a third buffer waits for more.
        while pulled.load(std::sync::atomic::Ordering::Relaxed) < 2 * part {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::select! {
        outcome = upload => panic!("the upload cannot finish: {outcome:?}"),
        () = mid_way => {}
        () = tokio::time::sleep(std::time::Duration::from_secs(30)) => {
            panic!("the upload never got mid-way: {} bytes buffered", storage.buffered_bytes())
        }
    }
    assert!(storage.buffered_bytes() >= part as u64);
    // The upload future is gone: its part tasks go with it, and so does their memory.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while storage.buffered_bytes() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} bytes still buffered",
            storage.buffered_bytes()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn missing_bucket_is_reported_and_not_retryable() {
    let s3 = TestS3::start();
    let settings = s3.settings(5 * MIB, 2);
    let storage = Storage::new(&settings).await.unwrap();

    let err = storage.check_bucket().await.expect_err("no bucket");
    assert!(
        matches!(&err, Error::BucketMissing { bucket } if *bucket == settings.bucket),
        "{err:?}"
    );
    assert!(!err.is_retryable());

    // s3s-fs creates a missing bucket on PutObject; real S3 and MinIO answer NoSuchBucket
    // (that mapping is unit-tested in `error.rs`).
    if s3.is_external() {
        let err = storage
            .upload_stream("k.mp4", "video/mp4", chunked(b"tiny", 4), None)
            .await
            .expect_err("no bucket");
        assert!(matches!(err, Error::BucketMissing { .. }), "{err:?}");
    }

    storage.ensure_bucket().await.expect("create");
    storage.check_bucket().await.expect("bucket exists now");
    storage.ensure_bucket().await.expect("idempotent");
}

#[tokio::test]
async fn wrong_secret_is_access_denied_without_leaking_the_secret() {
    let s3 = TestS3::start();
    let good = s3.storage(5 * MIB, 2).await;
    let mut settings = s3.settings(5 * MIB, 2);
    settings.bucket = good.bucket().to_owned();
    let wrong = format!("wrong-{}", uuid::Uuid::new_v4().simple());
    settings.secret_access_key = Some(wrong.clone().into());
    let storage = Storage::new(&settings).await.unwrap();

    let err = storage.check_bucket().await.expect_err("denied");
    assert!(matches!(err, Error::AccessDenied { .. }), "{err:?}");
    assert!(!err.is_retryable());
    let err = storage
        .upload_stream(
            "k.mp4",
            "video/mp4",
            chunked(&pattern(7 * MIB, 9), MIB),
            None,
        )
        .await
        .expect_err("denied");
    assert!(matches!(err, Error::AccessDenied { .. }), "{err:?}");
    for shown in [
        err.to_string(),
        format!("{err:?}"),
        format!("{storage:?}"),
        format!("{settings:?}"),
    ] {
        assert!(!shown.contains(&wrong), "secret leaked: {shown}");
        assert!(!shown.contains(&s3.secret_key), "secret leaked: {shown}");
    }
}

#[tokio::test]
async fn presigned_url_downloads_with_a_plain_get() {
    let s3 = TestS3::start();
    let storage = s3.storage(5 * MIB, 2).await;
    let key = storage.object_key("job-presign");
    let body = pattern(6 * MIB + 5, 10);
    storage
        .upload_stream(&key, "video/mp4", chunked(&body, MIB), None)
        .await
        .expect("upload");

    let url = storage.presign_get(&key, None).await.expect("presign");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    assert!(!url.contains(&s3.secret_key), "secret in URL");

    let response = reqwest::get(&url).await.expect("GET");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap()),
        Some("video/mp4")
    );
    let got: Bytes = response.bytes().await.expect("body");
    assert_eq!(got.as_ref(), body.as_slice());

    // Flip the signature's first hex digit: same length, wrong value.
    let at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let flipped = if &url[at..=at] == "0" { "1" } else { "0" };
    let tampered = format!("{}{flipped}{}", &url[..at], &url[at + 1..]);
    let response = reqwest::get(&tampered).await.expect("GET");
    assert_eq!(response.status(), 403, "a tampered URL is refused");
}

#[tokio::test]
async fn head_of_a_missing_object_is_none() {
    let s3 = TestS3::start();
    let storage = s3.storage(5 * MIB, 2).await;
    assert_eq!(storage.head("nothing-here.mp4").await.unwrap(), None);
}
