//! `vidq usage`: what the fleet has spent and where the jobs are.

use std::process::ExitCode;

use vidq_core::unix_ms_now;
use vidq_producer::{Producer, ProducerSettings};

pub(crate) async fn run(
    producer: &Producer,
    settings: &ProducerSettings,
) -> anyhow::Result<ExitCode> {
    let client = redis::Client::open(settings.redis.url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let prefix = &settings.redis.prefix;
    let day = unix_ms_now() / 86_400_000;
    let (submitted, spent, balance): (Option<u64>, Option<f64>, Option<String>) = redis::pipe()
        .get(format!("{prefix}:{{limits}}:submissions:{day}"))
        .get(format!("{prefix}:{{limits}}:spent:{day}"))
        .get(format!("{prefix}:{{limits}}:credits"))
        .query_async(&mut conn)
        .await?;
    println!("today (UTC)");
    println!("  submissions        {}", submitted.unwrap_or(0));
    println!("  credits spent      {}", spent.unwrap_or(0.0));
    match balance.and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok()) {
        Some(b) => {
            let age_s = unix_ms_now().saturating_sub(b["at_ms"].as_u64().unwrap_or(0)) / 1000;
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
