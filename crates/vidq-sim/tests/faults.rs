//! Each fault at rate 1.0 is observable, and faults change at run time.

mod common;

use std::time::{Duration, Instant};

use common::{KEY, generate_body, quick_config, start};
use vidq_sim::{Faults, SimConfig, Stats};

fn with(faults: Faults) -> SimConfig {
    SimConfig {
        faults,
        ..quick_config()
    }
}

#[tokio::test]
async fn injected_429_carries_retry_after() {
    let h = start(with(Faults {
        rate_429: 1.0,
        retry_after_secs: 7,
        ..Faults::default()
    }))
    .await;
    for path in ["/api/v1/user/tokens", "/api/v1/video2video/modellist"] {
        let response = h
            .http
            .get(h.url(path))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "7");
        let envelope: serde_json::Value = response.json().await.unwrap();
        assert_eq!(envelope["code"], 429);
    }
    let response = h
        .http
        .post(h.url("/api/v1/video2video/generate"))
        .bearer_auth(KEY)
        .json(&generate_body("https://x/a.mp4"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let stats = h.sim.stats();
    assert_eq!(stats.faults.http_429, 3);
    assert!(
        stats.jobs.is_empty(),
        "a 429 is answered before anything happens"
    );
    assert_eq!(stats.submit_requests, 1);
}

#[tokio::test]
async fn injected_5xx_come_as_envelopes_and_html() {
    let h = start(with(Faults {
        rate_5xx: 1.0,
        ..Faults::default()
    }))
    .await;
    let mut html = 0;
    let mut envelopes = 0;
    for _ in 0..24 {
        let response = h
            .http
            .get(h.url("/api/v1/user/tokens"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_server_error(), "{}", response.status());
        let is_html = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html");
        let body = response.text().await.unwrap();
        if is_html {
            html += 1;
        } else {
            let envelope: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(envelope["code"], 500);
            envelopes += 1;
        }
    }
    assert!(
        html > 0 && envelopes > 0,
        "html {html}, envelopes {envelopes}"
    );
    assert_eq!(h.sim.stats().faults.http_5xx, 24);
}

#[tokio::test]
async fn dropped_connections_get_no_answer_but_the_submission_counts() {
    let h = start(with(Faults {
        rate_drop: 1.0,
        ..Faults::default()
    }))
    .await;
    let result = h
        .http
        .post(h.url("/api/v1/video2video/generate"))
        .bearer_auth(KEY)
        .json(&generate_body("https://x/a.mp4"))
        .send()
        .await;
    let err = result.expect_err("the connection should close without an answer");
    assert!(!err.is_timeout(), "{err:?}");
    let stats = h.sim.stats();
    assert_eq!(stats.faults.dropped, 1);
    assert_eq!(
        stats.submissions["https://x/a.mp4"], 1,
        "accepted, answer lost"
    );
    // The server keeps serving other connections.
    let response = h.http.get(h.url("/_sim/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn malformed_answers_are_http_200_without_valid_json() {
    let h = start(with(Faults {
        rate_malformed: 1.0,
        ..Faults::default()
    }))
    .await;
    for _ in 0..4 {
        let response = h
            .http
            .get(h.url("/api/v1/user/tokens"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = response.bytes().await.unwrap();
        assert!(
            serde_json::from_slice::<serde_json::Value>(&body).is_err(),
            "{body:?}"
        );
    }
    assert_eq!(h.sim.stats().faults.malformed, 4);
}

#[tokio::test]
async fn failed_jobs_end_failed_without_output() {
    let h = start(with(Faults {
        rate_job_failed: 1.0,
        ..Faults::default()
    }))
    .await;
    let img_uuid = h.submit("https://x/a.mp4").await;
    let (seen, data) = h.wait_done(&img_uuid).await;
    assert_eq!(seen.last().unwrap(), "failed");
    assert!(data["json"].is_null());
    let stats = h.sim.stats();
    assert_eq!(stats.jobs[&img_uuid].status, "failed");
    assert_eq!(stats.faults.jobs_failed, 1);
}

#[tokio::test]
async fn completed_status_replaces_success() {
    let h = start(with(Faults {
        completed_status: true,
        ..Faults::default()
    }))
    .await;
    let img_uuid = h.submit("https://x/a.mp4").await;
    let (seen, data) = h.wait_done(&img_uuid).await;
    assert_eq!(seen.last().unwrap(), "completed");
    assert!(data["json"][0]["value"].is_string());
}

#[tokio::test]
async fn running_jobs_can_report_an_unknown_status() {
    let h = start(SimConfig {
        processing_min: Duration::from_secs(60),
        processing_max: Duration::from_secs(60),
        ..with(Faults {
            rate_unknown_status: 1.0,
            ..Faults::default()
        })
    })
    .await;
    let img_uuid = h.submit("https://x/a.mp4").await;
    assert_eq!(h.detail(&img_uuid).await["status"], "queued_v2");
    assert_eq!(h.sim.stats().faults.unknown_status, 1);
}

#[tokio::test]
async fn latency_delays_api_answers_but_not_sim_endpoints() {
    let h = start(with(Faults {
        latency: Duration::from_millis(300),
        ..Faults::default()
    }))
    .await;
    let started = Instant::now();
    let (status, _) = h.get("/api/v1/user/tokens").await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn faults_change_at_run_time_and_never_touch_sim_endpoints() {
    let h = start(quick_config()).await;
    assert_eq!(h.get("/api/v1/user/tokens").await.0, 200);

    h.sim.set_faults(Faults {
        rate_5xx: 1.0,
        ..Faults::default()
    });
    assert!(h.get_status("/api/v1/user/tokens").await >= 500);
    // /_sim/* stays reachable.
    let stats: Stats = h
        .http
        .get(h.url("/_sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats.faults.http_5xx, 1);

    let response = h
        .http
        .post(h.url("/_sim/faults"))
        .json(&serde_json::json!({"rate_429": 1.0, "retry_after_secs": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = h
        .http
        .get(h.url("/api/v1/user/tokens"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        429,
        "the posted faults replaced the 5xx ones"
    );
    assert_eq!(response.headers()["retry-after"], "3");

    let current: Faults = h
        .http
        .get(h.url("/_sim/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(current.rate_429, 1.0);
    assert_eq!(current.rate_5xx, 0.0);
}
