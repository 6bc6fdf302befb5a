//! `vidq usage`: what the fleet has spent and where the jobs are.

use std::collections::HashMap;
use std::process::ExitCode;

use vidq_producer::{Producer, ProducerSettings};

const DAY_MS: u64 = 86_400_000;

pub(crate) async fn run(
    producer: &Producer,
    settings: &ProducerSettings,
) -> anyhow::Result<ExitCode> {
    let mut conn = producer.redis_layer().conn();
    let prefix = &settings.redis.prefix;
    // Today is Redis's day (the workers' limits count by Redis's clock, not this host's).
    type Reply = ((u64, u64), HashMap<String, String>, Option<String>);
    let ((secs, micros), today, balance): Reply = redis::pipe()
        .cmd("TIME")
        .hgetall(format!("{prefix}:{{limits}}:today"))
        .get(format!("{prefix}:{{limits}}:credits"))
        .query_async(&mut conn)
        .await?;
    let now = secs * 1000 + micros / 1000;
    // Figures of another day are yesterday's: nothing submitted today yet.
    let day = (now / DAY_MS).to_string();
    let figure = |name: &str| {
        today
            .get(name)
            .filter(|_| today.get("day") == Some(&day))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    println!("today (UTC)");
    println!("  submissions        {}", figure("submissions"));
    println!("  credits spent      {}", figure("spent"));
    match balance.and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok()) {
        Some(b) => {
            let age_s = now.saturating_sub(b["at_ms"].as_u64().unwrap_or(0)) / 1000;
            println!("  credit balance     {} (read {age_s}s ago)", b["count"]);
            if let Some(limit) = b["queue_limit"].as_u64() {
                println!("  plan queue limit   {limit}");
            }
        }
        None => println!("  credit balance     unknown (no worker has read it yet)"),
    }
    println!("jobs");
    for (state, n) in producer.store().state_counts().await? {
        let how = if state.is_terminal() { "ended" } else { "now" };
        println!("  {:<12} {n:>8} {how}", state.as_str());
    }
    println!("queues             due  scheduled     leased       dead");
    for kind in Producer::kinds() {
        let d = producer.depth(*kind).await?;
        println!(
            "  {:<12} {:>8} {:>10} {:>10} {:>10}",
            kind.queue_name(),
            d.due,
            d.scheduled,
            d.leased,
            d.dead
        );
    }
    Ok(ExitCode::SUCCESS)
}
