//! Shared helpers: a private simulator per test and a client pointed at it.

#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use vidq_goenhance::{Client, ClientSettings, GenerateArgs, GenerateRequest, JobDetail};
use vidq_sim::{SimConfig, SimServer};

/// A key distinctive enough to grep for in logs and `Debug` output.
pub const KEY: &str = "sk-vidq-test-9f2c41d7e0";

/// Starts a private simulator on port 0 that accepts [`KEY`] and finishes jobs quickly.
pub async fn sim(config: SimConfig) -> SimServer {
    SimServer::start(SimConfig {
        api_key: KEY.to_owned(),
        ..config
    })
    .await
    .expect("simulator starts")
}

/// A simulator configuration whose jobs take 100–300 ms.
pub fn fast() -> SimConfig {
    SimConfig {
        processing_min: Duration::from_millis(100),
        processing_max: Duration::from_millis(300),
        ..SimConfig::default()
    }
}

/// Settings for the simulator, with the right key and a 5 s call timeout.
pub fn settings(server: &SimServer) -> ClientSettings {
    ClientSettings::new(KEY)
        .with_base_url(server.base_url())
        .with_timeout(Duration::from_secs(5))
}

pub fn client(server: &SimServer) -> Client {
    settings(server).client().expect("client builds")
}

pub fn request() -> GenerateRequest {
    let mut args = GenerateArgs::new("https://cdn.example/in.mp4", 2000);
    args.duration = Some(5);
    args.resolution = Some("720p".to_owned());
    args.seed = Some(-1);
    GenerateRequest::new(args)
}

/// Polls `detail` until the job is terminal, failing the test past `within`.
pub async fn wait_terminal(client: &Client, img_uuid: &str, within: Duration) -> JobDetail {
    let deadline = Instant::now() + within;
    loop {
        let detail = client.detail(img_uuid).await.expect("detail answers");
        if detail.status.is_terminal() {
            return detail;
        }
        assert!(
            Instant::now() < deadline,
            "job {img_uuid} still {} after {within:?}",
            detail.raw_status
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
