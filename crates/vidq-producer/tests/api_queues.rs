//! Pausing and resuming a queue through `POST /v1/queues/{queue}/pause|resume`, `GET
//! /v1/queues` and `vidq queue pause|resume|status`: a paused `submit` is not claimed while
//! its depth still counts and the other queues are; admin scope only. And `vidq dead purge`.

mod support;

use support::{ADMIN_TOKEN, RW_TOKEN, TestApp, body, error_of, spawn_app};
use vidq_queue::{QueueConfig, RedisQueue};

/// A claimer of `queue` under the app's prefix, as a worker claims (payloads as JSON).
async fn claimer(app: &TestApp, queue: &str) -> RedisQueue<serde_json::Value> {
    let config = QueueConfig::new(queue).with_prefix(app.prefix.clone());
    RedisQueue::connect(&support::redis_url(), config)
        .await
        .unwrap()
}

async fn post(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn queue_state(app: &TestApp, queue: &str) -> serde_json::Value {
    let list: serde_json::Value = app
        .get("/v1/queues", ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    list["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == queue)
        .cloned()
        .unwrap()
}

#[tokio::test]
async fn a_paused_submit_queue_is_not_claimed_until_resumed_and_only_an_admin_pauses() {
    let app = spawn_app().await;
    assert_eq!(app.post_job(RW_TOKEN, &body(1)).await.status(), 202);
    let submit = claimer(&app, "submit").await;
    let poll = claimer(&app, "poll").await;

    let refused = post(&app, "/v1/queues/submit/pause", RW_TOKEN).await;
    assert_eq!(error_of(refused).await.0, 403);
    assert_eq!(error_of(app.get("/v1/queues", RW_TOKEN).await).await.0, 403);
    let unknown = post(&app, "/v1/queues/nosuch/pause", ADMIN_TOKEN).await;
    let (status, _, _) = error_of(unknown).await;
    assert_eq!(status, 404);
    assert_eq!(queue_state(&app, "submit").await["paused"], false);

    let paused = post(&app, "/v1/queues/submit/pause", ADMIN_TOKEN).await;
    assert_eq!(paused.status(), 200);
    let paused: serde_json::Value = paused.json().await.unwrap();
    assert_eq!(
        paused,
        serde_json::json!({"queue": "submit", "paused": true, "changed": true})
    );
    let again: serde_json::Value = post(&app, "/v1/queues/submit/pause", ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["changed"], false);
    // A job created while paused is stored and counted, not claimed.
    assert_eq!(app.post_job(RW_TOKEN, &body(2)).await.status(), 202);
    let state = queue_state(&app, "submit").await;
    assert_eq!(
        (state["paused"].clone(), state["due"].clone()),
        (true.into(), 2.into())
    );
    assert_eq!(queue_state(&app, "poll").await["paused"], false);
    assert!(submit.claim(10).await.unwrap().is_empty());
    poll.enqueue(&serde_json::json!({})).await.unwrap();
    assert_eq!(
        poll.claim(10).await.unwrap().len(),
        1,
        "poll is still claimed"
    );

    let resumed: serde_json::Value = post(&app, "/v1/queues/submit/resume", ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        resumed,
        serde_json::json!({"queue": "submit", "paused": false, "changed": true})
    );
    assert_eq!(submit.claim(10).await.unwrap().len(), 2);

    let doc: serde_json::Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/v1/queues",
        "/v1/queues/{queue}/pause",
        "/v1/queues/{queue}/resume",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
}

#[tokio::test]
async fn vidq_queue_pauses_resumes_and_shows_the_queues() {
    let app = spawn_app().await;
    let vidq = |args: &'static [&'static str]| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_vidq"))
            .args(args)
            .env_remove("VIDQ_CONFIG")
            .env("VIDQ__REDIS__URL", support::redis_url())
            .env("VIDQ__REDIS__PREFIX", &app.prefix)
            .kill_on_drop(true)
            .output()
    };
    let text = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).into_owned();
    let out = vidq(&["queue", "pause", "submit"]).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out), "paused queue submit\n");
    assert_eq!(
        text(&vidq(&["queue", "pause", "submit"]).await.unwrap()),
        "queue submit was already paused\n"
    );
    assert_eq!(app.post_job(RW_TOKEN, &body(1)).await.status(), 202);
    let status = vidq(&["queue", "status"]).await.unwrap();
    assert!(status.status.success(), "{status:?}");
    let status = text(&status);
    assert!(status.contains("submit\tpaused\t1\t0\t0\t0\n"), "{status}");
    assert!(status.contains("poll\trunning\t0\t0\t0\t0\n"), "{status}");
    assert!(
        claimer(&app, "submit")
            .await
            .claim(10)
            .await
            .unwrap()
            .is_empty()
    );

    let bad = vidq(&["queue", "pause", "nosuch"]).await.unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains(r#"unknown queue "nosuch""#), "{stderr}");

    let out = vidq(&["queue", "resume", "submit"]).await.unwrap();
    assert_eq!(text(&out), "resumed queue submit\n");
    let submit = claimer(&app, "submit").await;
    assert_eq!(submit.claim(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn vidq_dead_purge_deletes_one_queues_dead_tasks() {
    let app = spawn_app().await;
    // Dead tasks: one delivery at most, a 100 ms lease, claimed and never settled.
    let bury = |queue: &'static str, n: u32| {
        let prefix = app.prefix.clone();
        async move {
            let mut config = QueueConfig::new(queue)
                .with_prefix(prefix)
                .with_lease(std::time::Duration::from_millis(100));
            config.renew_every = std::time::Duration::from_millis(50);
            config.max_deliveries = 1;
            let q: RedisQueue<u32> = RedisQueue::connect(&support::redis_url(), config)
                .await
                .unwrap();
            q.enqueue_batch(&(0..n).collect::<Vec<_>>()).await.unwrap();
            let _ = q.claim(100).await.unwrap();
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
            while q.depth().await.unwrap().dead < u64::from(n) {
                assert!(tokio::time::Instant::now() < deadline, "{queue} tasks dead");
                let _ = q.claim(100).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    bury("submit", 3).await;
    bury("notify", 2).await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vidq"))
        .args(["dead", "purge", "--queue", "submit"])
        .env_remove("VIDQ_CONFIG")
        .env("VIDQ__REDIS__URL", support::redis_url())
        .env("VIDQ__REDIS__PREFIX", &app.prefix)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "deleted 3 dead tasks of queue submit\n"
    );
    assert_eq!(queue_state(&app, "submit").await["dead"], 0);
    assert_eq!(queue_state(&app, "notify").await["dead"], 2);
}
