//! Scenario h: the operator's console at 100,000 jobs. The job records are created directly in
//! the store (its batched create script, 1,000 a call) under a prefix of their own, one job is
//! given an upstream `img_uuid` through a real transition (so the index has it), `vidq serve`
//! is started on them, and each page is fetched over HTTP with a signed-in session: p50 and
//! p99 per page. Target: every page under 200 ms. The prefix's keys are deleted afterwards.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::process::Command;
use vidq_core::{CreateQuota, JobRecord, JobState, JobStore, Patch, TransformRequest};

use crate::ctx::{Ctx, unique};
use crate::report::Section;
use crate::stats::{fmt, percentile};
use crate::wait::until;

const TOKEN: &str = "bench-console-admin-token-0123456789";

pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let jobs: usize = ctx.size(10_000, 100_000);
    let samples: usize = ctx.size(20, 200);
    let prefix = unique("bench-console");
    let result = measure(ctx, &prefix, jobs, samples).await;
    let cleaned = clean(ctx, &prefix).await;
    let section = result?;
    cleaned?;
    Ok(section)
}

async fn measure(ctx: &Ctx, prefix: &str, jobs: usize, samples: usize) -> anyhow::Result<Section> {
    let store = JobStore::connect(&ctx.redis_url)
        .await?
        .with_prefix(prefix.to_owned())?;
    let fill = Instant::now();
    let request = TransformRequest::new("https://videos.example.com/bench-console.mp4", 2000)?;
    let base = vidq_core::unix_ms_now() - jobs as u64;
    let mut middle = None;
    let owners = ["studio-a", "studio-b", "studio-c", "studio-d"];
    let batch = 1_000;
    for start in (0..jobs).step_by(batch) {
        for owner in owners {
            let records: Vec<JobRecord> = (start..(start + batch).min(jobs))
                .filter(|i| owners[i % owners.len()] == owner)
                .map(|i| {
                    let mut job = JobRecord::new(request.clone(), Duration::from_secs(3600));
                    job.owner = Some(owner.to_owned());
                    job.created_at = base + i as u64;
                    job.updated_at = job.created_at;
                    // One in 50 failed, the rest succeeded: finished jobs, no active index.
                    job.state = if i % 50 == 0 {
                        JobState::Failed
                    } else {
                        JobState::Succeeded
                    };
                    job
                })
                .collect();
            if records.is_empty() {
                continue;
            }
            for outcome in store
                .create_within(&records, &CreateQuota::default())
                .await?
            {
                outcome?;
            }
        }
    }
    let filled = fill.elapsed();
    // One unfinished job in the middle of the list, given an img_uuid by real transitions.
    let mut target = JobRecord::new(request.clone(), Duration::from_secs(3600));
    target.owner = Some("studio-a".into());
    target.created_at = base + jobs as u64 / 2;
    target.updated_at = target.created_at;
    store.create(&target).await?;
    let img = uuid::Uuid::new_v4().to_string();
    store
        .transition(
            &target.id,
            &[JobState::Queued],
            JobState::Submitting,
            Patch::new(),
        )
        .await?;
    store
        .transition(
            &target.id,
            &[JobState::Submitting],
            JobState::Processing,
            Patch::new().img_uuid(img.clone()),
        )
        .await?;
    middle.get_or_insert(format!("{}_{}", target.created_at, target.id));

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = ctx.scratch.join(format!("{prefix}.api.toml"));
    std::fs::write(
        &config,
        format!(
            "[api]\nlisten = \"127.0.0.1:{port}\"\n\n[[api.tokens]]\nname = \"ops\"\ntoken = \"{TOKEN}\"\nscopes = [\"admin\"]\n"
        ),
    )?;
    let log = std::fs::File::create(ctx.scratch.join(format!("{prefix}.api.log")))?;
    let mut serve = Command::new(ctx.bins.join("vidq"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("VIDQ__REDIS__URL", &ctx.redis_url)
        .env("VIDQ__REDIS__PREFIX", prefix)
        .env("VIDQ__LOG__FILTER", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}/vidq serve", ctx.bins.display()))?;
    let base_url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    until(
        "vidq serve to answer",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let exited = serve.try_wait().ok().flatten();
            let probe = http.get(format!("{base_url}/healthz")).send();
            async move {
                if let Some(status) = exited {
                    anyhow::bail!("vidq serve exited ({status})");
                }
                Ok(probe.await.ok().map(|_| ()))
            }
        },
    )
    .await?;
    let login = http
        .post(format!("{base_url}/console/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}"))
        .send()
        .await?;
    anyhow::ensure!(login.status() == 303, "sign-in: {}", login.status());
    let cookie = login
        .headers()
        .get("set-cookie")
        .context("sign-in set no cookie")?
        .to_str()?
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();

    let id = target.id.to_string();
    let cursor = middle.unwrap_or_default();
    // A page deep into one state (failed, 1 job in 50): the cursor after the first 50.
    let failed_cursor = store
        .list(Some(JobState::Failed), None, 50)
        .await?
        .next_cursor
        .map(|c| c.to_string())
        .unwrap_or_default();
    let pages: [(&str, String, u16); 7] = [
        ("overview", "/console".to_owned(), 200),
        ("jobs list, first page", "/console/jobs".to_owned(), 200),
        (
            "jobs list, a page deep by cursor (the middle)",
            format!("/console/jobs?cursor={cursor}"),
            200,
        ),
        (
            "jobs list filtered by state (failed, 1 in 50), a page deep",
            format!("/console/jobs?state=failed&cursor={failed_cursor}"),
            200,
        ),
        ("a job's page", format!("/console/jobs/{id}"), 200),
        ("search by job id", format!("/console/jobs?q={id}"), 303),
        ("search by img_uuid", format!("/console/jobs?q={img}"), 303),
    ];
    let mut section = Section::new(format!(
        "h. Console pages at {} jobs (p50 / p99 of {samples} requests each)",
        fmt(jobs as f64)
    ));
    let mut slowest: f64 = 0.0;
    for (name, path, expect) in &pages {
        let url = format!("{base_url}{path}");
        let mut ms = Vec::with_capacity(samples);
        for _ in 0..samples {
            let start = Instant::now();
            let response = http.get(&url).header("cookie", &cookie).send().await?;
            let status = response.status().as_u16();
            let body = response.bytes().await?;
            ms.push(start.elapsed().as_secs_f64() * 1e3);
            anyhow::ensure!(
                status == *expect,
                "{path}: HTTP {status}, expected {expect}"
            );
            if *expect == 200 && path.starts_with("/console/jobs") && !path.contains("?q=") {
                anyhow::ensure!(
                    path.contains(&id) || body.windows(13).any(|w| w == b"<tr data-job="),
                    "{path}: no jobs listed"
                );
            }
        }
        let p50 = percentile(&mut ms, 50.0);
        let p99 = percentile(&mut ms, 99.0);
        slowest = slowest.max(p99);
        println!("console bench: {name}: p50 {p50:.1} ms, p99 {p99:.1} ms");
        section.row(
            *name,
            format!("{} / {} ms", fmt(p50), fmt(p99)),
            "",
            "< 200 ms",
        );
    }
    section.note(format!(
        "{} job records created directly in {:.1} s (the store's batched create script) under their own prefix, deleted afterwards; `vidq serve` {}; the slowest p99 is {} ms.",
        fmt(jobs as f64),
        filled.as_secs_f64(),
        if ctx.bins.ends_with("release") {
            "release build"
        } else if ctx.bins.ends_with("debug") {
            "debug build"
        } else {
            "as built"
        },
        fmt(slowest),
    ));
    let _ = serve.kill().await;
    Ok(section)
}

/// Deletes every key of `prefix` (SCAN + UNLINK).
async fn clean(ctx: &Ctx, prefix: &str) -> anyhow::Result<()> {
    let mut conn = ctx.redis().await?;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            let _: i64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut conn)
                .await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}
