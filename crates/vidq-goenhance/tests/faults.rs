//! Each injected fault, at rate 1.0, becomes the right error with the right retry advice.

mod support;

use std::time::{Duration, Instant};

use support::{KEY, client, fast, request, sim};
use vidq_goenhance::{Error, MAX_EXCERPT};
use vidq_sim::{Faults, SimConfig, SimServer};

async fn faulty(faults: Faults) -> SimServer {
    sim(SimConfig { faults, ..fast() }).await
}

#[tokio::test]
async fn http_429_is_rate_limited_with_retry_after() {
    let server = faulty(Faults {
        rate_429: 1.0,
        retry_after_secs: 1,
        ..Faults::default()
    })
    .await;
    let err = client(&server).generate(&request()).await.unwrap_err();
    assert!(matches!(err, Error::RateLimited { .. }), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    assert!(err.is_retryable());
    assert!(server.stats().submissions.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn the_request_rate_limit_is_rate_limited_too() {
    let server = sim(SimConfig {
        rate_limit_per_sec: 1,
        ..fast()
    })
    .await;
    let client = client(&server);
    // At most one call per second passes: among five quick calls, one is refused.
    let mut refused = None;
    for _ in 0..5 {
        if let Err(err) = client.tokens().await {
            refused = Some(err);
            break;
        }
    }
    let err = refused.expect("a call over the rate limit is refused");
    assert!(matches!(err, Error::RateLimited { .. }), "{err:?}");
    assert!(err.retry_after().is_some());
    server.shutdown().await;
}

#[tokio::test]
async fn http_5xx_is_a_retryable_upstream_error() {
    let server = faulty(Faults {
        rate_5xx: 1.0,
        ..Faults::default()
    })
    .await;
    let client = client(&server);
    // The simulator answers 5xx with an envelope or an HTML page: try several of each.
    for _ in 0..6 {
        let err = client.tokens().await.unwrap_err();
        match err {
            Error::Upstream { status } => assert!((500..600).contains(&status), "{status}"),
            other => panic!("expected Upstream, got {other:?}"),
        }
        assert!(err.is_retryable());
    }
    assert_eq!(server.stats().faults.http_5xx, 6);
    server.shutdown().await;
}

#[tokio::test]
async fn a_dropped_connection_is_a_network_error() {
    let server = faulty(Faults {
        rate_drop: 1.0,
        ..Faults::default()
    })
    .await;
    let err = client(&server).generate(&request()).await.unwrap_err();
    assert!(matches!(err, Error::Network(_)), "{err:?}");
    assert!(err.is_retryable());
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(KEY), "{shown}");
    assert!(!shown.contains(&server.base_url()), "URL kept in: {shown}");
    // The upstream took the submission before the answer was lost: the documented window.
    assert_eq!(server.stats().submissions.values().sum::<u64>(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn a_malformed_body_is_malformed_with_a_short_excerpt() {
    let server = faulty(Faults {
        rate_malformed: 1.0,
        ..Faults::default()
    })
    .await;
    let client = client(&server);
    // Truncated JSON and HTML pages alternate: try both shapes.
    for _ in 0..4 {
        let err = client.model_list().await.unwrap_err();
        match &err {
            Error::Malformed { excerpt } => {
                assert!(!excerpt.is_empty());
                assert!(excerpt.chars().count() <= MAX_EXCERPT, "{excerpt}");
            }
            other => panic!("expected Malformed, got {other:?}"),
        }
        assert!(err.is_retryable());
    }
    server.shutdown().await;
}

#[tokio::test]
async fn latency_beyond_the_timeout_is_a_timeout() {
    let server = faulty(Faults {
        latency: Duration::from_secs(2),
        ..Faults::default()
    })
    .await;
    let client = support::settings(&server)
        .with_timeout(Duration::from_millis(300))
        .client()
        .unwrap();
    let started = Instant::now();
    let err = client.tokens().await.unwrap_err();
    assert!(matches!(err, Error::Timeout), "{err:?}");
    assert!(err.is_retryable());
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_refused_connection_is_a_network_error() {
    // Bind then drop a listener to get a port nobody serves.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let client = vidq_goenhance::ClientSettings::new(KEY)
        .with_base_url(format!("http://127.0.0.1:{port}"))
        .client()
        .unwrap();
    let err = client.tokens().await.unwrap_err();
    assert!(matches!(err, Error::Network(_)), "{err:?}");
    assert!(err.is_retryable());
}
