//! (f) Transfer: one large result through the worker into S3, against `curl` fetching the same
//! signed URL to /dev/null; the worker's peak RSS.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};
use vidq_core::JobState;

use crate::ctx::{Ctx, unique};
use crate::procs::{S3, Sim, Worker, status_kib};
use crate::report::Section;
use crate::scenario::end_to_end::{enqueue, producer};
use crate::stats::{fmt, ratio};

const MIB: f64 = 1024.0 * 1024.0;

pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let size = ctx.size("64MiB", "1GiB");
    let mut s = Section::new(format!("(f) transfer: one {size} result"));
    let s3 = S3::start(ctx).await?;
    let bucket = s3.bucket("bench-f")?;
    let sim = Sim::start(
        ctx,
        &[
            "--processing-min",
            "0ms",
            "--processing-max",
            "0ms",
            "--result-size",
            size,
        ],
    )
    .await?;

    // curl, on a result URL of the simulator's own.
    let url = result_url(&sim).await?;
    let out = tokio::process::Command::new("curl")
        .args([
            "-s",
            "-f",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download} %{time_total}",
        ])
        .arg(&url)
        .kill_on_drop(true)
        .output()
        .await
        .context("running curl")?;
    anyhow::ensure!(out.status.success(), "curl failed: {}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text
        .split_whitespace()
        .filter_map(|v| v.parse::<f64>().ok());
    let (curl_bytes, curl_secs) = (it.next().unwrap_or(0.0), it.next().unwrap_or(0.0));
    let curl_rate = curl_bytes / curl_secs.max(1e-6) / MIB;

    // The worker, end to end.
    let prefix = unique("bench-f");
    let mut worker = Worker::start(
        ctx,
        &prefix,
        &sim,
        &s3,
        &bucket,
        &[("VIDQ__JOBS__POLL_INTERVAL", "200ms")],
    )?;
    let producer = producer(ctx, &prefix).await?;
    let ids = enqueue(&producer, &prefix, 1).await?;
    let id = ids.first().context("no job enqueued")?;
    let deadline = Instant::now() + Duration::from_secs(900);
    let job = loop {
        worker.check_running()?;
        let job = producer.status(id).await?.context("the job vanished")?;
        if job.state.is_terminal() {
            break job;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the transfer did not finish in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let peak = status_kib(worker.pid, "VmHWM")? as f64 / 1024.0;
    anyhow::ensure!(
        job.state == JobState::Succeeded,
        "the job ended {}: {:?}",
        job.state,
        job.error
    );
    let at = |state: JobState| {
        job.history
            .iter()
            .rev()
            .find(|t| t.to == state)
            .map(|t| t.at_ms)
            .with_context(|| format!("no transition to {state} in the history"))
    };
    let ms = at(JobState::Succeeded)?.saturating_sub(at(JobState::Transferring)?);
    let bytes = job.output.as_ref().map_or(0, |o| o.bytes) as f64;
    anyhow::ensure!(
        bytes == curl_bytes,
        "stored {bytes} bytes, curl got {curl_bytes}"
    );
    let rate = bytes / (ms.max(1) as f64 / 1000.0) / MIB;

    s.row("throughput (MiB/s)", fmt(rate), fmt(curl_rate), "");
    s.row("worker ÷ curl", ratio(rate, curl_rate), "", "≥ 0.70×");
    s.row("worker peak RSS (MiB)", fmt(peak), "", "< 100 MiB");
    s.note(
        "The worker's time is its job record's `transferring` → `succeeded` transitions: \
         download from vidq-sim, multipart upload to s3s-fs on local disk, sha256, length \
         check. curl only downloads the same signed URL to /dev/null (the peer column), so \
         the ratio includes s3s-fs writing every part to local disk; point the worker at a \
         faster S3 to isolate the download path.",
    );
    Ok(s)
}

/// Submits a job to the simulator directly and returns its signed result URL.
async fn result_url(sim: &Sim) -> anyhow::Result<String> {
    let http = reqwest::Client::new();
    let submitted: Value = http
        .post(format!("{}/api/v1/video2video/generate", sim.base_url))
        .bearer_auth("sim-key")
        .json(&json!({"type": "mx-v2v", "args": {
            "reference_video_url": "https://videos.example/bench/curl.mp4",
            "model": 2000, "duration": 5, "seed": -1, "resolution": "720p"}}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let uuid = submitted["data"]["img_uuid"]
        .as_str()
        .with_context(|| format!("no img_uuid in {submitted}"))?
        .to_owned();
    crate::wait::until(
        "the simulator's job to succeed",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            let detail: Value = http
                .get(format!("{}/api/v1/jobs/detail", sim.base_url))
                .query(&[("img_uuid", uuid.as_str())])
                .bearer_auth("sim-key")
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            Ok(detail["data"]["json"][0]["value"]
                .as_str()
                .map(str::to_owned))
        },
    )
    .await
}
