//! Per-tenant quotas and the backlog cap through `POST /v1/jobs`, against a real Redis: over a
//! quota is 429 (the backlog cap 503) with `Retry-After` and a JSON body naming the quota, and
//! nothing of the refused job is written, however many requests race.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{B_TOKEN, RW_TOKEN, TENANT_A, body, spawn_with};
use vidq_producer::TenantQuota;

/// The refusal's status, `Retry-After` (seconds), code, quota and limit.
async fn refusal(response: reqwest::Response) -> (u16, u64, String, String, u64) {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: Value = response.json().await.unwrap();
    let error = &body["error"];
    assert!(error["message"].is_string(), "{body}");
    (
        status,
        retry_after,
        error["code"].as_str().unwrap().to_owned(),
        error["quota"].as_str().unwrap().to_owned(),
        error["limit"].as_u64().unwrap(),
    )
}

fn with_quota(unfinished: Option<u64>, daily: Option<u64>) -> vidq_producer::ProducerSettings {
    let mut s = support::settings();
    s.api.quotas.retry_after = Duration::from_secs(7);
    s.api
        .quotas
        .tenants
        .insert(TENANT_A.to_owned(), TenantQuota { unfinished, daily });
    s
}

#[tokio::test]
async fn over_the_unfinished_quota_is_429_naming_it_and_writes_nothing() {
    let app = spawn_with(with_quota(Some(2), None), None).await;
    let mut ids = Vec::new();
    for n in 0..2 {
        let response = app.post_job(RW_TOKEN, &body(n)).await;
        assert_eq!(response.status(), 202);
        let job: Value = response.json().await.unwrap();
        ids.push(job["id"].as_str().unwrap().to_owned());
    }
    let mut before = app.keys().await;
    before.sort();
    // Refused with an Idempotency-Key: the key is not kept either.
    let refused = app
        .http
        .post(app.url("/v1/jobs"))
        .bearer_auth(RW_TOKEN)
        .header("Idempotency-Key", "order-3")
        .json(&body(3))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refusal(refused).await,
        (429, 7, "quota_exceeded".into(), "unfinished_jobs".into(), 2)
    );
    let mut after = app.keys().await;
    after.sort();
    assert_eq!(before, after, "a refused create wrote to Redis");
    assert_eq!(app.store.unfinished_count(Some(TENANT_A)).await.unwrap(), 2);

    // Another tenant has no quota here.
    assert_eq!(app.post_job(B_TOKEN, &body(9)).await.status(), 202);

    // A job that ends gives its place back: the same key now creates the job.
    let canceled = app
        .http
        .delete(app.url(&format!("/v1/jobs/{}", ids[0])))
        .bearer_auth(RW_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(canceled.status(), 200);
    let retried = app
        .http
        .post(app.url("/v1/jobs"))
        .bearer_auth(RW_TOKEN)
        .header("Idempotency-Key", "order-3")
        .json(&body(3))
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), 202);
    assert!(retried.headers().get("idempotent-replayed").is_none());
}

#[tokio::test]
async fn racing_requests_never_pass_the_unfinished_quota() {
    let app = spawn_with(with_quota(Some(3), None), None).await;
    let bodies: Vec<Value> = (0..16).map(body).collect();
    let responses =
        futures::future::join_all(bodies.iter().map(|b| app.post_job(RW_TOKEN, b))).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    let created = statuses.iter().filter(|s| **s == 202).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((created, refused), (3, 13), "{statuses:?}");
    let page = app
        .store
        .list_tenant(TENANT_A, None, None, 100)
        .await
        .unwrap();
    assert_eq!(page.jobs.len(), 3, "only the admitted jobs are stored");
    assert_eq!(app.store.unfinished_count(Some(TENANT_A)).await.unwrap(), 3);
}

#[tokio::test]
async fn over_the_daily_quota_is_429_until_the_next_utc_midnight() {
    let app = spawn_with(with_quota(None, Some(2)), None).await;
    for n in 0..2 {
        assert_eq!(app.post_job(RW_TOKEN, &body(n)).await.status(), 202);
    }
    let (status, retry_after, code, quota, limit) =
        refusal(app.post_job(RW_TOKEN, &body(2)).await).await;
    assert_eq!(
        (status, code.as_str(), quota.as_str(), limit),
        (429, "quota_exceeded", "daily_submissions", 2)
    );
    assert!((1..=86_400).contains(&retry_after), "{retry_after}");
}

#[tokio::test]
async fn the_backlog_cap_answers_503_with_retry_after_for_every_tenant() {
    let mut s = support::settings();
    s.api.quotas.backlog = 2;
    s.api.quotas.retry_after = Duration::from_secs(11);
    let app = spawn_with(s, None).await;
    assert_eq!(app.post_job(RW_TOKEN, &body(0)).await.status(), 202);
    assert_eq!(app.post_job(B_TOKEN, &body(1)).await.status(), 202);
    let before = app.keys().await.len();
    assert_eq!(
        refusal(app.post_job(RW_TOKEN, &body(2)).await).await,
        (503, 11, "backlog_full".into(), "backlog".into(), 2)
    );
    assert_eq!(refusal(app.post_job(B_TOKEN, &body(3)).await).await.0, 503);
    assert_eq!(
        app.keys().await.len(),
        before,
        "a refused create wrote to Redis"
    );
}
