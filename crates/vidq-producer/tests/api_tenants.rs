//! Tenants: each token's name owns the jobs it creates. Another tenant's job is 404 on every
//! route, lists show the caller's jobs only, idempotency keys and reuse stay within a tenant,
//! and an admin token sees and acts on every tenant's jobs.

mod support;

use std::time::Duration;

use redis::AsyncCommands as _;
use serde_json::{Value, json};
use support::{
    ADMIN_TOKEN, B_TOKEN, RW_TOKEN, TENANT_A, TENANT_B, TestApp, body, settings, spawn_app,
    spawn_with,
};
use vidq_core::{JobId, JobRecord, JobState, Output, Patch, TransformRequest};

async fn create(app: &TestApp, token: &str, body: &Value) -> Value {
    let response = app.post_job(token, body).await;
    assert_eq!(response.status(), 202);
    response.json().await.unwrap()
}

fn id_of(job: &Value) -> JobId {
    job["id"].as_str().unwrap().parse().unwrap()
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
) -> reqwest::Response {
    app.http
        .request(method, app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// The (status, body) of a response.
async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Walks a job to `succeeded` the way the worker would, with a stored video.
async fn succeed(app: &TestApp, id: &JobId) -> Output {
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

async fn list_ids(app: &TestApp, query: &str, token: &str) -> Vec<String> {
    let response = app.get(&format!("/v1/jobs?limit=100{query}"), token).await;
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.unwrap();
    let mut ids: Vec<String> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

fn sorted(ids: &[&Value]) -> Vec<String> {
    let mut ids: Vec<String> = ids
        .iter()
        .map(|job| job["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn every_route_answers_another_tenants_job_as_missing() {
    let app = spawn_app().await;
    let job = create(&app, RW_TOKEN, &body(1)).await;
    assert_eq!(job["tenant"], TENANT_A);
    let id = id_of(&job);
    let stored = app.store.get(&id).await.unwrap().unwrap();
    assert_eq!(stored.owner.as_deref(), Some(TENANT_A));

    let missing = JobId::new();
    for (method, suffix) in [
        (reqwest::Method::GET, ""),
        (reqwest::Method::DELETE, ""),
        (reqwest::Method::GET, "/video"),
        (reqwest::Method::GET, "/events"),
    ] {
        let (status, theirs) = answer(
            send(
                &app,
                method.clone(),
                &format!("/v1/jobs/{id}{suffix}"),
                B_TOKEN,
            )
            .await,
        )
        .await;
        let (_, absent) = answer(
            send(
                &app,
                method.clone(),
                &format!("/v1/jobs/{missing}{suffix}"),
                B_TOKEN,
            )
            .await,
        )
        .await;
        assert_eq!(status, 404, "{method} {suffix}: {theirs}");
        // The same body as a job that does not exist (but for the id it names).
        let absent = absent
            .to_string()
            .replace(&missing.to_string(), &id.to_string());
        assert_eq!(theirs.to_string(), absent, "{method} {suffix}");
    }
    // B's DELETE changed nothing; A still reads its job.
    let (status, mine) = answer(app.get(&format!("/v1/jobs/{id}"), RW_TOKEN).await).await;
    assert_eq!(status, 200);
    assert_eq!(mine["state"], "queued");

    // A record stored before jobs had owners is an admin's only.
    let legacy = JobRecord::new(
        TransformRequest::new("https://videos.example.com/legacy.mp4", 2000).unwrap(),
        Duration::from_secs(600),
    );
    app.store.create(&legacy).await.unwrap();
    let path = format!("/v1/jobs/{}", legacy.id);
    assert_eq!(app.get(&path, RW_TOKEN).await.status(), 404);
    let (status, seen) = answer(app.get(&path, ADMIN_TOKEN).await).await;
    assert_eq!(status, 200);
    assert_eq!(seen["tenant"], Value::Null);
}

#[tokio::test]
async fn each_tenant_lists_only_its_own_jobs_through_its_index() {
    let app = spawn_app().await;
    let a1 = create(&app, RW_TOKEN, &body(1)).await;
    let a2 = create(&app, RW_TOKEN, &body(2)).await;
    let b1 = create(&app, B_TOKEN, &body(3)).await;

    assert_eq!(list_ids(&app, "", B_TOKEN).await, sorted(&[&b1]));
    assert_eq!(list_ids(&app, "", RW_TOKEN).await, sorted(&[&a1, &a2]));
    // A tenant's token asking for another tenant gets nothing of it.
    let asked = format!("&tenant={TENANT_A}");
    assert!(list_ids(&app, &asked, B_TOKEN).await.is_empty());
    let own = format!("&tenant={TENANT_B}");
    assert_eq!(list_ids(&app, &own, B_TOKEN).await, sorted(&[&b1]));
    let bad = app.get("/v1/jobs?tenant=%C3%97", B_TOKEN).await;
    assert_eq!(support::error_of(bad).await.0, 422);
    // With a state filter too.
    assert_eq!(
        list_ids(&app, "&state=queued", B_TOKEN).await,
        sorted(&[&b1])
    );

    // An admin lists everyone's, or one tenant's.
    assert_eq!(
        list_ids(&app, "", ADMIN_TOKEN).await,
        sorted(&[&a1, &a2, &b1])
    );
    let only_b = format!("&tenant={TENANT_B}");
    assert_eq!(list_ids(&app, &only_b, ADMIN_TOKEN).await, sorted(&[&b1]));
    let bad = app.get("/v1/jobs?tenant=a:b", ADMIN_TOKEN).await;
    assert_eq!(support::error_of(bad).await.0, 422);

    // Each tenant has its own index next to `{jobs}:all`, written at create.
    let mut conn = app.redis.clone();
    let a_index: usize = conn
        .zcard(format!("{}:{{jobs}}:tenant:{TENANT_A}", app.prefix))
        .await
        .unwrap();
    let b_index: usize = conn
        .zcard(format!("{}:{{jobs}}:tenant:{TENANT_B}", app.prefix))
        .await
        .unwrap();
    assert_eq!((a_index, b_index), (2, 1));
}

#[tokio::test]
async fn the_same_idempotency_key_of_two_tenants_makes_two_jobs() {
    let app = spawn_app().await;
    let post = |token: &'static str| {
        app.http
            .post(app.url("/v1/jobs"))
            .bearer_auth(token)
            .header("idempotency-key", "order-42")
            .json(&body(1))
            .send()
    };
    let a = post(RW_TOKEN).await.unwrap();
    assert_eq!(a.status(), 202);
    let a: Value = a.json().await.unwrap();
    let b = post(B_TOKEN).await.unwrap();
    assert_eq!(b.status(), 202);
    assert!(b.headers().get("idempotent-replayed").is_none());
    let b: Value = b.json().await.unwrap();
    assert_ne!(a["id"], b["id"], "B's order-42 is not A's");
    assert_eq!(b["tenant"], TENANT_B);

    // Each replay returns the tenant's own job.
    for (token, job) in [(RW_TOKEN, &a), (B_TOKEN, &b)] {
        let replay = post(token).await.unwrap();
        assert_eq!(replay.headers()["idempotent-replayed"], "true");
        let replay: Value = replay.json().await.unwrap();
        assert_eq!(replay["id"], job["id"]);
    }
}

#[tokio::test]
async fn reuse_stays_within_a_tenant_by_default() {
    let app = spawn_app().await;
    let mut request = body(5);
    request["metadata"] = json!({});

    // In flight: B does not follow A's job.
    let a = create(&app, RW_TOKEN, &request).await;
    let b = create(&app, B_TOKEN, &request).await;
    assert_ne!(a["id"], b["id"]);
    assert_eq!(b["state"], "queued");
    assert_eq!(create(&app, RW_TOKEN, &request).await["id"], a["id"]);

    // Succeeded: A's video is reused for A, not for B.
    let output = succeed(&app, &id_of(&a)).await;
    let a_again = create(&app, RW_TOKEN, &request).await;
    assert_eq!(a_again["state"], "succeeded");
    assert_eq!(a_again["output"]["key"], output.key.as_str());
    let b_again = create(&app, B_TOKEN, &request).await;
    assert_eq!(b_again["id"], b["id"], "B follows its own job in flight");
    assert_eq!(b_again["state"], "queued");
}

#[tokio::test]
async fn reuse_across_tenants_copies_a_result_and_never_follows() {
    let mut s = settings();
    s.api.reuse_across_tenants = true;
    let app = spawn_with(s, None).await;
    let mut request = body(7);
    request["metadata"] = json!({});

    // In flight: B gets a job of its own, not A's.
    let a = create(&app, RW_TOKEN, &request).await;
    let b = create(&app, B_TOKEN, &request).await;
    assert_ne!(a["id"], b["id"]);
    assert_eq!(b["state"], "queued");
    assert_eq!(b["tenant"], TENANT_B);

    // Succeeded: B's stored video is copied into a new job of A's own.
    let output = succeed(&app, &id_of(&b)).await;
    let copied = create(&app, RW_TOKEN, &request).await;
    assert_ne!(copied["id"], a["id"]);
    assert_ne!(copied["id"], b["id"]);
    assert_eq!(copied["state"], "succeeded");
    assert_eq!(copied["tenant"], TENANT_A);
    assert_eq!(copied["output"]["key"], output.key.as_str());
    let stored = app.store.get(&id_of(&copied)).await.unwrap().unwrap();
    assert_eq!(stored.owner.as_deref(), Some(TENANT_A));
    // B's job stays B's.
    let path = format!("/v1/jobs/{}", b["id"].as_str().unwrap());
    assert_eq!(app.get(&path, RW_TOKEN).await.status(), 404);
}

#[tokio::test]
async fn an_admin_sees_and_cancels_every_tenants_jobs() {
    let app = spawn_app().await;
    let a = create(&app, RW_TOKEN, &body(1)).await;
    let b = create(&app, B_TOKEN, &body(2)).await;
    for job in [&a, &b] {
        let path = format!("/v1/jobs/{}", job["id"].as_str().unwrap());
        let (status, seen) = answer(app.get(&path, ADMIN_TOKEN).await).await;
        assert_eq!(status, 200);
        assert_eq!(seen["tenant"], job["tenant"]);
        let (status, canceled) =
            answer(send(&app, reqwest::Method::DELETE, &path, ADMIN_TOKEN).await).await;
        assert_eq!(status, 200, "{canceled}");
        assert_eq!(canceled["state"], "canceled");
    }
    // Each tenant sees its own job canceled.
    let path = format!("/v1/jobs/{}", b["id"].as_str().unwrap());
    let (_, seen) = answer(app.get(&path, B_TOKEN).await).await;
    assert_eq!(seen["state"], "canceled");
}

#[tokio::test]
async fn the_cli_enqueues_for_a_tenant() {
    let app = spawn_app().await;
    let enqueue = |tenant: &str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_vidq"))
            .args(["enqueue", "--url", "https://videos.example.com/cli.mp4"])
            .args(["--model", "2000", "--tenant", tenant])
            .env_remove("VIDQ_CONFIG")
            .env("VIDQ__REDIS__URL", support::redis_url())
            .env("VIDQ__REDIS__PREFIX", &app.prefix)
            .kill_on_drop(true)
            .output()
    };
    let done = enqueue(TENANT_B).await.unwrap();
    assert!(done.status.success(), "{done:?}");
    let id = String::from_utf8(done.stdout).unwrap().trim().to_owned();
    assert_eq!(list_ids(&app, "", B_TOKEN).await, vec![id.clone()]);
    assert!(list_ids(&app, "", RW_TOKEN).await.is_empty());

    let refused = enqueue("not:a-tenant").await.unwrap();
    assert!(!refused.status.success());
    assert_eq!(list_ids(&app, "", ADMIN_TOKEN).await, vec![id]);
}
