//! Fenced scripts whose reply is lost after they ran (a connection dropped by a small TCP
//! proxy) never lead to two holders of one token.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::proxy::LossyProxy;
use common::{redis_url, unique_prefix, wait_until};
use vidq_queue::{Depth, QueueConfig, RedisQueue};

async fn through_proxy(name: &str) -> (LossyProxy, RedisQueue<u32>, RedisQueue<u32>) {
    let url = redis_url();
    let info = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection_info()
        .clone();
    let upstream = match info.addr() {
        redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        other => panic!("the lost-reply test needs Redis over plain TCP, not {other:?}"),
    };
    let proxy = LossyProxy::start(upstream).await;
    let config = QueueConfig::new(name)
        .with_prefix(unique_prefix(name))
        .with_lease(Duration::from_millis(400));
    let lossy = RedisQueue::connect(&proxy.url(), config.clone())
        .await
        .unwrap();
    let direct = RedisQueue::connect(&url, config).await.unwrap();
    (proxy, lossy, direct)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_back_retried_after_a_lost_reply_never_gives_two_holders_one_token() {
    let (proxy, a, b) = through_proxy("lost-release").await;
    a.enqueue(&7).await.unwrap();
    let mine = a.claim(1).await.unwrap();
    let (d1, _) = mine[0].clone();
    // Load the script once so the armed request is the hand-back itself.
    assert!(
        !a.release(&vidq_queue::Delivery {
            token: "0.0".into(),
            ..d1.clone()
        })
        .await
        .unwrap()
    );

    proxy.lose_next_reply();
    assert!(a.release(&d1).await.is_err(), "the reply was lost");
    assert!(proxy.lost_one());
    // The hand-back ran: another worker claims the task.
    let theirs = b.claim(1).await.unwrap();
    assert_eq!(theirs.len(), 1, "handed back, then claimed by B");
    let (d2, _) = theirs[0].clone();
    assert_ne!(d2.token, d1.token, "a new token for a new holder");
    // A retries its hand-back, as a client does after a lost reply: it must not touch B's.
    let retried = wait_for_ok(|| a.release(&d1)).await;
    assert!(!retried, "a stale hand-back changes nothing");
    assert_eq!(b.depth().await.unwrap().leased, 1, "still B's");
    assert!(b.ack(&d2).await.unwrap());
    assert_eq!(b.depth().await.unwrap(), Depth::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_reply_was_lost_is_taken_back_with_a_new_token() {
    let (proxy, a, b) = through_proxy("lost-claim").await;
    b.enqueue_batch(&[1, 2, 3]).await.unwrap();
    let _ = a.claim(0).await.unwrap(); // script loaded
    proxy.lose_next_reply();
    assert!(a.claim(10).await.is_err(), "the reply was lost");
    assert_eq!(
        b.depth().await.unwrap().leased,
        3,
        "leased to nobody who knows"
    );
    let mut tokens = HashSet::new();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    wait_until(
        Duration::from_secs(10),
        "the leases to expire and be taken back",
        || {
            let (b, held) = (b.clone(), held.clone());
            async move {
                let got = b.claim(10).await.unwrap();
                let mut h = held.lock().unwrap();
                h.extend(got);
                h.len() == 3
            }
        },
    )
    .await;
    let held = held.lock().unwrap().clone();
    for (d, _) in &held {
        assert!(tokens.insert((d.id.clone(), d.token.clone())), "{d:?}");
        assert!(
            d.token.starts_with("2."),
            "the lost claim was delivery 1: {d:?}"
        );
        assert_eq!(d.attempt, 1, "a lost claim is not a failed attempt");
        assert!(b.ack(d).await.unwrap());
    }
    assert_eq!(b.depth().await.unwrap(), Depth::default());
}

/// Retry a call until it stops failing (the connection manager reconnects).
async fn wait_for_ok<F, Fut, T>(mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, vidq_queue::QueueError>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match call().await {
            Ok(v) => return v,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "still failing: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
