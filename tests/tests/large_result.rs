//! A 1 GiB result goes through the worker with bounded memory.

use std::time::{Duration, Instant};

use vidq_core::JobState;
use vidq_tests::{Sim, TestEnv, Worker, enqueue_jobs, rss_peak_kib, verify_outcomes, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_gib_video_transfers_with_peak_rss_under_100_mib() -> anyhow::Result<()> {
    let env = TestEnv::new("onegib").await?;
    let sim = Sim::start(&[
        "--processing-min",
        "100ms",
        "--processing-max",
        "200ms",
        "--result-size",
        "1GiB",
    ])
    .await?;
    let worker = Worker::start(
        "onegib-w",
        env.worker_env(&sim.base_url, &[("VIDQ__STORAGE__PART_SIZE", "8388608")]),
    )
    .await?;
    let pid = worker.pid().expect("worker pid");
    let jobs = enqueue_jobs(&env, 1).await?;
    let started = Instant::now();
    let job = wait_until(
        "the 1 GiB job to finish",
        Duration::from_secs(300),
        || async {
            let job = env.producer.status(&jobs[0].0).await?;
            Ok(job.filter(|j| j.state.is_terminal()))
        },
    )
    .await?;
    // VmHWM is the process's high-water mark: read while the worker still runs.
    let peak_kib = rss_peak_kib(pid)?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "1 GiB result: job {} in {secs:.1} s ({:.0} MiB/s end to end), worker peak RSS {:.1} MiB",
        job.state,
        1024.0 / secs,
        peak_kib as f64 / 1024.0
    );
    assert_eq!(
        job.state,
        JobState::Succeeded,
        "{:?}\n{}",
        job.error,
        worker.log()
    );
    assert!(peak_kib < 100 * 1024, "worker peak RSS {peak_kib} KiB");
    verify_outcomes(&env, &sim, &jobs).await?;
    env.cleanup().await?;
    Ok(())
}
