//! Fair queues: claims serve the groups with due work in turn (by weight), highest priority
//! first within a group; tasks that come back keep their place; depth, dead tasks, retries and
//! two claimers work as on any queue.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::{keys_under, queue, redis_url, wait_until};
use vidq_queue::{Delivery, Depth, Place, Priority, QueueConfig, RedisQueue};

/// A task names its group and number, e.g. `a:17`.
type Payload = String;

fn fair(weights: &[(&str, u32)]) -> impl FnOnce(QueueConfig) -> QueueConfig {
    let weights: BTreeMap<String, u32> =
        weights.iter().map(|(g, w)| ((*g).to_owned(), *w)).collect();
    move |c| c.with_fair_share(weights)
}

async fn push(q: &RedisQueue<Payload>, group: &str, n: usize, priority: Priority) {
    for i in 0..n {
        let id = format!("{group}:{i}:{priority:?}");
        q.enqueue_unique_in(&id, &id, Duration::ZERO, Place::new(group, priority))
            .await
            .unwrap();
    }
}

/// Claims one task at a time and acks it, `n` times; returns the payloads in claim order.
async fn drain(q: &RedisQueue<Payload>, n: usize) -> Vec<String> {
    let mut order = Vec::new();
    for _ in 0..n {
        let got = q.claim(1).await.unwrap();
        let Some((d, p)) = got.into_iter().next() else {
            break;
        };
        assert!(q.ack(&d).await.unwrap());
        order.push(p);
    }
    order
}

fn group_of(p: &str) -> &str {
    p.split(':').next().unwrap()
}

async fn assert_no_keys_left(q: &RedisQueue<Payload>) {
    let left = keys_under(&redis_url(), &q.settings().prefix).await;
    assert!(left.is_empty(), "keys left behind: {left:?}");
}

#[tokio::test]
async fn a_burst_of_one_group_does_not_starve_another_that_came_after() {
    let q: RedisQueue<Payload> = queue(&redis_url(), "fair-rr", fair(&[])).await;
    push(&q, "a", 200, Priority::Normal).await;
    push(&q, "b", 10, Priority::Normal).await;
    push(&q, "c", 10, Priority::Normal).await;
    let order = drain(&q, 220).await;
    assert_eq!(order.len(), 220);
    // All of b's and c's within the first 30 claims: each group in turn.
    let last_b = order.iter().rposition(|p| group_of(p) == "b").unwrap();
    let last_c = order.iter().rposition(|p| group_of(p) == "c").unwrap();
    assert!(
        last_b < 30 && last_c < 30,
        "b's last at {last_b}, c's at {last_c}: {:?}",
        &order[..40]
    );
    // Within a group, push order.
    let a: Vec<&String> = order.iter().filter(|p| group_of(p) == "a").collect();
    let expected: Vec<String> = (0..200).map(|i| format!("a:{i}:Normal")).collect();
    assert!(
        a.iter().zip(&expected).all(|(x, y)| *x == y),
        "a out of order"
    );
    assert_eq!(q.depth().await.unwrap(), Depth::default());
    assert_no_keys_left(&q).await;
}

#[tokio::test]
async fn weights_share_claims_in_proportion() {
    let q: RedisQueue<Payload> = queue(&redis_url(), "fair-w", fair(&[("a", 3)])).await;
    push(&q, "a", 100, Priority::Normal).await;
    push(&q, "b", 100, Priority::Normal).await;
    let order = drain(&q, 80).await;
    let a = order.iter().filter(|p| group_of(p) == "a").count();
    // 3:1 while both have work: 60 of 80, give or take the first turn.
    assert!((58..=62).contains(&a), "a got {a} of 80");
    q.purge_dead().await.unwrap();
}

#[tokio::test]
async fn priorities_order_work_within_a_group_not_across_groups() {
    let q: RedisQueue<Payload> = queue(&redis_url(), "fair-prio", fair(&[])).await;
    push(&q, "a", 3, Priority::Low).await;
    push(&q, "a", 3, Priority::Normal).await;
    push(&q, "a", 3, Priority::High).await;
    push(&q, "b", 3, Priority::Low).await;
    let order = drain(&q, 12).await;
    let a: Vec<&str> = order
        .iter()
        .filter(|p| group_of(p) == "a")
        .map(|p| p.rsplit(':').next().unwrap())
        .collect();
    assert_eq!(
        a,
        [
            "High", "High", "High", "Normal", "Normal", "Normal", "Low", "Low", "Low"
        ]
    );
    // b's low-priority work still gets its turns: a's priorities order only a's work.
    let last_b = order.iter().rposition(|p| group_of(p) == "b").unwrap();
    assert!(last_b <= 6, "{order:?}");
    assert_no_keys_left(&q).await;
}

#[tokio::test]
async fn a_held_queue_claims_nothing_and_the_held_task_keeps_its_turn_and_place() {
    let q: RedisQueue<Payload> = queue(&redis_url(), "fair-hold", fair(&[])).await;
    push(&q, "a", 50, Priority::Normal).await;
    // a's first is served; b arrives; b's turn comes next.
    let (first, _) = q.claim(1).await.unwrap().pop().unwrap();
    assert!(q.ack(&first).await.unwrap());
    push(&q, "b", 2, Priority::Normal).await;
    let (d, p) = q.claim(1).await.unwrap().pop().unwrap();
    assert_eq!(p, "b:0:Normal");
    // The shared resource is busy: back in place, the queue held.
    assert!(q.hold_queue(&d, Duration::from_millis(400)).await.unwrap());
    assert!(
        q.claim(5).await.unwrap().is_empty(),
        "a held queue gave work"
    );
    // Nothing can be claimed before the hold ends: all of it counts as scheduled, also for a
    // handle that does not claim (a producer's, without the weights).
    let held = q.depth().await.unwrap();
    assert_eq!((held.due, held.scheduled), (0, 51));
    let mut plain = q.settings().clone();
    plain.fair = None;
    let producer: RedisQueue<Payload> = common::connect(&redis_url(), plain).await.unwrap();
    assert_eq!(producer.depth().await.unwrap(), held);
    // A hold ends early when the resource frees up.
    assert!(q.end_hold().await.unwrap());
    assert!(!q.end_hold().await.unwrap());
    assert_eq!(q.depth().await.unwrap().due, 51);
    assert!(
        q.hold_queue(
            &q.claim(1).await.unwrap().pop().unwrap().0,
            Duration::from_millis(400)
        )
        .await
        .unwrap()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut again: Vec<(Delivery, Payload)> = Vec::new();
    while again.is_empty() {
        assert!(std::time::Instant::now() < deadline, "the hold never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
        again = q.claim(1).await.unwrap();
    }
    let (d, p) = again.pop().unwrap();
    assert_eq!(p, "b:0:Normal", "the held task lost its turn");
    assert!(d.attempt == 1, "a hold is no failed attempt");
    assert!(q.ack(&d).await.unwrap());
    // Still b's share afterwards: a, b, a... not a's 49 first.
    let order = drain(&q, 3).await;
    assert_eq!(order, ["a:1:Normal", "b:1:Normal", "a:2:Normal"]);
    q.purge_dead().await.unwrap();
}

#[tokio::test]
async fn delayed_and_rescheduled_tasks_wait_then_take_their_turn_in_their_group() {
    let q: RedisQueue<Payload> = queue(&redis_url(), "fair-delay", fair(&[])).await;
    push(&q, "a", 30, Priority::Normal).await;
    q.enqueue_unique_in(
        "b:late",
        &"b:late".to_owned(),
        Duration::from_millis(300),
        Place::new("b", Priority::Normal),
    )
    .await
    .unwrap();
    let depth = q.depth().await.unwrap();
    assert_eq!((depth.due, depth.scheduled), (30, 1));
    let early = drain(&q, 2).await;
    assert!(early.iter().all(|p| group_of(p) == "a"), "{early:?}");
    // A task rescheduled for later gives its turn away meanwhile.
    let (d, p) = q.claim(1).await.unwrap().pop().unwrap();
    assert_eq!(p, "a:2:Normal");
    assert!(q.reschedule(&d, Duration::from_millis(300)).await.unwrap());
    wait_until(
        Duration::from_secs(5),
        "the delayed tasks to be due",
        || {
            let q = q.clone();
            async move { q.depth().await.unwrap().scheduled == 0 }
        },
    )
    .await;
    let next = drain(&q, 3).await;
    assert!(
        next.contains(&"b:late".to_owned()),
        "b's delayed task did not get the next turns: {next:?}"
    );
    assert!(
        next.contains(&"a:2:Normal".to_owned()),
        "the rescheduled task lost its place in a: {next:?}"
    );
    drain(&q, 100).await;
    assert_no_keys_left(&q).await;
}

#[tokio::test]
async fn grouped_tasks_die_are_retried_and_come_back_in_their_group() {
    let q: RedisQueue<Payload> = queue(&redis_url(), "fair-dead", |c| {
        let mut c = fair(&[])(c).with_lease(Duration::from_millis(200));
        c.max_deliveries = 1;
        c
    })
    .await;
    push(&q, "b", 1, Priority::High).await;
    // Claimed, its worker vanishes: the next claim buries it (one crash allowed).
    assert_eq!(q.claim(1).await.unwrap().len(), 1);
    wait_until(Duration::from_secs(5), "the task to die", || {
        let q = q.clone();
        async move {
            q.claim(1).await.unwrap();
            q.depth().await.unwrap().dead == 1
        }
    })
    .await;
    let dead = q.dead_tasks(0, 10).await.unwrap();
    assert_eq!(dead[0].id, "b:0:High");
    assert!(dead[0].reason.contains("vanished"), "{}", dead[0].reason);
    push(&q, "a", 5, Priority::Normal).await;
    assert_eq!(q.retry_all_dead().await.unwrap(), 1);
    let order = drain(&q, 6).await;
    assert_eq!(order.len(), 6);
    assert!(order[..2].contains(&"b:0:High".to_owned()), "{order:?}");
    // Handed back by a clean stop: due again, in place.
    push(&q, "a", 1, Priority::Normal).await;
    let (d, _) = q.claim(1).await.unwrap().pop().unwrap();
    assert!(q.release(&d).await.unwrap());
    assert_eq!(q.depth().await.unwrap().due, 1);
    drain(&q, 1).await;
    // A purged dead task leaves nothing behind either.
    push(&q, "c", 1, Priority::Low).await;
    q.claim(1).await.unwrap();
    wait_until(Duration::from_secs(5), "the task to die", || {
        let q = q.clone();
        async move {
            q.claim(1).await.unwrap();
            q.depth().await.unwrap().dead == 1
        }
    })
    .await;
    assert_eq!(q.purge_dead().await.unwrap(), 1);
    assert_no_keys_left(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_claimers_share_one_fair_order_and_never_take_a_task_twice() {
    let url = redis_url();
    let q: RedisQueue<Payload> = queue(&url, "fair-two", fair(&[])).await;
    let other: RedisQueue<Payload> = common::connect(&url, q.settings().clone()).await.unwrap();
    push(&q, "a", 200, Priority::Normal).await;
    push(&q, "b", 20, Priority::Normal).await;
    let run = |q: RedisQueue<Payload>| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let claimed = q.claim(1).await.unwrap();
                let Some((d, p)) = claimed.into_iter().next() else {
                    return got;
                };
                // The order in which claims were granted, by Redis's clock and token.
                got.push((
                    d.token.split('.').nth(1).unwrap().parse::<u64>().unwrap(),
                    p,
                ));
                assert!(q.ack(&d).await.unwrap());
            }
        })
    };
    let (x, y) = tokio::join!(run(q.clone()), run(other));
    let mut all: Vec<(u64, String)> = x.unwrap().into_iter().chain(y.unwrap()).collect();
    assert_eq!(all.len(), 220);
    let unique: HashSet<&String> = all.iter().map(|(_, p)| p).collect();
    assert_eq!(unique.len(), 220, "a task was claimed twice");
    all.sort();
    let last_b = all.iter().rposition(|(_, p)| group_of(p) == "b").unwrap();
    assert!(last_b < 45, "b's last of 20 was claim {last_b}");
    assert_no_keys_left(&q).await;
}
