//! "Not ready yet, run again later": a handler reschedules its own task, atomically and fenced,
//! with the payload kept and the attempt count starting over.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use common::{keys_under, queue, redis_url, stop_signal, wait_until};
use vidq_queue::{Delivery, Depth, RedisQueue, Reschedule, TaskError};

/// How many times each payload runs before its handler stops rescheduling it.
const RUNS: usize = 5;
const AGAIN_IN: Duration = Duration::from_millis(40);

/// One run of a payload: its delivery, apalis's attempt, and when it started.
type Run = (Delivery, usize, Instant);

#[derive(Default)]
struct Log {
    runs: Mutex<HashMap<u32, Vec<Run>>>,
}

async fn step(
    n: u32,
    delivery: Data<Delivery>,
    again: Data<Reschedule>,
    attempt: Attempt,
    log: Data<Arc<Log>>,
) -> Result<(), BoxDynError> {
    let mut runs = log.runs.lock().unwrap();
    let mine = runs.entry(n).or_default();
    mine.push(((*delivery).clone(), attempt.current(), Instant::now()));
    if mine.len() < RUNS {
        again.after(AGAIN_IN);
    }
    Ok(())
}

/// The delivery count a token starts with (`<count>.<redis µs>`).
fn deliveries(token: &str) -> u64 {
    token.split('.').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rescheduled_task_runs_again_with_its_payload_and_fresh_attempts() {
    let url = redis_url();
    // A crash limit below the number of runs: reschedules must not count against it.
    let q: RedisQueue<u32> = queue(&url, "again", |mut c| {
        c.max_deliveries = 2;
        c
    })
    .await;
    q.enqueue_batch(&[1, 2, 3]).await.unwrap();
    let log = Arc::new(Log::default());
    let (stop, signal) = stop_signal();
    let worker = WorkerBuilder::new("again")
        .backend(q.clone())
        .data(log.clone())
        .concurrency(4)
        .build(step);
    let run = tokio::spawn(worker.run_until(signal));
    wait_until(Duration::from_secs(30), "every task to finish", || {
        let q = q.clone();
        let log = log.clone();
        async move {
            let all = log.runs.lock().unwrap().values().all(|r| r.len() >= RUNS);
            all && q.depth().await.unwrap() == Depth::default()
        }
    })
    .await;
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();

    let runs = log.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 3, "every payload ran: {:?}", runs.keys());
    for (n, mine) in runs.iter() {
        assert_eq!(mine.len(), RUNS, "payload {n} ran {} times", mine.len());
        for w in mine.windows(2) {
            let ((a, _, at_a), (b, _, at_b)) = (&w[0], &w[1]);
            assert_eq!(a.id, b.id, "the same task runs again, not a new one");
            assert!(
                deliveries(&b.token) > deliveries(&a.token),
                "a new token for each delivery: {a:?} then {b:?}"
            );
            assert!(
                *at_b >= *at_a + AGAIN_IN,
                "payload {n} ran again {:?} after, before its delay",
                at_b.duration_since(*at_a)
            );
            assert!(b.due_ms >= a.due_ms + 40, "due times: {a:?} then {b:?}");
        }
        for (d, attempt, _) in mine {
            assert_eq!((d.attempt, *attempt), (1, 1), "payload {n}: {d:?}");
        }
    }
    let prefix = q.settings().prefix.clone();
    assert_eq!(keys_under(&url, &prefix).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reschedule_is_fenced_like_an_ack() {
    let url = redis_url();
    let q: RedisQueue<u32> = queue(&url, "again-fence", |c| {
        c.with_lease(Duration::from_millis(300))
    })
    .await;
    q.enqueue(&7).await.unwrap();
    let first = q.claim(10).await.unwrap();
    assert_eq!(first.len(), 1);
    let d1 = first[0].0.clone();
    assert!(q.reschedule(&d1, Duration::ZERO).await.unwrap());
    assert!(
        !q.ack(&d1).await.unwrap(),
        "the rescheduled delivery is settled"
    );
    assert!(!q.reschedule(&d1, Duration::ZERO).await.unwrap());
    assert_eq!(
        q.depth().await.unwrap(),
        Depth {
            due: 1,
            ..Depth::default()
        }
    );

    let again = q.claim(10).await.unwrap();
    assert_eq!(again.len(), 1);
    let (d2, payload) = (again[0].0.clone(), again[0].1);
    assert_eq!((d2.id.as_str(), payload), (d1.id.as_str(), 7));
    assert_eq!(d2.attempt, 1);
    assert!(
        deliveries(&d2.token) > deliveries(&d1.token),
        "{d1:?} then {d2:?}"
    );

    // d2's lease expires and a new delivery takes the task over: d2 can no longer reschedule.
    let taken = Arc::new(Mutex::new(Vec::new()));
    wait_until(Duration::from_secs(5), "the lease to be taken back", || {
        let (q, taken) = (q.clone(), taken.clone());
        async move {
            let got = q.claim(10).await.unwrap();
            let found = !got.is_empty();
            taken.lock().unwrap().extend(got);
            found
        }
    })
    .await;
    let d3 = taken.lock().unwrap()[0].0.clone();
    // A lease that expired is a crash, not a failed attempt.
    assert_eq!(
        (d3.attempt, deliveries(&d3.token)),
        (1, deliveries(&d2.token) + 1)
    );
    assert!(!q.reschedule(&d2, Duration::from_secs(60)).await.unwrap());
    assert_eq!(q.depth().await.unwrap().leased, 1, "still d3's");
    assert!(q.ack(&d3).await.unwrap());
    assert_eq!(q.depth().await.unwrap(), Depth::default());
    let prefix = q.settings().prefix.clone();
    assert_eq!(keys_under(&url, &prefix).await, Vec::<String>::new());
}

async fn asks_then_fails(_n: u32, again: Data<Reschedule>) -> Result<(), TaskError> {
    again.after(Duration::from_millis(10));
    Err(TaskError::permanent("the input is unusable"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_wins_over_a_reschedule_request() {
    let url = redis_url();
    let q: RedisQueue<u32> = queue(&url, "again-err", |c| c).await;
    q.enqueue(&1).await.unwrap();
    let (stop, signal) = stop_signal();
    let worker = WorkerBuilder::new("again-err")
        .backend(q.clone())
        .build(asks_then_fails);
    let run = tokio::spawn(worker.run_until(signal));
    wait_until(Duration::from_secs(10), "the task to die", || {
        let q = q.clone();
        async move { q.depth().await.unwrap().dead == 1 }
    })
    .await;
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
    assert_eq!(
        q.depth().await.unwrap(),
        Depth {
            dead: 1,
            ..Depth::default()
        }
    );
    let dead = q.dead_tasks(0, 1).await.unwrap();
    assert!(dead[0].reason.contains("unusable"), "{}", dead[0].reason);
    q.purge_dead().await.unwrap();
    let prefix = q.settings().prefix.clone();
    assert_eq!(keys_under(&url, &prefix).await, Vec::<String>::new());
}
