//! `POST /v1/jobs:batch` against a real Redis: each job validated on its own with a result of
//! its own, the valid ones created together (one script call), quotas applied job by job, and
//! a malformed batch refused whole with nothing written.

mod support;

use serde_json::{Value, json};
use support::{RW_TOKEN, TENANT_A, body, error_of, spawn_app, spawn_with};
use vidq_core::{JobId, JobState};
use vidq_producer::TenantQuota;

async fn post_batch(app: &support::TestApp, batch: &Value) -> reqwest::Response {
    app.http
        .post(app.url("/v1/jobs:batch"))
        .bearer_auth(RW_TOKEN)
        .json(batch)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_batch_with_an_invalid_job_names_each_and_creates_none() {
    let app = spawn_app().await;
    let mut bad_model = body(2);
    bad_model["model"] = json!("not a number");
    let mut unknown = body(4);
    unknown["colour"] = json!("red");
    let batch = json!({"jobs": [body(1), bad_model, body(3), unknown]});
    let response = post_batch(&app, &batch).await;
    assert_eq!(response.status(), 422);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["error"]["field"], "jobs[1].model", "{reply}");
    let results = reply["results"].as_array().unwrap();
    let named: Vec<(u64, u64, &str)> = results
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["status"].as_u64().unwrap(),
                r["error"]["field"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        named,
        [(1, 422, "jobs[1].model"), (3, 422, "jobs[3].colour")]
    );
    assert!(app.keys().await.is_empty(), "{:?}", app.keys().await);
}

#[tokio::test]
async fn a_valid_batch_creates_every_job_with_a_result_each() {
    let app = spawn_app().await;
    let response = post_batch(&app, &json!({"jobs": [body(1), body(2), body(3)]})).await;
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["created"], 3, "{reply}");
    let results = reply["results"].as_array().unwrap();
    for (index, item) in results.iter().enumerate() {
        assert_eq!(
            (item["index"].as_u64(), item["status"].as_u64()),
            (Some(index as u64), Some(202))
        );
        let id: JobId = item["job"]["id"].as_str().unwrap().parse().unwrap();
        let job = app.store.get(&id).await.unwrap().expect("stored");
        assert_eq!(job.state, JobState::Queued);
        assert_eq!(job.owner.as_deref(), Some(TENANT_A));
        assert_eq!(job.request.metadata()["n"], (index + 1).to_string());
        let read = app.get(&format!("/v1/jobs/{id}"), RW_TOKEN).await;
        assert_eq!(read.status(), 200);
    }
    let page = app
        .store
        .list_tenant(TENANT_A, None, None, 100)
        .await
        .unwrap();
    assert_eq!(page.jobs.len(), 3);
    // Each created job's submit step is queued, like a single enqueue's.
    let keys = app.keys().await;
    assert!(keys.iter().any(|k| k.contains("submit")), "{keys:?}");
}

#[tokio::test]
async fn a_batch_over_the_quota_takes_what_fits_in_order() {
    let mut s = support::settings();
    s.api.quotas.tenants.insert(
        TENANT_A.to_owned(),
        TenantQuota {
            unfinished: Some(2),
            daily: None,
        },
    );
    let app = spawn_with(s, None).await;
    let jobs: Vec<Value> = (0..5).map(body).collect();
    let response = post_batch(&app, &json!({ "jobs": jobs })).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["retry-after"], "30");
    let reply: Value = response.json().await.unwrap();
    let results = reply["results"].as_array().unwrap();
    let statuses: Vec<u64> = results
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [202, 202, 429, 429, 429], "{reply}");
    assert_eq!(results[4]["error"]["code"], "quota_exceeded");
    assert_eq!(results[4]["error"]["quota"], "unfinished_jobs");
    assert_eq!(results[4]["error"]["limit"], 2);
    let page = app
        .store
        .list_tenant(TENANT_A, None, None, 100)
        .await
        .unwrap();
    assert_eq!(page.jobs.len(), 2, "refused jobs are not written");
}

#[tokio::test]
async fn a_malformed_batch_is_refused_whole_and_writes_nothing() {
    let mut s = support::settings();
    s.api.limits.batch_max = 3;
    let app = spawn_with(s, None).await;
    let cases = [
        (json!({"jobs": []}), 422, "invalid_field", Some("jobs")),
        (
            json!({"jobs": [body(1), body(2), body(3), body(4)]}),
            422,
            "invalid_field",
            Some("jobs"),
        ),
        (
            json!({"jobs": [body(1)], "more": 1}),
            422,
            "unknown_field",
            Some("more"),
        ),
        (json!([body(1)]), 422, "invalid_field", Some("body")),
        (json!({"jobs": body(1)}), 422, "invalid_field", Some("jobs")),
    ];
    for (batch, status, code, field) in cases {
        let got = error_of(post_batch(&app, &batch).await).await;
        assert_eq!(
            (got.0, got.1.as_str(), got.2.as_deref()),
            (status, code, field),
            "{batch}"
        );
    }
    let not_json = app
        .http
        .post(app.url("/v1/jobs:batch"))
        .bearer_auth(RW_TOKEN)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 415);
    let broken = app
        .http
        .post(app.url("/v1/jobs:batch"))
        .bearer_auth(RW_TOKEN)
        .header("content-type", "application/json")
        .body("{\"jobs\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);
    let anonymous = app
        .http
        .post(app.url("/v1/jobs:batch"))
        .json(&json!({"jobs": [body(1)]}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(app.keys().await.is_empty(), "{:?}", app.keys().await);
}

#[tokio::test]
async fn the_batch_route_is_in_the_openapi_document() {
    let app = spawn_app().await;
    let doc: Value = app
        .get("/openapi.json", RW_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    let post = &doc["paths"]["/v1/jobs:batch"]["post"];
    assert!(post["requestBody"].is_object(), "{post}");
    assert!(post["responses"]["200"].is_object(), "{post}");
    assert!(doc["components"]["schemas"]["BatchResponse"].is_object());
}
