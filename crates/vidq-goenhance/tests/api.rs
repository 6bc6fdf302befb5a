//! The client against a well-behaved simulator: submissions, polling, account reads and the
//! permanent errors.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{KEY, client, fast, request, sim, wait_terminal};
use vidq_goenhance::{ClientSettings, Error, GenerateArgs, GenerateRequest, JobStatus};
use vidq_sim::{Faults, SimConfig};

#[tokio::test]
async fn generate_then_poll_until_success_yields_a_video_url() {
    let server = sim(fast()).await;
    let client = client(&server);

    let submitted = client.generate(&request()).await.unwrap();
    assert!(!submitted.img_uuid.is_empty());
    assert_eq!(submitted.cost, Some(10.0));
    assert!(submitted.request_id.is_some());

    let detail = wait_terminal(&client, &submitted.img_uuid, Duration::from_secs(10)).await;
    assert_eq!(detail.status, JobStatus::Success);
    assert_eq!(detail.raw_status, "success");
    assert_eq!(detail.img_uuid, submitted.img_uuid);
    assert_eq!(detail.model_id.as_deref(), Some("2000"));
    assert!(detail.start_time.is_some() && detail.end_time.is_some());
    let url = detail.video_url.expect("a finished job has a video URL");
    assert!(
        url.contains(&format!("/files/{}.mp4?", submitted.img_uuid)),
        "{url}"
    );

    let stats = server.stats();
    assert_eq!(
        stats.submissions.get("https://cdn.example/in.mp4"),
        Some(&1)
    );
    assert_eq!(stats.jobs[&submitted.img_uuid].model, 2000);
    server.shutdown().await;
}

#[tokio::test]
async fn a_running_job_is_not_terminal_and_has_no_url() {
    let server = sim(SimConfig {
        processing_min: Duration::from_secs(60),
        processing_max: Duration::from_secs(60),
        ..SimConfig::default()
    })
    .await;
    let client = client(&server);
    let submitted = client.generate(&request()).await.unwrap();
    let detail = client.detail(&submitted.img_uuid).await.unwrap();
    assert_eq!(detail.status, JobStatus::Pending);
    assert!(!detail.status.is_terminal());
    assert_eq!(detail.video_url, None);
    assert_eq!(detail.end_time, None);
    server.shutdown().await;
}

#[tokio::test]
async fn a_failed_job_reports_failed_without_url() {
    let server = sim(SimConfig {
        faults: Faults {
            rate_job_failed: 1.0,
            ..Faults::default()
        },
        ..fast()
    })
    .await;
    let client = client(&server);
    let submitted = client.generate(&request()).await.unwrap();
    let detail = wait_terminal(&client, &submitted.img_uuid, Duration::from_secs(10)).await;
    assert_eq!(detail.status, JobStatus::Failed);
    assert_eq!(detail.video_url, None);
    server.shutdown().await;
}

#[tokio::test]
async fn completed_status_means_success() {
    let server = sim(SimConfig {
        faults: Faults {
            completed_status: true,
            ..Faults::default()
        },
        ..fast()
    })
    .await;
    let client = client(&server);
    let submitted = client.generate(&request()).await.unwrap();
    let detail = wait_terminal(&client, &submitted.img_uuid, Duration::from_secs(10)).await;
    assert_eq!(detail.raw_status, "completed");
    assert_eq!(detail.status, JobStatus::Success);
    assert!(detail.video_url.is_some());
    server.shutdown().await;
}

#[tokio::test]
async fn an_unknown_status_is_kept_and_not_terminal() {
    let server = sim(SimConfig {
        processing_min: Duration::from_secs(60),
        processing_max: Duration::from_secs(60),
        faults: Faults {
            rate_unknown_status: 1.0,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await;
    let client = client(&server);
    let submitted = client.generate(&request()).await.unwrap();
    let detail = client.detail(&submitted.img_uuid).await.unwrap();
    assert_eq!(detail.status, JobStatus::Unknown("queued_v2".to_owned()));
    assert!(!detail.status.is_terminal());
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_args_reach_the_upstream_untouched() {
    let server = sim(fast()).await;
    let client = client(&server);

    // A future arg the client has never heard of is sent and accepted.
    let mut accepted = request();
    accepted
        .args
        .extra
        .insert("future_knob".into(), json!({"a": [1, 2]}));
    client.generate(&accepted).await.unwrap();
    assert_eq!(server.stats().submissions.values().sum::<u64>(), 1);

    // Proof that `extra` really reaches the wire: the upstream judges what it carries.
    let mut judged = GenerateRequest::new(GenerateArgs::new("https://cdn.example/b.mp4", 2000));
    judged.args.extra.insert("duration".into(), json!(99));
    match client.generate(&judged).await {
        Err(err @ Error::InvalidRequest { code: 400, .. }) => {
            assert!(err.to_string().to_lowercase().contains("duration"), "{err}");
            assert!(!err.is_retryable());
        }
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
    assert_eq!(server.stats().submissions.values().sum::<u64>(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn a_wrong_key_is_unauthorized() {
    let server = sim(fast()).await;
    let client = ClientSettings::new("not-the-key")
        .with_base_url(server.base_url())
        .client()
        .unwrap();
    for result in [
        client.generate(&request()).await.map(drop),
        client.tokens().await.map(drop),
    ] {
        let err = result.unwrap_err();
        assert!(matches!(err, Error::Unauthorized), "{err:?}");
        assert!(!err.is_retryable());
    }
    assert_eq!(server.stats().rejected.unauthorized, 2);
    server.shutdown().await;
}

#[tokio::test]
async fn missing_args_are_an_invalid_request_naming_the_field() {
    let server = sim(fast()).await;
    let client = client(&server);
    let cases = [
        (GenerateArgs::new("", 2000), "reference_video_url"),
        (
            GenerateArgs {
                resolution: Some("1080p".into()),
                ..GenerateArgs::new("https://cdn.example/a.mp4", 2000)
            },
            "resolution",
        ),
    ];
    for (args, field) in cases {
        match client.generate(&GenerateRequest::new(args)).await {
            Err(Error::InvalidRequest { code, reason }) => {
                assert_eq!(code, 400);
                assert!(reason.to_lowercase().contains(field), "{reason}");
            }
            other => panic!("expected InvalidRequest for {field}, got {other:?}"),
        }
    }
    assert!(server.stats().submissions.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn zero_credits_is_insufficient_credits() {
    let server = sim(SimConfig {
        credits: 0,
        ..fast()
    })
    .await;
    let client = client(&server);
    let err = client.generate(&request()).await.unwrap_err();
    assert!(matches!(err, Error::InsufficientCredits { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(server.stats().submissions.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn the_plan_queue_limit_is_a_retryable_rate_limit() {
    let server = sim(SimConfig {
        queue_limit: 1,
        processing_min: Duration::from_secs(60),
        processing_max: Duration::from_secs(60),
        ..SimConfig::default()
    })
    .await;
    let client = client(&server);
    client.generate(&request()).await.unwrap();
    let err = client.generate(&request()).await.unwrap_err();
    assert!(matches!(err, Error::RateLimited { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(server.stats().rejected.queue_limited, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn an_unknown_job_is_not_found() {
    let server = sim(fast()).await;
    let client = client(&server);
    let err = client
        .detail("00000000-0000-4000-8000-000000000000")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");
    assert!(!err.is_retryable());
    server.shutdown().await;
}

#[tokio::test]
async fn tokens_report_balance_and_queue_limit() {
    let server = sim(SimConfig {
        credits: 100,
        cost_per_job: 30,
        queue_limit: 3,
        ..fast()
    })
    .await;
    let client = client(&server);
    let before = client.tokens().await.unwrap();
    assert_eq!(before.count, 100.0);
    assert_eq!(before.queue_limit, Some(3));
    client.generate(&request()).await.unwrap();
    assert_eq!(client.tokens().await.unwrap().count, 70.0);
    server.shutdown().await;
}

#[tokio::test]
async fn model_list_parses_groups_and_styles() {
    let server = sim(fast()).await;
    let client = client(&server);
    let groups = client.model_list().await.unwrap();
    assert!(!groups.is_empty());
    let styles: Vec<_> = groups.iter().flat_map(|g| &g.list).collect();
    let anime = styles.iter().find(|s| s.value == 2000).expect("style 2000");
    assert!(!anime.label.is_empty());
    assert!(styles.iter().any(|s| s.is_vip));
    assert!(
        groups
            .iter()
            .all(|g| !g.label.is_empty() && g.value.is_some())
    );
    assert_eq!(server.stats().modellist_requests, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn debug_output_never_shows_the_key() {
    let server = sim(fast()).await;
    let settings = support::settings(&server);
    let client = settings.client().unwrap();
    for shown in [format!("{settings:?}"), format!("{client:?}")] {
        assert!(!shown.contains(KEY), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
    }
    server.shutdown().await;
}

#[test]
fn settings_deserialize_with_defaults_and_validate_base_url() {
    let settings: ClientSettings =
        serde_json::from_value(json!({"api_key": KEY, "timeout": "2s"})).unwrap();
    assert_eq!(settings.base_url, "https://api.goenhance.ai");
    assert_eq!(settings.timeout, Duration::from_secs(2));
    assert_eq!(settings.connect_timeout, Duration::from_secs(5));
    assert!(settings.client().is_ok());

    assert!(serde_json::from_value::<ClientSettings>(json!({"timeout": "2s"})).is_err());

    let bad = ClientSettings::new(KEY).with_base_url("api.goenhance.ai");
    let err = bad.client().unwrap_err();
    assert!(err.to_string().contains("goenhance.base_url"), "{err}");
    let err = ClientSettings::new(" ").client().unwrap_err();
    assert!(err.to_string().contains("goenhance.api_key"), "{err}");
}
