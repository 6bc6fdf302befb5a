//! (f) Transfer: one large result through the worker into S3, against `curl` fetching the same
//! signed URL to /dev/null (the yardstick), and against plain `curl` clients doing what
//! the worker does on the same S3, which shows the rate this machine and store allow; the
//! worker's peak RSS and where the CPU goes.

mod peers;

use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};
use vidq_core::JobState;

use crate::ctx::{Ctx, unique};
use crate::procs::{S3, Sim, Worker, cpu_secs, status_kib};
use crate::report::Section;
use crate::scenario::end_to_end::{enqueue, producer};
use crate::stats::{fmt, ratio};

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;
/// The worker's defaults (`storage.part_size`, `storage.parts_in_flight`), for the curl peer.
const PART_SIZE: u64 = 8 * 1024 * 1024;
const PARTS_IN_FLIGHT: usize = 3;

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
    let sim_cpu = Cpu::of(sim.pid());
    let (curl_bytes, curl_secs) = peers::curl_to_devnull(&url).await?;
    let curl_sim_cpu = sim_cpu.used();
    let curl_rate = curl_bytes / curl_secs.max(1e-6) / MIB;
    let gib = curl_bytes / GIB;

    // The worker, end to end, with its defaults; then with unsigned request bodies.
    let signed = run_worker(ctx, &sim, &s3, &bucket, &[]).await?;
    anyhow::ensure!(
        signed.bytes == curl_bytes,
        "stored {} bytes, curl got {curl_bytes}",
        signed.bytes
    );
    let unsigned = run_worker(
        ctx,
        &sim,
        &s3,
        &bucket,
        &[("VIDQ__STORAGE__SIGN_PAYLOAD", "false")],
    )
    .await?;

    // Plain clients doing the worker's work on the same S3.
    let len = curl_bytes as u64;
    let pipe = peers::curl_pipe_put(&s3, &bucket, "peer/pipe.mp4", &url, len).await?;
    let source = ctx.scratch.join(unique("f-source"));
    peers::curl_to_file(&url, &source).await?;
    let (parts_secs, complete_secs) = peers::curl_multipart(
        &s3,
        &bucket,
        "peer/multipart.mp4",
        &source,
        len,
        PART_SIZE,
        PARTS_IN_FLIGHT,
    )
    .await?;
    let put_secs = peers::curl_put_file(&s3, &bucket, "peer/put.mp4", &source, len).await?;
    let single_max = len.to_string();
    let single_put = [("VIDQ__STORAGE__SINGLE_PUT_MAX", single_max.as_str())];
    let single = run_worker(ctx, &sim, &s3, &bucket, &single_put).await?;
    let mut stores = vec![StoreRun {
        kind: s3.kind,
        worker: signed.clone(),
        single,
        put_rate: curl_bytes / put_secs.max(1e-6) / MIB,
    }];
    // The second store: moto's S3 server, when installed (scripts/install-moto).
    drop(s3);
    let moto = S3::start_moto(ctx).await?;
    if let Some(moto) = &moto {
        let bucket = unique("bench-f");
        peers::create_bucket(moto, &bucket).await?;
        let run = run_worker(ctx, &sim, moto, &bucket, &[]).await?;
        anyhow::ensure!(
            run.bytes == curl_bytes,
            "moto: stored {} bytes, curl got {curl_bytes}",
            run.bytes
        );
        let put_secs = peers::curl_put_file(moto, &bucket, "peer/put.mp4", &source, len).await?;
        let single = run_worker(ctx, &sim, moto, &bucket, &single_put).await?;
        stores.push(StoreRun {
            kind: moto.kind,
            worker: run,
            single,
            put_rate: curl_bytes / put_secs.max(1e-6) / MIB,
        });
    }
    std::fs::remove_file(&source).ok();
    let multipart_rate = curl_bytes / (parts_secs + complete_secs) / MIB;
    let pipe_rate = curl_bytes / pipe / MIB;

    s.row("throughput (MiB/s)", fmt(signed.rate), fmt(curl_rate), "");
    s.row(
        "worker ÷ curl",
        ratio(signed.rate, curl_rate),
        "",
        "≥ 0.70×",
    );
    s.row(
        "worker peak RSS (MiB)",
        fmt(signed.peak_rss),
        "",
        "< 100 MiB",
    );
    s.row(
        "… with `storage.sign_payload = false` (MiB/s)",
        fmt(unsigned.rate),
        "",
        "",
    );
    s.row(
        "multipart upload of the file by curl, 8 MiB × 3 in flight (MiB/s)",
        "",
        fmt(multipart_rate),
        "",
    );
    s.row(
        "… of which CompleteMultipartUpload (s)",
        "",
        fmt(complete_secs),
        "",
    );
    s.row(
        "worker ÷ curl multipart",
        ratio(signed.rate, multipart_rate),
        "",
        "",
    );
    s.row(
        "`curl` GET piped into `curl` PUT, one PutObject (MiB/s)",
        "",
        fmt(pipe_rate),
        "",
    );
    s.row(
        "CPU per GiB: worker / s3s-fs / vidq-sim (s)",
        format!(
            "{} / {} / {}",
            fmt(signed.cpu.worker / gib),
            fmt(signed.cpu.s3 / gib),
            fmt(signed.cpu.sim / gib)
        ),
        "",
        "",
    );
    s.row(
        "… with `storage.sign_payload = false`",
        format!(
            "{} / {} / {}",
            fmt(unsigned.cpu.worker / gib),
            fmt(unsigned.cpu.s3 / gib),
            fmt(unsigned.cpu.sim / gib)
        ),
        "",
        "",
    );
    s.row(
        "vidq-sim CPU per GiB served to curl (s)",
        "",
        fmt(curl_sim_cpu / gib),
        "",
    );
    for store in &stores {
        let k = store.kind;
        let w = &store.worker;
        s.row(format!("{k}: vidq transfer (MiB/s)"), fmt(w.rate), "", "");
        s.row(
            format!(
                "{k}: vidq with `storage.single_put_max` ≥ the size: one streamed PutObject (MiB/s)"
            ),
            fmt(store.single.rate),
            "",
            "",
        );
        s.row(
            format!("{k}: one streamed PutObject of the file by curl (MiB/s)"),
            "",
            fmt(store.put_rate),
            "",
        );
        s.row(
            format!("{k}: vidq ÷ min(curl download, curl PUT)"),
            ratio(w.rate, curl_rate.min(store.put_rate)),
            "",
            "≥ 0.70×",
        );
        s.row(
            format!("{k}: worker peak RSS (MiB)"),
            fmt(w.peak_rss),
            "",
            "< 100 MiB",
        );
        s.row(
            format!("{k}: CPU per GiB worker / store / vidq-sim (s)"),
            format!(
                "{} / {} / {}",
                fmt(w.cpu.worker / gib),
                fmt(w.cpu.s3 / gib),
                fmt(w.cpu.sim / gib)
            ),
            "",
            "",
        );
    }
    if moto.is_none() {
        s.note("moto's S3 server is not installed (scripts/install-moto): s3s-fs only.");
    }
    s.note(
        "Per store: the worker with its defaults, against curl downloading the same signed \
         URL to /dev/null and curl uploading the same bytes from a local file in one streamed \
         PutObject (the store's fastest plain upload); the worker does both at once, so \
         min(download, upload) is its ceiling.",
    );
    s.note(
        "The worker's time is its job record's `transferring` → `succeeded` transitions: \
         download from vidq-sim, sha256, length check, and a multipart upload to s3s-fs on \
         local disk (8 MiB parts, 3 in flight, then CompleteMultipartUpload). The issue's peer \
         is curl downloading the same signed URL to /dev/null: it stores nothing.",
    );
    s.note(
        "The rows below it show what this machine and store allow. `curl multipart` is a plain \
         client uploading the same bytes from a local file (no download) the way the worker \
         does; s3s-fs then assembles the object by reading every part back, hashing it (MD5) \
         and writing it again, so CompleteMultipartUpload alone takes seconds per GiB. \
         The piped curls stream the download into one PutObject, which skips that \
         assembly but has no parallel parts, no per-part retry, and a 5 GiB ceiling. s3s-fs \
         hashes every byte with MD5 (twice for multipart), and with SHA-256 when the body is \
         signed: its CPU, not the worker's, sets the rate here.",
    );
    s.note(
        "`storage.sign_payload` defaults to true only for an `http://` endpoint such as this \
         s3s-fs (over HTTPS, TLS guards the bytes): signed, the worker and the store each \
         hash every part once more with SHA-256. The S3 requests of the curl peers are \
         unsigned. CPU is the user + system time of each process from the worker's start to the \
         job's end.",
    );
    Ok(s)
}

/// The worker's transfer into one store, and the store's fastest plain upload.
struct StoreRun {
    kind: &'static str,
    worker: WorkerRun,
    /// With `storage.single_put_max` at the result's size.
    single: WorkerRun,
    put_rate: f64,
}

/// One worker transfer: rate, bytes, peak RSS and the CPU the three processes used.
#[derive(Clone)]
struct WorkerRun {
    rate: f64,
    bytes: f64,
    peak_rss: f64,
    cpu: CpuUse,
}

#[derive(Clone)]
struct CpuUse {
    worker: f64,
    s3: f64,
    sim: f64,
}

/// CPU seconds a process used since [`Cpu::of`]; 0 when it cannot be read.
struct Cpu {
    pid: Option<u32>,
    start: f64,
}

impl Cpu {
    fn of(pid: Option<u32>) -> Self {
        let start = pid.and_then(|p| cpu_secs(p).ok()).unwrap_or(0.0);
        Self { pid, start }
    }

    fn used(&self) -> f64 {
        self.pid
            .and_then(|p| cpu_secs(p).ok())
            .map_or(0.0, |now| now - self.start)
    }
}

/// Starts a worker on a fresh prefix, runs one job through it, and measures its transfer.
async fn run_worker(
    ctx: &Ctx,
    sim: &Sim,
    s3: &S3,
    bucket: &str,
    overrides: &[(&str, &str)],
) -> anyhow::Result<WorkerRun> {
    let prefix = unique("bench-f");
    let mut env = vec![("VIDQ__JOBS__POLL_INTERVAL", "200ms")];
    env.extend_from_slice(overrides);
    let mut worker = Worker::start(ctx, &prefix, sim, s3, bucket, &env)?;
    let producer = producer(ctx, &prefix).await?;
    let (s3_cpu, sim_cpu) = (Cpu::of(s3.pid()), Cpu::of(sim.pid()));
    let worker_cpu = Cpu::of(Some(worker.pid));
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
    let cpu = CpuUse {
        worker: worker_cpu.used(),
        s3: s3_cpu.used(),
        sim: sim_cpu.used(),
    };
    let peak_rss = status_kib(worker.pid, "VmHWM")? as f64 / 1024.0;
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
    Ok(WorkerRun {
        rate: bytes / (ms.max(1) as f64 / 1000.0) / MIB,
        bytes,
        peak_rss,
        cpu,
    })
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
