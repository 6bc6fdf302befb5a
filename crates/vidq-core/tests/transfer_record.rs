//! A job's transfer record (the multipart upload and its stored parts), fenced by the delivery
//! that owns the transfer, against a real Redis.

mod common;

use common::{harness, queued};
use vidq_core::{RecordedPart, TransferUpload};

fn part(number: u32) -> RecordedPart {
    RecordedPart {
        number,
        bytes: 5 * 1024 * 1024,
        etag: Some(format!("\"etag-{number}\"")),
        sha256_state: format!("state{number}"),
    }
}

fn upload(id: &str) -> TransferUpload {
    TransferUpload {
        upload_id: id.to_owned(),
        key: "videos/j.mp4".to_owned(),
        length: 24 * 1024 * 1024,
        validator: Some("\"v1\"".to_owned()),
    }
}

#[tokio::test]
async fn a_delivery_that_lost_the_transfer_records_nothing() {
    let h = harness().await;
    let store = &h.store;
    let job = queued();
    store.create(&job).await.unwrap();

    // The first delivery opens an upload and records two parts.
    assert_eq!(
        store.take_transfer(&job.id, "1.a").await.unwrap(),
        Default::default()
    );
    assert!(
        store
            .begin_transfer_upload(&job.id, "1.a", &upload("u1"))
            .await
            .unwrap()
    );
    for n in [1, 2] {
        assert!(
            store
                .record_part(&job.id, "1.a", "u1", &part(n))
                .await
                .unwrap()
        );
    }
    // A part of another upload is not recorded.
    assert!(
        !store
            .record_part(&job.id, "1.a", "u0", &part(3))
            .await
            .unwrap()
    );

    // Its lease expired: the next delivery takes the transfer over and reads what was stored.
    let record = store.take_transfer(&job.id, "2.b").await.unwrap();
    assert_eq!(record.upload, Some(upload("u1")));
    let mut parts = record.parts;
    parts.sort_by_key(|p| p.number);
    assert_eq!(parts, vec![part(1), part(2)]);

    // The late first delivery changes nothing any more, and may not complete.
    assert!(!store.owns_transfer(&job.id, "1.a").await.unwrap());
    assert!(
        !store
            .record_part(&job.id, "1.a", "u1", &part(3))
            .await
            .unwrap()
    );
    assert!(
        !store
            .begin_transfer_upload(&job.id, "1.a", &upload("u9"))
            .await
            .unwrap()
    );
    assert!(!store.reset_transfer(&job.id, "1.a").await.unwrap());
    assert!(!store.end_transfer(&job.id, "1.a").await.unwrap());
    assert!(store.owns_transfer(&job.id, "2.b").await.unwrap());
    assert!(
        store
            .record_part(&job.id, "2.b", "u1", &part(3))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .take_transfer(&job.id, "2.b")
            .await
            .unwrap()
            .parts
            .len(),
        3
    );

    // Starting again from zero keeps the owner; the end forgets everything.
    assert!(store.reset_transfer(&job.id, "2.b").await.unwrap());
    let record = store.take_transfer(&job.id, "2.b").await.unwrap();
    assert_eq!(record, Default::default());
    assert!(store.owns_transfer(&job.id, "2.b").await.unwrap());
    assert!(store.end_transfer(&job.id, "2.b").await.unwrap());
    assert!(!store.owns_transfer(&job.id, "2.b").await.unwrap());
    h.cleanup().await;
}
