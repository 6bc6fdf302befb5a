//! The simulated API over real HTTP: auth, validation, job life, credits, limits, stats.

mod common;

use std::time::Duration;

use common::{KEY, generate_body, quick_config, start};
use serde_json::json;
use vidq_sim::{SimConfig, Stats};

#[tokio::test]
async fn missing_or_wrong_key_is_401_on_every_endpoint() {
    let h = start(quick_config()).await;
    let paths = [
        ("POST", "/api/v1/video2video/generate"),
        ("GET", "/api/v1/jobs/detail?img_uuid=x"),
        ("GET", "/api/v1/user/tokens"),
        ("GET", "/api/v1/video2video/modellist"),
    ];
    for (method, path) in paths {
        for key in [None, Some("wrong-key"), Some("sim-key-but-longer")] {
            let mut request = match method {
                "POST" => h
                    .http
                    .post(h.url(path))
                    .json(&generate_body("https://x/a.mp4")),
                _ => h.http.get(h.url(path)),
            };
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{method} {path} key {key:?}");
            let envelope: serde_json::Value = response.json().await.unwrap();
            assert_eq!(envelope["code"], 401);
            assert!(envelope["data"].is_null());
            assert!(!envelope["msg"].as_str().unwrap().contains(KEY));
        }
    }
    let stats = h.sim.stats();
    assert_eq!(stats.rejected.unauthorized, 12);
    assert!(stats.jobs.is_empty(), "nothing accepted without a key");
}

#[tokio::test]
async fn validation_refusals_name_the_field() {
    let h = start(quick_config()).await;
    let cases = [
        (
            json!({"type": "other", "args": {"reference_video_url": "https://x/a.mp4", "model": 1}}),
            "type",
        ),
        (
            json!({"type": "mx-v2v", "args": {"model": 2000}}),
            "reference_video_url",
        ),
        (
            json!({"type": "mx-v2v", "args": {"reference_video_url": "not a url", "model": 2000}}),
            "reference_video_url",
        ),
        (
            json!({"type": "mx-v2v", "args": {"reference_video_url": "https://x/a.mp4"}}),
            "model",
        ),
        (
            json!({"type": "mx-v2v", "args": {"reference_video_url": "https://x/a.mp4", "model": 2000, "duration": 31}}),
            "duration",
        ),
        (
            json!({"type": "mx-v2v", "args": {"reference_video_url": "https://x/a.mp4", "model": 2000, "resolution": "4k"}}),
            "resolution",
        ),
        (
            json!({"type": "mx-v2v", "args": {"reference_video_url": "https://x/a.mp4", "model": 2000, "seed": "x"}}),
            "seed",
        ),
        (
            json!({"type": "mx-v2v", "args": {"reference_video_url": "https://x/a.mp4", "model": 2000, "prompt": "p".repeat(501)}}),
            "prompt",
        ),
    ];
    for (body, field) in cases {
        let (status, envelope) = h.generate(&body).await;
        assert_eq!(status, 200, "{envelope}");
        assert_eq!(envelope["code"], 400, "{envelope}");
        let msg = envelope["msg"].as_str().unwrap();
        assert!(msg.contains(field), "msg {msg:?} should name {field}");
    }
    // Unknown args pass.
    let mut body = generate_body("https://x/ok.mp4");
    body["args"]["future_knob"] = json!({"nested": true});
    let (_, envelope) = h.generate(&body).await;
    assert_eq!(envelope["code"], 0, "{envelope}");

    let stats = h.sim.stats();
    assert_eq!(stats.rejected.invalid_args, 8);
    assert_eq!(stats.submit_requests, 9);
    assert_eq!(stats.jobs.len(), 1);
    assert_eq!(stats.credits, 1_000_000 - 10);
}

#[tokio::test]
async fn a_job_goes_pending_processing_then_success() {
    let h = start(SimConfig {
        processing_min: Duration::from_secs(2),
        processing_max: Duration::from_secs(2),
        ..quick_config()
    })
    .await;
    let (status, envelope) = h
        .generate(&generate_body("https://cdn.example/in.mp4"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(envelope["code"], 0);
    assert_eq!(envelope["data"]["cost"], 10);
    assert!(envelope["request_id"].is_string(), "{envelope}");
    let img_uuid = envelope["data"]["img_uuid"].as_str().unwrap().to_owned();
    uuid::Uuid::parse_str(&img_uuid).unwrap();

    let first = h.detail(&img_uuid).await;
    assert_eq!(first["status"], "pending", "{first}");
    assert!(first["json"].is_null());
    assert!(first["end_time"].is_null());

    let (seen, done) = h.wait_done(&img_uuid).await;
    assert_eq!(seen, ["pending", "processing", "success"]);
    assert_eq!(done["img_uuid"], img_uuid.as_str());
    assert_eq!(done["model_id"], "2000");
    assert_eq!(done["type"], "mx-v2v");
    assert_eq!(done["job_type"], "mx-v2v");
    assert_eq!(done["json"][0]["type"], "video");
    let url = done["json"][0]["value"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/files/{img_uuid}.mp4?", h.base)),
        "{url}"
    );
    let (start, end) = (
        done["start_time"].as_u64().unwrap(),
        done["end_time"].as_u64().unwrap(),
    );
    assert!(end >= start);

    let stats = h.sim.stats();
    let job = &stats.jobs[&img_uuid];
    assert_eq!(job.status, "success");
    assert!(job.finished);
    assert_eq!(job.processing_ms, 2000);
    assert_eq!(job.reference_video_url, "https://cdn.example/in.mp4");
    assert!(stats.status_requests[&img_uuid] > seen.len() as u64);
}

#[tokio::test]
async fn unknown_img_uuid_is_code_404() {
    let h = start(quick_config()).await;
    let (status, envelope) = h
        .get("/api/v1/jobs/detail?img_uuid=00000000-0000-4000-8000-000000000000")
        .await;
    assert_eq!((status, envelope["code"].as_i64()), (200, Some(404)));
    let (status, envelope) = h.get("/api/v1/jobs/detail").await;
    assert_eq!((status, envelope["code"].as_i64()), (200, Some(400)));
    assert!(envelope["msg"].as_str().unwrap().contains("img_uuid"));
}

#[tokio::test]
async fn credits_fall_per_job_and_run_out_with_402() {
    let h = start(SimConfig {
        credits: 25,
        cost_per_job: 10,
        ..quick_config()
    })
    .await;
    assert_eq!(balance(&h).await, 25);
    h.submit("https://x/1.mp4").await;
    assert_eq!(balance(&h).await, 15);
    h.submit("https://x/2.mp4").await;
    assert_eq!(balance(&h).await, 5);
    let (status, envelope) = h.generate(&generate_body("https://x/3.mp4")).await;
    assert_eq!(
        (status, envelope["code"].as_i64()),
        (200, Some(402)),
        "{envelope}"
    );
    assert_eq!(balance(&h).await, 5, "a refused job costs nothing");

    let stats = h.sim.stats();
    assert_eq!(stats.rejected.insufficient_credits, 1);
    assert_eq!(stats.submit_requests, 3);
    assert_eq!(stats.submissions.len(), 2);
    assert!(!stats.submissions.contains_key("https://x/3.mp4"));
    assert_eq!(stats.credits, 5);
}

async fn balance(h: &common::Harness) -> i64 {
    let (_, envelope) = h.get("/api/v1/user/tokens").await;
    envelope["data"]["count"].as_i64().unwrap()
}

#[tokio::test]
async fn queue_limit_refuses_with_code_429_until_a_job_finishes() {
    let h = start(SimConfig {
        queue_limit: 2,
        processing_min: Duration::from_millis(700),
        processing_max: Duration::from_millis(700),
        ..quick_config()
    })
    .await;
    let (_, tokens) = h.get("/api/v1/user/tokens").await;
    assert_eq!(tokens["data"]["queueLimit"], 2);
    let first = h.submit("https://x/1.mp4").await;
    h.submit("https://x/2.mp4").await;
    let (status, envelope) = h.generate(&generate_body("https://x/3.mp4")).await;
    assert_eq!(
        (status, envelope["code"].as_i64()),
        (200, Some(429)),
        "{envelope}"
    );

    h.wait_done(&first).await;
    let (status, envelope) = h.generate(&generate_body("https://x/3.mp4")).await;
    assert_eq!(
        (status, envelope["code"].as_i64()),
        (200, Some(0)),
        "{envelope}"
    );

    let stats = h.sim.stats();
    assert_eq!(stats.rejected.queue_limited, 1);
    assert_eq!(stats.submissions["https://x/3.mp4"], 1);
    assert_eq!(stats.credits, 1_000_000 - 30);
    // Two ran at once at most: the peak a client's cap is checked against.
    assert_eq!(stats.peak_running, 2);
    let accepted = &stats.jobs[&first];
    assert!(accepted.submitted_unix_ms > 0, "{accepted:?}");
}

#[tokio::test]
async fn rate_limit_answers_http_429_with_retry_after() {
    let h = start(SimConfig {
        rate_limit_per_sec: 5,
        ..quick_config()
    })
    .await;
    let mut ok = 0;
    let mut limited = 0;
    for _ in 0..20 {
        let response = h
            .http
            .get(h.url("/api/v1/user/tokens"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            200 => ok += 1,
            429 => {
                let retry_after = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                assert!(retry_after.parse::<u64>().unwrap() >= 1);
                let envelope: serde_json::Value = response.json().await.unwrap();
                assert_eq!(envelope["code"], 429);
                limited += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    // 20 quick requests span at most a few one-second windows of 5.
    assert!(ok >= 5 && limited >= 1, "ok {ok}, limited {limited}");
    assert_eq!(h.sim.stats().rejected.rate_limited, limited);
    // /_sim/* is not limited.
    let response = h.http.get(h.url("/_sim/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn modellist_offers_style_2000() {
    let h = start(quick_config()).await;
    let (status, envelope) = h.get("/api/v1/video2video/modellist").await;
    assert_eq!((status, envelope["code"].as_i64()), (200, Some(0)));
    let groups = envelope["data"].as_array().unwrap();
    assert!(groups.len() >= 2);
    let styles: Vec<&serde_json::Value> = groups
        .iter()
        .flat_map(|g| g["list"].as_array().unwrap())
        .collect();
    let anime = styles.iter().find(|s| s["value"] == 2000).unwrap();
    for field in ["label", "version", "url"] {
        assert!(anime[field].is_string(), "{field} in {anime}");
    }
    assert!(anime["isVip"].is_boolean());
}

#[tokio::test]
async fn stats_count_accepted_submissions_and_status_requests() {
    let h = start(quick_config()).await;
    let a = h.submit("https://x/same.mp4").await;
    let b = h.submit("https://x/same.mp4").await;
    h.submit("https://x/other.mp4").await;
    let (_, refused) = h
        .generate(&json!({"type": "mx-v2v", "args": {"model": 1}}))
        .await;
    assert_eq!(refused["code"], 400);
    for _ in 0..3 {
        h.detail(&a).await;
    }
    h.detail(&b).await;

    let response = h.http.get(h.url("/_sim/stats")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let stats: Stats = response.json().await.unwrap();
    assert_eq!(stats.submissions["https://x/same.mp4"], 2);
    assert_eq!(stats.submissions["https://x/other.mp4"], 1);
    assert_eq!(stats.submit_requests, 4);
    assert_eq!(stats.status_requests[&a], 3);
    assert_eq!(stats.status_requests[&b], 1);
    assert_eq!(stats.jobs.len(), 3);
    assert_eq!(stats.downloads, 0);
    assert_eq!(stats, h.sim.stats(), "the endpoint and the method agree");
}

#[tokio::test]
async fn processing_times_are_drawn_within_the_range() {
    let h = start(SimConfig {
        processing_min: Duration::from_millis(100),
        processing_max: Duration::from_secs(60),
        ..quick_config()
    })
    .await;
    for i in 0..10 {
        h.submit(&format!("https://x/{i}.mp4")).await;
    }
    let times: Vec<u64> = h
        .sim
        .stats()
        .jobs
        .values()
        .map(|j| j.processing_ms)
        .collect();
    assert_eq!(times.len(), 10);
    assert!(
        times.iter().all(|t| (100..=60_000).contains(t)),
        "{times:?}"
    );
    assert!(times.iter().any(|t| *t != times[0]), "{times:?}");
}
