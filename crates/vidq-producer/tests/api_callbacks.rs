//! `POST /v1/jobs` refuses a `callback_url` the workers would refuse to call (422 naming
//! `callback_url`, nothing written) instead of dead-lettering its webhook later.

mod support;

use serde_json::json;
use support::{RW_TOKEN, body, error_of, settings, spawn_app};
use vidq_core::CallbackPolicy;
use vidq_producer::{Api, Producer};

#[tokio::test]
async fn a_callback_the_workers_would_refuse_is_a_422_naming_it() {
    let app = spawn_app().await;
    for callback in [
        "http://hooks.example/done?token=s3cr3t",
        "https://10.1.2.3/done?token=s3cr3t",
        "https://169.254.169.254/latest/meta-data?token=s3cr3t",
        "https://[::1]:8443/done?token=s3cr3t",
        "https://localhost/done?token=s3cr3t",
    ] {
        let mut request = body(1);
        request["callback_url"] = json!(callback);
        let answer = app.post_job(RW_TOKEN, &request).await;
        assert_eq!(answer.status(), 422, "{callback}");
        let text = answer.text().await.unwrap();
        let error: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            error["error"]["field"], "callback_url",
            "{callback}: {text}"
        );
        assert!(!text.contains("s3cr3t"), "{text}");
    }
    assert!(
        app.keys().await.is_empty(),
        "nothing written for refused callbacks"
    );

    let mut request = body(1);
    request["callback_url"] = json!("https://hooks.example/done");
    assert_eq!(app.post_job(RW_TOKEN, &request).await.status(), 202);
}

#[tokio::test]
async fn the_workers_dev_policy_lets_loopback_receivers_in() {
    let settings = settings();
    let producer = Producer::connect(&settings).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let api = Api::new(producer, &settings.api, None).with_callback_policy(CallbackPolicy {
        allow_http_hosts: vec!["127.0.0.1".into()],
        allow_private: true,
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api.serve(listener, async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let post = |callback: &str| {
        let mut request = body(2);
        request["callback_url"] = json!(callback);
        http.post(format!("{base}/v1/jobs"))
            .bearer_auth(RW_TOKEN)
            .json(&request)
            .send()
    };
    assert_eq!(post("http://127.0.0.1:9/hook").await.unwrap().status(), 202);
    let still_refused = post("http://hooks.example/hook").await.unwrap();
    assert_eq!(
        error_of(still_refused).await.2.as_deref(),
        Some("callback_url"),
        "plain http only to the hosts allowed"
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
