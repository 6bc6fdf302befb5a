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
    let size = std::env::var("VIDQ_BENCH_TRANSFER_SIZE")
        .unwrap_or_else(|_| ctx.size("64MiB", "1GiB").to_owned());
    let runs = ctx.size(1, 3);
    let mut s = Section::new(format!("(f) transfer: one {size} result"));
    let load_before = load_average();
    let sim = Sim::start(
        ctx,
        &[
            "--processing-min",
            "0ms",
            "--processing-max",
            "0ms",
            "--result-size",
            &size,
        ],
    )
    .await?;
    let url = result_url(&sim).await?;
    let source = ctx.scratch.join(unique("f-source"));
    peers::curl_to_file(&url, &source).await?;
    let len = std::fs::metadata(&source)?.len();
    let bytes = len as f64;
    let gib = bytes / GIB;

    let mut stores = vec![("s3s-fs", StoreRuns::default())];
    let moto = S3::start_moto(ctx).await?.is_some();
    if moto {
        stores.push(("moto", StoreRuns::default()));
    }

    let single_max = len.to_string();
    let single_put = [("VIDQ__STORAGE__SINGLE_PUT_MAX", single_max.as_str())];
    let multipart = [("VIDQ__STORAGE__SINGLE_PUT_MAX", "0")];
    let unsigned = [
        ("VIDQ__STORAGE__SINGLE_PUT_MAX", "0"),
        ("VIDQ__STORAGE__SIGN_PAYLOAD", "false"),
    ];
    let (mut download, mut curl_sim_cpu) = (Vec::new(), Vec::new());
    // Every measurement once per round, so a busy moment of the machine weighs on all alike.
    for _ in 0..runs {
        let sim_cpu = Cpu::of(sim.pid());
        let (got, secs) = peers::curl_to_devnull(&url).await?;
        anyhow::ensure!(got == bytes, "curl got {got} bytes, the file has {len}");
        curl_sim_cpu.push(sim_cpu.used() / gib);
        download.push(bytes / secs.max(1e-6) / MIB);
        // A fresh store for every measurement: moto keeps about the size of every object it
        // was sent, even deleted, and slows down as it grows.
        for (kind, runs) in &mut stores {
            let kind = *kind;
            runs.defaults
                .push(run_worker(ctx, &sim, kind, &[], bytes).await?);
            runs.multipart
                .push(run_worker(ctx, &sim, kind, &multipart, bytes).await?);
            runs.unsigned
                .push(run_worker(ctx, &sim, kind, &unsigned, bytes).await?);
            runs.single
                .push(run_worker(ctx, &sim, kind, &single_put, bytes).await?);
            let (s3, bucket) = fresh_store(ctx, kind).await?;
            let store_cpu = Cpu::of(s3.pid());
            let secs = peers::curl_put_file(&s3, &bucket, "peer/put.mp4", &source, len).await?;
            runs.put.push(bytes / secs.max(1e-6) / MIB);
            runs.put_cpu.push(store_cpu.used() / gib);
            peers::delete_object(&s3, &bucket, "peer/put.mp4").await?;
            drop(s3);
            let (s3, bucket) = fresh_store(ctx, kind).await?;
            let store_cpu = Cpu::of(s3.pid());
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
            runs.multipart_put
                .push(bytes / (parts_secs + complete_secs).max(1e-6) / MIB);
            runs.complete.push(complete_secs);
            runs.multipart_cpu.push(store_cpu.used() / gib);
            peers::delete_object(&s3, &bucket, "peer/multipart.mp4").await?;
        }
    }
    std::fs::remove_file(&source).ok();
    let load_after = load_average();
    let download = median(&download);

    s.row(
        "curl download of the signed URL to /dev/null (MiB/s)",
        "",
        fmt(download),
        "",
    );
    s.row(
        "vidq-sim CPU per GiB served to curl (s)",
        "",
        fmt(median(&curl_sim_cpu)),
        "",
    );
    for (k, runs) in &stores {
        let put = median(&runs.put);
        let ceiling = download.min(put);
        let defaults = WorkerRun::median(&runs.defaults);
        let single = WorkerRun::median(&runs.single);
        let multi = WorkerRun::median(&runs.multipart);
        let unsigned = WorkerRun::median(&runs.unsigned);
        let multipart_put = median(&runs.multipart_put);
        s.row(
            format!("{k}: vidq transfer, defaults (MiB/s)"),
            fmt(defaults.rate),
            "",
            "",
        );
        s.row(
            format!("{k}: one streamed PutObject of the file by curl (MiB/s)"),
            "",
            fmt(put),
            "",
        );
        s.row(
            format!("{k}: vidq ÷ min(curl download, curl PUT)"),
            ratio(defaults.rate, ceiling),
            "",
            "≥ 0.70×",
        );
        s.row(
            format!("{k}: worker peak RSS (MiB)"),
            fmt(defaults.peak_rss),
            "",
            "< 100 MiB",
        );
        s.row(
            format!("{k}: CPU per GiB worker / {k} / vidq-sim (s)"),
            defaults.cpu_row(gib),
            "",
            "",
        );
        s.row(
            format!("{k}: {k} CPU per GiB for curl's PUT (s)"),
            "",
            fmt(median(&runs.put_cpu)),
            "",
        );
        s.row(
            format!("{k}: vidq multipart (`single_put_max = 0`) (MiB/s)"),
            fmt(multi.rate),
            "",
            "",
        );
        s.row(
            format!("{k}: … ÷ min(curl download, curl PUT)"),
            ratio(multi.rate, ceiling),
            "",
            "",
        );
        s.row(
            format!("{k}: … worker peak RSS (MiB)"),
            fmt(multi.peak_rss),
            "",
            "< 100 MiB",
        );
        s.row(
            format!("{k}: … CPU per GiB worker / {k} / vidq-sim (s)"),
            multi.cpu_row(gib),
            "",
            "",
        );
        s.row(
            format!("{k}: … with `storage.sign_payload = false` (MiB/s)"),
            fmt(unsigned.rate),
            "",
            "",
        );
        s.row(
            format!("{k}: … … CPU per GiB worker / {k} / vidq-sim (s)"),
            unsigned.cpu_row(gib),
            "",
            "",
        );
        s.row(
            format!(
                "{k}: multipart upload of the file by curl, {} MiB × {PARTS_IN_FLIGHT} in flight (MiB/s)",
                PART_SIZE / (1024 * 1024)
            ),
            "",
            fmt(multipart_put),
            "",
        );
        s.row(
            format!("{k}: … of which CompleteMultipartUpload (s)"),
            "",
            fmt(median(&runs.complete)),
            "",
        );
        s.row(
            format!("{k}: … {k} CPU per GiB (s)"),
            "",
            fmt(median(&runs.multipart_cpu)),
            "",
        );
        s.row(
            format!("{k}: vidq multipart ÷ curl multipart"),
            ratio(multi.rate, multipart_put),
            "",
            "",
        );
        s.row(
            format!("{k}: vidq, one streamed PutObject (`single_put_max` ≥ the size) (MiB/s)"),
            fmt(single.rate),
            "",
            "",
        );
        s.row(
            format!("{k}: … ÷ min(curl download, curl PUT)"),
            ratio(single.rate, ceiling),
            "",
            "",
        );
        s.row(
            format!("{k}: … CPU per GiB worker / {k} / vidq-sim (s)"),
            single.cpu_row(gib),
            "",
            "",
        );
    }
    if !moto {
        s.note("moto's S3 server is not installed (scripts/install-moto): s3s-fs only.");
    }
    s.note(format!(
        "Medians of {runs} rounds; each round runs every line once. Load average (1 min) \
         {load_before} before, {load_after} after."
    ));
    s.note(
        "Per store: the worker with its defaults, against curl downloading the same signed \
         URL to /dev/null and curl uploading the same bytes from a local file in one streamed \
         PutObject (the store's fastest plain upload); the worker does both at once, so \
         min(download, upload) is its ceiling. The worker's time is its job record's \
         `transferring` → `succeeded` transitions; CPU is the user + system time of each \
         process from the worker's start to the job's end.",
    );
    s.note(
        "`curl multipart` is a plain client uploading the same bytes from a local file (no \
         download) the way the worker's multipart upload does: the store's own ceiling for a \
         multipart upload. s3s-fs assembles the object at CompleteMultipartUpload by reading \
         every part back, hashing it (MD5) and writing it again; moto joins the parts in \
         memory. The S3 requests of the curl peers are unsigned.",
    );
    Ok(s)
}

/// A store of `kind` (`s3s-fs` or `moto`) just started, and an empty bucket on it.
async fn fresh_store(ctx: &Ctx, kind: &str) -> anyhow::Result<(S3, String)> {
    if kind == "moto" {
        let moto = S3::start_moto(ctx)
            .await?
            .context("moto's S3 server is no longer installed")?;
        let bucket = unique("bench-f");
        peers::create_bucket(&moto, &bucket).await?;
        Ok((moto, bucket))
    } else {
        let s3 = S3::start(ctx).await?;
        let bucket = s3.bucket("bench-f")?;
        Ok((s3, bucket))
    }
}

/// Every round's measurements of one store.
#[derive(Default)]
struct StoreRuns {
    defaults: Vec<WorkerRun>,
    multipart: Vec<WorkerRun>,
    unsigned: Vec<WorkerRun>,
    single: Vec<WorkerRun>,
    put: Vec<f64>,
    put_cpu: Vec<f64>,
    multipart_put: Vec<f64>,
    complete: Vec<f64>,
    multipart_cpu: Vec<f64>,
}

/// The middle value (the upper one of an even count); 0 when empty.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// The 1-minute load average, as /proc/loadavg shows it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
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

impl WorkerRun {
    /// Each figure's median over `runs` (figures of different runs may be mixed).
    fn median(runs: &[WorkerRun]) -> WorkerRun {
        let of = |f: fn(&WorkerRun) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
        WorkerRun {
            rate: of(|r| r.rate),
            bytes: of(|r| r.bytes),
            peak_rss: of(|r| r.peak_rss),
            cpu: CpuUse {
                worker: of(|r| r.cpu.worker),
                s3: of(|r| r.cpu.s3),
                sim: of(|r| r.cpu.sim),
            },
        }
    }

    /// `worker / store / vidq-sim` CPU seconds per GiB.
    fn cpu_row(&self, gib: f64) -> String {
        format!(
            "{} / {} / {}",
            fmt(self.cpu.worker / gib),
            fmt(self.cpu.s3 / gib),
            fmt(self.cpu.sim / gib)
        )
    }
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
    kind: &str,
    overrides: &[(&str, &str)],
    expected: f64,
) -> anyhow::Result<WorkerRun> {
    let (s3, bucket) = fresh_store(ctx, kind).await?;
    let (s3, bucket) = (&s3, bucket.as_str());
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
    let output = job
        .output
        .as_ref()
        .context("a succeeded job without output")?;
    let bytes = output.bytes as f64;
    anyhow::ensure!(
        bytes == expected,
        "{}: stored {bytes} bytes, the result has {expected}",
        s3.kind
    );
    // s3s-fs keeps its files when it stops.
    peers::delete_object(s3, bucket, &output.key).await?;
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
