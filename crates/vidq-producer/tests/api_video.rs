//! `GET /v1/jobs/{id}/video`: a redirect to a presigned URL of the stored object.

mod support;

use std::time::Duration;

use bytes::Bytes;
use secrecy::SecretString;
use support::{RW_TOKEN, TENANT_A, body, error_of, settings, spawn_with};
use vidq_core::{JobRecord, JobState, Output, TransformRequest, Transition, unix_ms_now};
use vidq_storage::{Storage, StorageSettings};

async fn test_storage() -> Storage {
    let mut s = StorageSettings::new(format!("vidq-test-api-{}", uuid::Uuid::new_v4().simple()));
    s.endpoint = Some(std::env::var("VIDQ_TEST_S3_ENDPOINT").expect("VIDQ_TEST_S3_ENDPOINT"));
    s.region = std::env::var("VIDQ_TEST_S3_REGION").unwrap_or_else(|_| "us-east-1".into());
    s.access_key_id = std::env::var("VIDQ_TEST_S3_ACCESS_KEY").ok();
    s.secret_access_key = std::env::var("VIDQ_TEST_S3_SECRET_KEY")
        .ok()
        .map(SecretString::from);
    s.presign_ttl = Duration::from_secs(60);
    let storage = Storage::new(&s).await.unwrap();
    storage.ensure_bucket().await.unwrap();
    storage
}

#[tokio::test]
async fn a_succeeded_job_redirects_to_its_video_and_others_are_not_ready() {
    let storage = test_storage().await;
    let video = Bytes::from_static(b"\x00\x00\x00\x18ftypmp42 a tiny test video");
    let key = storage.object_key("api-test");
    let uploaded = storage
        .upload_stream(
            &key,
            "video/mp4",
            futures::stream::iter([Ok::<_, std::io::Error>(video.clone())]),
            None,
        )
        .await
        .unwrap();
    let app = spawn_with(settings(), Some(storage.clone())).await;

    let request = TransformRequest::try_from(body(1)).unwrap();
    let mut record = JobRecord::new(request, Duration::from_secs(1800));
    record.owner = Some(TENANT_A.into());
    record.state = JobState::Succeeded;
    record.output = Some(Output {
        bucket: uploaded.bucket.clone(),
        key: uploaded.key.clone(),
        bytes: uploaded.bytes,
        sha256: "00".repeat(32),
        content_type: "video/mp4".into(),
    });
    record.history = vec![Transition {
        from: JobState::Transferring,
        to: JobState::Succeeded,
        at_ms: unix_ms_now(),
        note: None,
    }];
    app.store.create(&record).await.unwrap();

    let response = app
        .get(&format!("/v1/jobs/{}/video", record.id), RW_TOKEN)
        .await;
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.contains("X-Amz-Signature"),
        "presigned: {location}"
    );
    let downloaded = reqwest::get(&location).await.unwrap();
    assert_eq!(downloaded.status(), 200);
    assert_eq!(downloaded.bytes().await.unwrap(), video);

    let queued = app.post_job(RW_TOKEN, &body(2)).await;
    let queued: serde_json::Value = queued.json().await.unwrap();
    let not_ready = app
        .get(
            &format!("/v1/jobs/{}/video", queued["id"].as_str().unwrap()),
            RW_TOKEN,
        )
        .await;
    assert_eq!(error_of(not_ready).await, (409, "not_ready".into(), None));
}

#[tokio::test]
async fn without_storage_the_video_is_unavailable() {
    let app = spawn_with(settings(), None).await;
    let request = TransformRequest::try_from(body(1)).unwrap();
    let mut record = JobRecord::new(request, Duration::from_secs(1800));
    record.owner = Some(TENANT_A.into());
    record.state = JobState::Succeeded;
    record.output = Some(Output {
        bucket: "b".into(),
        key: "k".into(),
        bytes: 1,
        sha256: "00".repeat(32),
        content_type: "video/mp4".into(),
    });
    app.store.create(&record).await.unwrap();
    let response = app
        .get(&format!("/v1/jobs/{}/video", record.id), RW_TOKEN)
        .await;
    assert_eq!(error_of(response).await.0, 503);
}
