//! Against real servers: the shared standalone Redis (`VIDQ_TEST_REDIS_URL`), and when set,
//! a 3-primary/3-replica cluster (`VIDQ_TEST_REDIS_CLUSTER_URLS`) and a Sentinel set
//! (`VIDQ_TEST_REDIS_SENTINELS`, `VIDQ_TEST_REDIS_SENTINEL_MASTER`). Each test uses its own
//! key names.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use redis::AsyncCommands as _;
use vidq_redis::{Delivery, Redis, RedisSettings, Subscription, WaitOutcome};

fn unique(test: &str) -> String {
    format!("vrtest-{test}-{}", uuid::Uuid::new_v4().simple())
}

fn standalone() -> RedisSettings {
    RedisSettings::standalone(
        std::env::var("VIDQ_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
    )
}

fn list(var: &str) -> Option<Vec<String>> {
    let v = std::env::var(var).ok()?;
    let items: Vec<String> = v
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    (!items.is_empty()).then_some(items)
}

fn cluster() -> Option<RedisSettings> {
    match list("VIDQ_TEST_REDIS_CLUSTER_URLS") {
        Some(urls) => Some(RedisSettings::cluster(urls)),
        None => {
            eprintln!("skipped: VIDQ_TEST_REDIS_CLUSTER_URLS is not set (no cluster to test on)");
            None
        }
    }
}

fn sentinel() -> Option<RedisSettings> {
    match list("VIDQ_TEST_REDIS_SENTINELS") {
        Some(sentinels) => Some(RedisSettings::sentinel(
            sentinels,
            std::env::var("VIDQ_TEST_REDIS_SENTINEL_MASTER").unwrap_or_else(|_| "mymaster".into()),
        )),
        None => {
            eprintln!("skipped: VIDQ_TEST_REDIS_SENTINELS is not set (no Sentinel set to test on)");
            None
        }
    }
}

async fn next_delivery(sub: &mut Subscription) -> Delivery {
    tokio::time::timeout(Duration::from_secs(15), sub.next())
        .await
        .expect("a delivery within 15 s")
        .expect("the subscription stays open")
}

/// Writes and reads keys of many slots, pipelines within one slot, a script, and a
/// sharded subscription to channels of different slots.
async fn exercise(settings: RedisSettings, test: &str) {
    let redis = Redis::connect(&settings).await.expect("connect");
    let mut conn = redis.conn();
    let base = unique(test);
    for i in 0..20 {
        let key = format!("{base}:k{i}");
        let () = conn.set_ex(&key, i, 60).await.unwrap();
        let got: i64 = conn.get(&key).await.unwrap();
        assert_eq!(got, i);
    }
    let tag = format!("{base}:{{t}}");
    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .incr(format!("{tag}:a"), 1)
        .incr(format!("{tag}:b"), 2)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!((a, b), (1, 2));
    let script = redis::Script::new("return redis.call('INCRBY', KEYS[1], ARGV[1])");
    let n: i64 = script
        .key(format!("{tag}:a"))
        .arg(5)
        .invoke_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 6);

    let channels: Vec<String> = (0..4).map(|i| format!("{base}:{{c{i}}}:events")).collect();
    let mut sub = redis.subscribe_sharded(channels.clone());
    assert!(matches!(
        next_delivery(&mut sub).await,
        Delivery::Subscribed
    ));
    for (i, channel) in channels.iter().enumerate() {
        let receivers: i64 = redis::cmd("SPUBLISH")
            .arg(channel)
            .arg(format!("m{i}"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(receivers, 1, "{channel}");
    }
    let mut got = Vec::new();
    while got.len() < channels.len() {
        match next_delivery(&mut sub).await {
            Delivery::Message(msg) => got.push(msg.get_payload::<String>().unwrap()),
            Delivery::Subscribed => {}
        }
    }
    got.sort();
    assert_eq!(got, ["m0", "m1", "m2", "m3"]);
    let _: () = redis::cmd("DEL")
        .arg(format!("{tag}:a"))
        .arg(format!("{tag}:b"))
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn standalone_commands_scripts_and_sharded_pubsub() {
    exercise(standalone(), "standalone").await;
}

#[tokio::test]
async fn cluster_commands_scripts_and_sharded_pubsub() {
    let Some(settings) = cluster() else { return };
    exercise(settings, "cluster").await;
}

#[tokio::test]
async fn sentinel_commands_scripts_and_sharded_pubsub() {
    let Some(settings) = sentinel() else { return };
    exercise(settings, "sentinel").await;
}

#[tokio::test]
async fn wait_replicas_counts_short_acknowledgements() {
    // The shared standalone Redis has no replica: WAIT 1 times out with 0.
    let mut settings = standalone();
    settings.min_replicas_acked = 1;
    settings.replication_timeout = Duration::from_millis(50);
    let redis = Redis::connect(&settings).await.unwrap();
    let mut conn = redis.conn();
    let key = unique("wait");
    let () = conn.set_ex(&key, 1, 60).await.unwrap();
    let started = Instant::now();
    let outcome = redis.wait_replicas(&mut conn, &key).await;
    assert_eq!(
        outcome,
        WaitOutcome::Short {
            acked: 0,
            wanted: 1
        }
    );
    assert!(started.elapsed() >= Duration::from_millis(40));

    let off = Redis::connect(&standalone()).await.unwrap();
    assert_eq!(
        off.wait_replicas(&mut off.conn(), &key).await,
        WaitOutcome::Skipped
    );
}

#[tokio::test]
async fn wait_replicas_on_the_cluster_reaches_the_keys_primary() {
    let Some(mut settings) = cluster() else {
        return;
    };
    settings.min_replicas_acked = 1;
    settings.replication_timeout = Duration::from_secs(2);
    let redis = Redis::connect(&settings).await.unwrap();
    let mut conn = redis.conn();
    for i in 0..6 {
        let key = format!("{}:{i}", unique("cwait"));
        let () = conn.set_ex(&key, 1, 60).await.unwrap();
        assert_eq!(
            redis.wait_replicas(&mut conn, &key).await,
            WaitOutcome::Acked(1),
            "{key}"
        );
    }
}

#[tokio::test]
async fn wait_replicas_on_sentinel() {
    let Some(mut settings) = sentinel() else {
        return;
    };
    settings.min_replicas_acked = 1;
    settings.replication_timeout = Duration::from_secs(2);
    let redis = Redis::connect(&settings).await.unwrap();
    let mut conn = redis.conn();
    let key = unique("swait");
    let () = conn.set_ex(&key, 1, 60).await.unwrap();
    assert!(matches!(redis.wait_replicas(&mut conn, &key).await, WaitOutcome::Acked(n) if n >= 1));
}

#[tokio::test]
async fn a_wrong_master_name_fails_the_start_clearly() {
    let Some(mut settings) = sentinel() else {
        return;
    };
    settings.master_name = Some("no-such-master".into());
    let err = Redis::connect(&settings).await.unwrap_err().to_string();
    assert!(
        err.contains("no-such-master") || err.contains("resolving the primary"),
        "{err}"
    );
}
