//! The create script run twice with the same arguments (what a client library does when it
//! resends a script whose reply it lost, say across a failover) creates the job once and says
//! "created" both times; a second create of the same id by another call is still refused.

mod common;

use common::harness;
use redis::AsyncCommands;
use vidq_core::{JobId, JobState};

const CREATE: &str = include_str!("../src/job/lua/create.lua");

async fn run(h: &common::Harness, id: &JobId, nonce: &str) -> Vec<i64> {
    let p = format!("{}:{{jobs}}:", h.prefix);
    let created_at = "1764650000000";
    let id = id.to_string();
    let mut conn = h.conn().await;
    redis::Script::new(CREATE)
        .key(format!("{p}all"))
        .key(format!("{p}active"))
        .key(format!("{p}unfinished"))
        .key(format!("{p}tenants"))
        .key(format!("{p}tenant:-"))
        .key(format!("{p}tenant:-:unfinished"))
        .key(format!("{p}tenant:-:today"))
        .key(format!("{p}states"))
        .key(format!("{p}job:{id}"))
        .key(format!("{p}job:{id}:history"))
        .arg("")
        .arg(60_000)
        .arg(format!("{p}events"))
        .arg(0)
        .arg(0)
        .arg(0)
        .arg(1)
        .arg(nonce)
        .arg(format!("{p}state:"))
        .arg("0")
        .arg(created_at)
        .arg(&id)
        .arg("{}")
        .arg(3)
        .arg("id")
        .arg(&id)
        .arg("state")
        .arg("queued")
        .arg("created_at")
        .arg(created_at)
        .arg(0)
        .invoke_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_create_run_again_counts_once_and_another_create_is_refused() {
    let h = harness().await;
    let id = JobId::new();
    assert_eq!(run(&h, &id, "call-1").await[2..], [1]);
    assert_eq!(
        run(&h, &id, "call-1").await[2..],
        [1],
        "the same call again"
    );
    let counts = h.store.state_counts().await.unwrap();
    assert_eq!(counts.get(&JobState::Queued), Some(&1), "counted once");
    assert_eq!(h.store.unfinished_count(None).await.unwrap(), 1);
    let mut conn = h.conn().await;
    let all: u64 = conn
        .zcard(format!("{}:{{jobs}}:all", h.prefix))
        .await
        .unwrap();
    assert_eq!(all, 1);
    assert_eq!(
        run(&h, &id, "call-2").await[2..],
        [0],
        "another call: exists"
    );
    h.cleanup().await;
}
