//! Helpers shared by the simulator's HTTP tests.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vidq_sim::{SimConfig, SimServer};

pub const KEY: &str = "sim-key";

/// A server with short jobs and small results, plus a client for it.
pub struct Harness {
    pub sim: SimServer,
    pub http: reqwest::Client,
    pub base: String,
}

pub fn quick_config() -> SimConfig {
    SimConfig {
        processing_min: Duration::from_millis(300),
        processing_max: Duration::from_millis(600),
        result_size: 200 * 1024 + 7,
        ..SimConfig::default()
    }
}

pub async fn start(config: SimConfig) -> Harness {
    let sim = SimServer::start(config).await.unwrap();
    let base = sim.base_url();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    Harness { sim, http, base }
}

pub fn generate_body(url: &str) -> Value {
    json!({"type": "mx-v2v", "args": {"reference_video_url": url, "model": 2000,
        "duration": 5, "resolution": "720p", "seed": -1}})
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs generate; returns (HTTP status, envelope).
    pub async fn generate(&self, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url("/api/v1/video2video/generate"))
            .bearer_auth(KEY)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// Submits a valid job and returns its img_uuid.
    pub async fn submit(&self, url: &str) -> String {
        let (status, envelope) = self.generate(&generate_body(url)).await;
        assert_eq!(status, 200, "{envelope}");
        assert_eq!(envelope["code"], 0, "{envelope}");
        envelope["data"]["img_uuid"].as_str().unwrap().to_owned()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// GETs with the key; only the HTTP status.
    pub async fn get_status(&self, path: &str) -> u16 {
        let response = self.http.get(self.url(path)).bearer_auth(KEY).send().await;
        response.unwrap().status().as_u16()
    }

    pub async fn detail(&self, img_uuid: &str) -> Value {
        let (status, envelope) = self
            .get(&format!("/api/v1/jobs/detail?img_uuid={img_uuid}"))
            .await;
        assert_eq!(status, 200, "{envelope}");
        assert_eq!(envelope["code"], 0, "{envelope}");
        envelope["data"].clone()
    }

    /// Polls detail until the job is done; returns every status seen and the last data.
    pub async fn wait_done(&self, img_uuid: &str) -> (Vec<String>, Value) {
        let mut seen: Vec<String> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let data = self.detail(img_uuid).await;
            let status = data["status"].as_str().unwrap().to_owned();
            if seen.last() != Some(&status) {
                seen.push(status.clone());
            }
            if matches!(status.as_str(), "success" | "failed" | "completed") {
                return (seen, data);
            }
            assert!(
                Instant::now() < deadline,
                "job {img_uuid} never finished: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Submits a job and waits for its signed result URL.
    pub async fn finished_url(&self, url: &str) -> (String, String) {
        let img_uuid = self.submit(url).await;
        let (_, data) = self.wait_done(&img_uuid).await;
        assert_eq!(data["status"], "success", "{data}");
        let result = data["json"][0]["value"].as_str().unwrap().to_owned();
        (img_uuid, result)
    }
}

/// Retries `check` (every 20 ms) until it returns `Some`, failing after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
