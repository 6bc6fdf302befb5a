//! Shared by the API tests: an API on port 0 against the test Redis, with its own key prefix.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use redis::AsyncCommands as _;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use vidq_core::JobStore;
use vidq_producer::{Api, ApiToken, Producer, ProducerSettings, Scope};
use vidq_storage::Storage;

pub const RW_TOKEN: &str = "test-token-read-write-0123456789";
pub const READ_TOKEN: &str = "test-token-read-only-0123456789";
pub const WRITE_TOKEN: &str = "test-token-write-only-0123456789";
/// The three tokens above are one tenant's, `tenant-a`.
pub const TENANT_A: &str = "tenant-a";
/// Another tenant's token (read and write), `tenant-b`.
pub const B_TOKEN: &str = "test-token-tenant-b-0123456789";
pub const TENANT_B: &str = "tenant-b";
/// A token with the `admin` scope (tenant `ops`).
pub const ADMIN_TOKEN: &str = "test-token-admin-0123456789";

pub fn redis_url() -> String {
    std::env::var("VIDQ_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub store: JobStore,
    pub prefix: String,
    pub redis: redis::aio::ConnectionManager,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Settings for a test: unique prefix; tenant A's three tokens (read+write, read, write),
/// tenant B's (read+write) and an admin token.
pub fn settings() -> ProducerSettings {
    let mut s = ProducerSettings::default();
    s.redis.url = redis_url();
    s.redis.prefix = format!("vidq-test-api-{}", uuid::Uuid::new_v4().simple());
    let token = |name: &str, token: &str, scopes: Vec<Scope>| ApiToken {
        name: name.into(),
        token: SecretString::from(token.to_owned()),
        sha256: None,
        scopes,
    };
    s.api.tokens = vec![
        token(TENANT_A, RW_TOKEN, vec![Scope::Read, Scope::Write]),
        token(TENANT_A, READ_TOKEN, vec![Scope::Read]),
        token(TENANT_A, WRITE_TOKEN, vec![Scope::Write]),
        token(TENANT_B, B_TOKEN, vec![Scope::Read, Scope::Write]),
        token("ops", ADMIN_TOKEN, vec![Scope::Admin]),
    ];
    s.api.body_limit = 4096;
    s
}

pub async fn spawn_app() -> TestApp {
    spawn_with(settings(), None).await
}

pub async fn spawn_with(settings: ProducerSettings, storage: Option<Storage>) -> TestApp {
    let producer = Producer::connect(&settings)
        .await
        .expect("connect to the test Redis");
    let store = producer.store().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let api = Api::new(producer, &settings.api, storage);
    tokio::spawn(api.serve(listener, async move {
        let _ = stopped.await;
    }));
    let client = redis::Client::open(settings.redis.url.as_str()).unwrap();
    let redis = redis::aio::ConnectionManager::new(client).await.unwrap();
    TestApp {
        base: format!("http://{addr}"),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        store,
        prefix: settings.redis.prefix.clone(),
        redis,
        stop: Some(stop),
    }
}

/// A valid request body; `n` varies the upstream arguments.
pub fn body(n: i64) -> Value {
    json!({
        "reference_video_url": format!("https://videos.example.com/in-{n}.mp4"),
        "model": 2000,
        "duration": 5,
        "metadata": {"n": n.to_string()},
    })
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post_job(&self, token: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url("/v1/jobs"))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_raw(&self, body: &str, content_type: &str) -> reqwest::Response {
        self.http
            .post(self.url("/v1/jobs"))
            .bearer_auth(RW_TOKEN)
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Every Redis key under this test's prefix but the shared rate limit's
    /// (`<prefix>:api:rate:<token name>`, written by every authenticated request).
    pub async fn keys(&self) -> Vec<String> {
        let rate = format!("{}:api:rate:", self.prefix);
        let mut keys = self.all_keys().await;
        keys.retain(|k| !k.starts_with(&rate));
        keys
    }

    /// Every Redis key under this test's prefix.
    pub async fn all_keys(&self) -> Vec<String> {
        let mut conn = self.redis.clone();
        let mut keys = Vec::new();
        let mut iter: redis::AsyncIter<String> =
            conn.scan_match(format!("{}:*", self.prefix)).await.unwrap();
        while let Some(key) = iter.next_item().await {
            keys.push(key.unwrap());
        }
        keys
    }

    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// The error JSON of a response: (status, code, field).
pub async fn error_of(response: reqwest::Response) -> (u16, String, Option<String>) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("error body is JSON");
    let code = body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_owned();
    let field = body["error"]["field"].as_str().map(str::to_owned);
    assert!(body["error"]["message"].is_string(), "{body}");
    (status, code, field)
}
