//! Bearer tokens, scopes and the per-token rate limit.

mod support;

use support::{READ_TOKEN, RW_TOKEN, WRITE_TOKEN, body, error_of, settings, spawn_app, spawn_with};
use vidq_core::JobId;

#[tokio::test]
async fn tokens_and_scopes_are_checked_and_refusals_write_nothing() {
    let app = spawn_app().await;
    let anonymous = app
        .http
        .post(app.url("/v1/jobs"))
        .json(&body(1))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    assert_eq!(error_of(anonymous).await.1, "unauthorized");

    let wrong = app
        .post_job("test-token-read-write-012345678", &body(1))
        .await;
    assert_eq!(error_of(wrong).await.0, 401);
    let basic = app
        .http
        .get(app.url("/v1/jobs"))
        .header("authorization", format!("Basic {RW_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(basic).await.0, 401);

    let reader_writes = app.post_job(READ_TOKEN, &body(1)).await;
    assert_eq!(
        error_of(reader_writes).await,
        (403, "forbidden".into(), None)
    );
    let writer_reads = app.get("/v1/jobs", WRITE_TOKEN).await;
    assert_eq!(error_of(writer_reads).await.0, 403);
    let reader_cancels = app
        .http
        .delete(app.url(&format!("/v1/jobs/{}", JobId::new())))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(reader_cancels).await.0, 403);
    assert!(
        app.keys().await.is_empty(),
        "nothing written for refused requests"
    );

    // Each scope does what it allows.
    let created = app.post_job(WRITE_TOKEN, &body(1)).await;
    assert_eq!(created.status(), 202);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(app.get(&location, READ_TOKEN).await.status(), 200);
    for open in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert_eq!(
            app.http.get(app.url(open)).send().await.unwrap().status(),
            200,
            "{open}"
        );
    }
}

#[tokio::test]
async fn each_token_is_rate_limited_on_its_own() {
    let mut s = settings();
    s.api.rate_per_second = 0.2; // one request every 5 s once the burst is spent
    s.api.rate_burst = 3;
    let app = spawn_with(s, None).await;
    for _ in 0..3 {
        assert_eq!(app.get("/v1/jobs", RW_TOKEN).await.status(), 200);
    }
    let limited = app.get("/v1/jobs", RW_TOKEN).await;
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(error_of(limited).await, (429, "rate_limited".into(), None));
    assert_eq!(
        app.get("/v1/jobs", READ_TOKEN).await.status(),
        200,
        "another token is not limited"
    );
    let metrics = app.metrics().await;
    assert!(metrics.contains(r#"status="429"} 1"#), "{metrics}");
}
