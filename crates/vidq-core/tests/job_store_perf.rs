//! Throughput of the job store on the Redis at `VIDQ_TEST_REDIS_URL`. Ignored by default:
//! `cargo test -p vidq-core --release --test job_store_perf -- --ignored --nocapture`.

mod common;

use std::time::Instant;

use common::{harness, queued};
use vidq_core::{JobState::*, Patch, Transitioned};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run on demand"]
async fn lifecycle_throughput() {
    const JOBS: usize = 2_000;
    const CONCURRENCY: usize = 32;
    let h = harness().await;
    let records: Vec<_> = (0..JOBS).map(|_| queued()).collect();
    let ids: Vec<_> = records.iter().map(|r| r.id).collect();

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in records.chunks(JOBS / CONCURRENCY) {
        let store = h.store.clone();
        let chunk = chunk.to_vec();
        tasks.spawn(async move {
            for job in chunk {
                store.create(&job).await.unwrap();
                let steps = [
                    (Queued, Submitting),
                    (Submitting, Processing),
                    (Processing, Transferring),
                    (Transferring, Succeeded),
                ];
                for (from, to) in steps {
                    let moved = store
                        .transition(&job.id, &[from], to, Patch::new())
                        .await
                        .unwrap();
                    assert!(matches!(moved, Transitioned::Applied { .. }));
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let lifecycle = started.elapsed();

    let started = Instant::now();
    for id in &ids {
        assert_eq!(h.store.get(id).await.unwrap().unwrap().state, Succeeded);
    }
    let gets = started.elapsed();
    println!(
        "{JOBS} jobs x (create + 4 transitions), {CONCURRENCY} concurrent: {:.0?} = {:.0} store ops/s",
        lifecycle,
        (JOBS * 5) as f64 / lifecycle.as_secs_f64()
    );
    println!(
        "{JOBS} sequential gets: {:.0?} = {:.0} µs/get",
        gets,
        gets.as_micros() as f64 / JOBS as f64
    );
    h.cleanup().await;
}
