//! `/v1/jobs` end to end against a real Redis: enqueue, read, list, cancel, bad input,
//! idempotency, reuse, events, metrics and the OpenAPI document.

mod support;

use std::time::Duration;

use futures::StreamExt as _;
use serde_json::{Value, json};
use support::{RW_TOKEN, body, error_of, spawn_app};
use vidq_core::{JobId, JobState, Output, Patch};

async fn create(app: &support::TestApp, body: &Value) -> Value {
    let response = app.post_job(RW_TOKEN, body).await;
    assert_eq!(response.status(), 202);
    response.json().await.unwrap()
}

fn id_of(job: &Value) -> JobId {
    job["id"].as_str().unwrap().parse().unwrap()
}

/// Walks a job to `succeeded` the way the worker would, with a stored video.
async fn succeed(app: &support::TestApp, id: &JobId) -> Output {
    let output = Output {
        bucket: "videos".into(),
        key: format!("videos/{id}.mp4"),
        bytes: 1234,
        sha256: "ab".repeat(32),
        content_type: "video/mp4".into(),
    };
    let steps = [
        (JobState::Queued, JobState::Submitting, Patch::new()),
        (
            JobState::Submitting,
            JobState::Processing,
            Patch::new().img_uuid("up-1"),
        ),
        (JobState::Processing, JobState::Transferring, Patch::new()),
        (
            JobState::Transferring,
            JobState::Succeeded,
            Patch::new().output(output.clone()),
        ),
    ];
    for (from, to, patch) in steps {
        app.store.transition(id, &[from], to, patch).await.unwrap();
    }
    output
}

#[tokio::test]
async fn enqueue_then_read_the_job() {
    let app = spawn_app().await;
    let response = app.post_job(RW_TOKEN, &body(1)).await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let job: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/v1/jobs/{}", job["id"].as_str().unwrap())
    );
    assert_eq!(job["state"], "queued");
    assert_eq!(job["request"]["model"], 2000);
    assert_eq!(job["request"]["resolution"], "720p");
    assert_eq!(job["upstream"]["status"], "not_submitted");

    let read: Value = app.get(&location, RW_TOKEN).await.json().await.unwrap();
    assert_eq!(read["id"], job["id"]);
    let stored = app
        .store
        .get(&id_of(&job))
        .await
        .unwrap()
        .expect("job stored");
    assert_eq!(stored.state, JobState::Queued);
    let keys = app.keys().await;
    assert!(
        keys.iter().any(|k| k.contains("submit")),
        "first task pushed: {keys:?}"
    );

    // History with times, upstream status, output.
    succeed(&app, &id_of(&job)).await;
    let read: Value = app.get(&location, RW_TOKEN).await.json().await.unwrap();
    assert_eq!(read["state"], "succeeded");
    assert_eq!(read["upstream"]["img_uuid"], "up-1");
    assert_eq!(read["upstream"]["status"], "success");
    assert_eq!(read["output"]["bytes"], 1234);
    let history = read["history"].as_array().unwrap();
    assert_eq!(history.len(), 4);
    assert!(
        history
            .iter()
            .all(|t| t["at_ms"].as_u64().unwrap() >= read["created_at"].as_u64().unwrap())
    );

    let missing = app
        .get(&format!("/v1/jobs/{}", JobId::new()), RW_TOKEN)
        .await;
    assert_eq!(error_of(missing).await.0, 404);
    let malformed = app.get("/v1/jobs/not-a-job", RW_TOKEN).await;
    assert_eq!(error_of(malformed).await, (404, "not_found".into(), None));
}

#[tokio::test]
async fn bad_input_gets_a_4xx_naming_the_field_and_writes_nothing() {
    let app = spawn_app().await;
    let json = "application/json";
    let cases: Vec<(String, &str, u16, &str, Option<&str>)> = vec![
        ("{\"model\": ".into(), json, 400, "invalid_json", Some("body")),
        ("not json".into(), json, 400, "invalid_json", Some("body")),
        (r#"[1, 2]"#.into(), json, 422, "invalid_field", Some("body")),
        (r#"{"reference_video_url": "https://v.example/a.mp4", "model": "2000"}"#.into(), json, 422, "invalid_field", Some("model")),
        (r#"{"reference_video_url": "https://v.example/a.mp4", "model": 2000, "duration": 99}"#.into(), json, 422, "invalid_field", Some("duration")),
        (r#"{"reference_video_url": "https://v.example/a.mp4", "model": 2000, "colour": "red"}"#.into(), json, 422, "unknown_field", Some("colour")),
        (r#"{"reference_video_url": "http://v.example/a.mp4", "model": 2000}"#.into(), json, 422, "invalid_field", Some("reference_video_url")),
        (r#"{"reference_video_url": "not a url", "model": 2000}"#.into(), json, 422, "invalid_field", Some("reference_video_url")),
        (r#"{"reference_video_url": "https://v.example/a.mp4", "model": 2000, "callback_url": "ftp://x"}"#.into(), json, 422, "invalid_field", Some("callback_url")),
        (r#"{"reference_video_url": "https://v.example/a.mp4", "model": 2000, "metadata": {"team": 7}}"#.into(), json, 422, "invalid_field", Some("metadata.team")),
        (r#"{"model": 2000}"#.into(), json, 422, "invalid_field", Some("reference_video_url")),
        (format!(r#"{{"reference_video_url": "https://v.example/a.mp4", "model": 2000, "prompt": "{}"}}"#, "x".repeat(5000)), json, 413, "payload_too_large", Some("body")),
        (serde_json::to_string(&body(1)).unwrap(), "text/plain", 415, "unsupported_media_type", Some("Content-Type")),
    ];
    for (text, content_type, status, code, field) in cases {
        let got = error_of(app.post_raw(&text, content_type).await).await;
        assert_eq!(
            got,
            (status, code.to_owned(), field.map(str::to_owned)),
            "body {:.80}",
            text
        );
    }
    let bad_key = app
        .http
        .post(app.url("/v1/jobs"))
        .bearer_auth(RW_TOKEN)
        .header("idempotency-key", "x".repeat(300))
        .json(&body(1))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(bad_key).await.2.as_deref(),
        Some("Idempotency-Key")
    );
    assert_eq!(
        app.keys().await,
        Vec::<String>::new(),
        "nothing written to Redis"
    );
}

#[tokio::test]
async fn idempotency_key_returns_the_same_job_and_refuses_another_body() {
    let app = spawn_app().await;
    let send = |body: Value, key: &'static str| {
        app.http
            .post(app.url("/v1/jobs"))
            .bearer_auth(RW_TOKEN)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let first = send(body(1), "order-42").await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    // Same body, different key order and explicit defaults: the same request.
    let mut same = body(1);
    same["seed"] = json!(-1);
    let again = send(same, "order-42").await.unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);

    let other = send(body(2), "order-42").await.unwrap();
    assert_eq!(
        error_of(other).await,
        (
            422,
            "idempotency_conflict".into(),
            Some("Idempotency-Key".into())
        )
    );
    let page = app.store.list(None, None, 100).await.unwrap();
    assert_eq!(page.jobs.len(), 1, "one job for one key");
    assert!(
        app.metrics()
            .await
            .contains("vidq_api_idempotent_replays_total 1")
    );
}

#[tokio::test]
async fn identical_work_is_reused_or_followed() {
    let app = spawn_app().await;
    let mut request = body(1);
    request["metadata"] = json!({});
    let source = create(&app, &request).await;

    // In flight: the same job comes back, to follow.
    let followed = create(&app, &request).await;
    assert_eq!(followed["id"], source["id"]);

    // Succeeded: a new job, succeeded at once with the same video.
    let output = succeed(&app, &id_of(&source)).await;
    let mut labelled = request.clone();
    labelled["metadata"] = json!({"caller": "other"}); // labels are not upstream args
    let reused = create(&app, &labelled).await;
    assert_ne!(reused["id"], source["id"]);
    assert_eq!(reused["state"], "succeeded");
    assert_eq!(reused["output"]["key"], output.key.as_str());
    let note = format!("reused {}", source["id"].as_str().unwrap());
    assert_eq!(reused["history"][0]["note"], note.as_str());
    assert_eq!(reused["request"]["metadata"]["caller"], "other");
    let stored = app.store.get(&id_of(&reused)).await.unwrap().unwrap();
    assert_eq!(stored.output, Some(output));
    assert!(stored.img_uuid.is_none(), "no upstream call");

    // Opting out: a fresh queued job.
    let mut opt_out = request.clone();
    opt_out["reuse"] = json!(false);
    let fresh = create(&app, &opt_out).await;
    assert_eq!(fresh["state"], "queued");
    assert_ne!(fresh["id"], source["id"]);

    // A failed source is not reused.
    let other = create(&app, &body(7)).await;
    app.store
        .transition(
            &id_of(&other),
            &[JobState::Queued],
            JobState::Failed,
            Patch::new().error("boom"),
        )
        .await
        .unwrap();
    let retried = create(&app, &body(7)).await;
    assert_ne!(retried["id"], other["id"]);
    assert_eq!(retried["state"], "queued");

    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"vidq_api_reuse_total{outcome="followed"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"vidq_api_reuse_total{outcome="reused"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn list_filters_by_state_and_metadata_with_a_cursor() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for (n, team) in [(1, "a"), (2, "b"), (3, "a")] {
        let mut request = body(n);
        request["metadata"] = json!({"team": team});
        ids.push(id_of(&create(&app, &request).await));
    }
    app.store
        .transition(
            &ids[1],
            &[JobState::Queued],
            JobState::Canceled,
            Patch::new(),
        )
        .await
        .unwrap();

    let list = |query: String| {
        let app = &app;
        async move {
            let response = app.get(&format!("/v1/jobs?{query}"), RW_TOKEN).await;
            assert_eq!(response.status(), 200, "{query}");
            response.json::<Value>().await.unwrap()
        }
    };
    let all = list(String::new()).await;
    let listed: Vec<&str> = all["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    let newest_first: Vec<String> = ids.iter().rev().map(ToString::to_string).collect();
    assert_eq!(listed, newest_first);

    let canceled = list("state=canceled".into()).await;
    assert_eq!(canceled["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(canceled["jobs"][0]["id"], ids[1].to_string().as_str());

    let team_a = list("metadata=team:a".into()).await;
    assert_eq!(team_a["jobs"].as_array().unwrap().len(), 2);

    // Pages of one, following the cursor, see every job once.
    let mut seen = Vec::new();
    let mut query = "limit=1".to_owned();
    loop {
        let page = list(query.clone()).await;
        for job in page["jobs"].as_array().unwrap() {
            seen.push(job["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=1&cursor={cursor}"),
            None => break,
        }
        assert!(seen.len() <= 3, "the cursor loops");
    }
    assert_eq!(seen, newest_first);

    for (query, field) in [
        ("state=done", "state"),
        ("limit=0", "limit"),
        ("cursor=xyz", "cursor"),
        ("metadata=nocolon", "metadata"),
    ] {
        let response = app.get(&format!("/v1/jobs?{query}"), RW_TOKEN).await;
        assert_eq!(
            error_of(response).await,
            (422, "invalid_field".into(), Some(field.into()))
        );
    }
}

#[tokio::test]
async fn cancel_stops_an_unfinished_job_only() {
    let app = spawn_app().await;
    let delete = |path: String| app.http.delete(app.url(&path)).bearer_auth(RW_TOKEN).send();
    let job = create(&app, &body(1)).await;
    let path = format!("/v1/jobs/{}", job["id"].as_str().unwrap());
    let canceled = delete(path.clone()).await.unwrap();
    assert_eq!(canceled.status(), 200);
    let canceled: Value = canceled.json().await.unwrap();
    assert_eq!(canceled["state"], "canceled");
    assert_eq!(
        app.store.get(&id_of(&job)).await.unwrap().unwrap().state,
        JobState::Canceled
    );
    assert_eq!(
        delete(path).await.unwrap().status(),
        200,
        "canceling twice is fine"
    );

    let done = create(&app, &body(2)).await;
    succeed(&app, &id_of(&done)).await;
    let refused = delete(format!("/v1/jobs/{}", done["id"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(error_of(refused).await.0, 409);
    assert_eq!(
        error_of(delete(format!("/v1/jobs/{}", JobId::new())).await.unwrap())
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn events_stream_the_transitions_until_a_terminal_state() {
    let app = spawn_app().await;
    let job = create(&app, &body(1)).await;
    let id = id_of(&job);
    let response = app.get(&format!("/v1/jobs/{id}/events"), RW_TOKEN).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut stream = response.bytes_stream();
    let mut text = String::new();
    let mut states = Vec::new();
    let mut moved = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("the stream ends before the deadline");
        let Some(chunk) = chunk else { break };
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                let data: Value = serde_json::from_str(data).unwrap();
                assert_eq!(data["id"], id.to_string().as_str());
                states.push(data["state"].as_str().unwrap().to_owned());
            }
        }
        if states.len() == 1 && !moved {
            moved = true;
            let store = app.store.clone();
            store
                .transition(&id, &[JobState::Queued], JobState::Submitting, Patch::new())
                .await
                .unwrap();
            store
                .transition(
                    &id,
                    &[JobState::Submitting],
                    JobState::Processing,
                    Patch::new(),
                )
                .await
                .unwrap();
            store
                .transition(
                    &id,
                    &[JobState::Processing],
                    JobState::Canceled,
                    Patch::new().note("canceled"),
                )
                .await
                .unwrap();
        }
    }
    // Transitions made between two polls are all reported, from the history.
    assert_eq!(states, ["queued", "submitting", "processing", "canceled"]);
}

#[tokio::test]
async fn health_metrics_and_openapi() {
    let app = spawn_app().await;
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    create(&app, &body(1)).await;
    let metrics = app.metrics().await;
    assert!(
        metrics
            .contains(r#"vidq_api_requests_total{method="POST",route="/v1/jobs",status="202"} 1"#),
        "{metrics}"
    );
    let doc: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/video",
        "/v1/jobs/{id}/events",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    let post = &doc["paths"]["/v1/jobs"]["post"]["responses"];
    for status in ["202", "400", "401", "403", "413", "415", "422", "429"] {
        assert!(post[status].is_object(), "POST /v1/jobs documents {status}");
    }
    assert!(doc["paths"]["/v1/jobs/{id}/video"]["get"]["responses"]["409"].is_object());
    let unknown = app.http.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(error_of(unknown).await.0, 404);
}

#[tokio::test]
async fn identical_requests_at_the_same_instant_make_one_job() {
    let app = spawn_app().await;
    let request = body(7);
    let posts = (0..8).map(|_| create(&app, &request));
    let jobs = futures::future::join_all(posts).await;
    let mut ids: Vec<String> = jobs.iter().map(|j| j["id"].to_string()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        1,
        "eight identical requests made {} jobs",
        ids.len()
    );
    let queued = app.store.get(&id_of(&jobs[0])).await.unwrap().unwrap();
    assert_eq!(queued.state, vidq_core::JobState::Queued);
}
