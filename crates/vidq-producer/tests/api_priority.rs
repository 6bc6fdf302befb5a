//! A job's `priority` through `POST /v1/jobs`: stored and shown, `normal` by default, an
//! invalid one refused with a 422 naming `priority` (nothing written), documented in OpenAPI.

mod support;

use serde_json::{Value, json};
use support::{RW_TOKEN, error_of, spawn_app};

#[tokio::test]
async fn priority_is_stored_defaults_to_normal_and_a_bad_one_is_named() {
    let app = spawn_app().await;
    let body = |priority: Option<&str>, n: u32| {
        let mut b =
            json!({"reference_video_url": format!("https://v.example/{n}.mp4"), "model": 2000});
        if let Some(p) = priority {
            b["priority"] = p.into();
        }
        b
    };
    let bad = serde_json::to_string(&body(Some("urgent"), 0)).unwrap();
    let got = error_of(app.post_raw(&bad, "application/json").await).await;
    assert_eq!(
        got,
        (422, "invalid_field".to_owned(), Some("priority".to_owned()))
    );
    assert_eq!(
        app.keys().await,
        Vec::<String>::new(),
        "nothing written to Redis"
    );

    for (asked, shown, n) in [
        (Some("high"), "high", 1),
        (Some("low"), "low", 2),
        (None, "normal", 3),
    ] {
        let response = app.post_job(RW_TOKEN, &body(asked, n)).await;
        assert_eq!(response.status(), 202);
        let job: Value = response.json().await.unwrap();
        assert_eq!(job["request"]["priority"], shown, "{job}");
        let id: vidq_core::JobId = job["id"].as_str().unwrap().parse().unwrap();
        let stored = app.store.get(&id).await.unwrap().unwrap();
        assert_eq!(stored.request.priority().as_str(), shown);
    }

    let doc: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let create = &doc["components"]["schemas"]["CreateJob"]["properties"]["priority"];
    let text = create.to_string();
    assert!(
        ["high", "normal", "low"].iter().all(|p| text.contains(p)),
        "{create}"
    );
}
