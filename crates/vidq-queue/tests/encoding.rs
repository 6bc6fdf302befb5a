//! The per-task hashes of a queue are Redis hashtables from their first task on, never the
//! listpack Redis gives small hashes (searched field by field on each access: the cause of the
//! bimodal drain rate of `examples/throughput`), and an emptied queue still leaves no key.

mod common;

use common::{admin, queue, redis_url};
use vidq_queue::{Depth, RedisQueue};

async fn encoding(conn: &mut vidq_redis::Conn, key: &str) -> Option<String> {
    redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap()
}

async fn exists(conn: &mut vidq_redis::Conn, key: &str) -> bool {
    let n: i64 = redis::cmd("EXISTS")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap();
    n == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_hashes_are_hashtables_from_the_first_task_and_go_with_the_last() {
    let url = redis_url();
    let q: RedisQueue<u32> = queue(&url, "encoding", |c| c).await;
    let mut conn = admin(&url).await;
    let key = |kind: &str| format!("{}:{{encoding}}:{kind}", q.settings().prefix);
    let id = q.enqueue(&7).await.unwrap();
    assert_eq!(
        encoding(&mut conn, &key("data")).await.as_deref(),
        Some("hashtable"),
        "payloads of one waiting task"
    );
    let claimed = q.claim(1).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].0.id, id);
    assert_eq!(
        encoding(&mut conn, &key("dlv")).await.as_deref(),
        Some("hashtable"),
        "deliveries of one leased task"
    );
    assert!(q.ack(&claimed[0].0).await.unwrap());
    assert_eq!(q.depth().await.unwrap(), Depth::default());
    for kind in ["data", "dlv", "due", "lease"] {
        assert!(!exists(&mut conn, &key(kind)).await, "{kind} left behind");
    }
}
