//! Writes (`INCR`) and publishes (`SPUBLISH`) every 20 ms for `VIDQ_PROBE_SECS` (default 30)
//! while a sharded subscription listens, and prints every error, every resubscription and the
//! longest gap between two successful writes and two received messages. Run it, fail the
//! deployment over meanwhile (`CLUSTER FAILOVER` on a replica, `SENTINEL FAILOVER <name>`, or a
//! SIGKILL of the primary), and read what the application saw.
//!
//! ```text
//! VIDQ_PROBE_MODE=cluster VIDQ_PROBE_URLS=redis://127.0.0.1:7000 cargo run -p vidq-redis --example failover_probe
//! VIDQ_PROBE_MODE=sentinel VIDQ_PROBE_URLS=redis://127.0.0.1:26379 VIDQ_PROBE_MASTER=mymaster cargo run -p vidq-redis --example failover_probe
//! ```

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use vidq_redis::{Delivery, Redis, RedisSettings};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let urls: Vec<String> = std::env::var("VIDQ_PROBE_URLS")?
        .split(',')
        .map(str::to_owned)
        .collect();
    let settings = match std::env::var("VIDQ_PROBE_MODE").as_deref() {
        Ok("sentinel") => RedisSettings::sentinel(
            urls,
            std::env::var("VIDQ_PROBE_MASTER").unwrap_or_else(|_| "mymaster".into()),
        ),
        Ok("cluster") => RedisSettings::cluster(urls),
        _ => RedisSettings::standalone(urls[0].clone()),
    };
    let secs: u64 = std::env::var("VIDQ_PROBE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let redis = Redis::connect(&settings).await?;
    let key = format!("probe:{{p}}:{}", std::process::id());
    let channel = format!("{key}:events");
    let start = Instant::now();
    let mut sub = redis.subscribe_sharded(vec![channel.clone()]);
    let listener = tokio::spawn(async move {
        let (mut got, mut last, mut gap) = (0u64, Instant::now(), Duration::ZERO);
        while let Some(d) = sub.next().await {
            match d {
                Delivery::Subscribed => {
                    println!("{:>6.2}s subscribed", start.elapsed().as_secs_f64())
                }
                Delivery::Message(msg) => {
                    if msg.get_payload_bytes() == b"end" {
                        break;
                    }
                    got += 1;
                    gap = gap.max(last.elapsed());
                    last = Instant::now();
                }
            }
        }
        (got, gap)
    });
    let mut conn = redis.conn();
    let (mut ok, mut errors, mut last_ok, mut gap) = (0u64, 0u64, Instant::now(), Duration::ZERO);
    while start.elapsed() < Duration::from_secs(secs) {
        let r: redis::RedisResult<i64> = redis::cmd("INCR").arg(&key).query_async(&mut conn).await;
        let p: redis::RedisResult<i64> = redis::cmd("SPUBLISH")
            .arg(&channel)
            .arg("x")
            .query_async(&mut conn)
            .await;
        match (r, p) {
            (Ok(_), Ok(_)) => {
                ok += 1;
                gap = gap.max(last_ok.elapsed());
                last_ok = Instant::now();
            }
            (r, p) => {
                errors += 1;
                println!(
                    "{:>6.2}s error: {:?} {:?}",
                    start.elapsed().as_secs_f64(),
                    r.err(),
                    p.err()
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _: redis::RedisResult<i64> = redis::cmd("SPUBLISH")
        .arg(&channel)
        .arg("end")
        .query_async(&mut conn)
        .await;
    let (got, msg_gap) = tokio::time::timeout(Duration::from_secs(5), listener)
        .await
        .map_err(|_| "listener did not finish")??;
    println!(
        "writes ok {ok}, errors {errors}, longest write gap {:.2}s; messages received {got}, longest message gap {:.2}s",
        gap.as_secs_f64(),
        msg_gap.as_secs_f64()
    );
    Ok(())
}
