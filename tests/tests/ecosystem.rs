//! The monitoring that ships in deploy/ works against a real worker: Debian's Prometheus scrapes
//! a live worker with deploy/prometheus/rules.yaml loaded, every rule evaluates without error,
//! the expired-jobs alert fires when jobs pass their deadline, and every query of the Grafana
//! dashboard (deploy/grafana/vidq.json) names a family the worker registers and runs on that
//! Prometheus.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;
use tokio::process::{Child, Command};
use vidq_core::{EPOCH_CHANGES_METRIC, JobState};
use vidq_tests::rigs::test_env;
use vidq_tests::{S3Endpoint, Sim, Worker, count_states, free_port, redis_url, unique, wait_until};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// The path of `tool` (helm, promtool, prometheus), installed first if missing.
fn tool(tool: &str) -> anyhow::Result<String> {
    let out = std::process::Command::new("python3")
        .arg(repo_root().join("scripts/ecosystem_tools.py"))
        .arg(tool)
        .output()
        .context("running scripts/ecosystem_tools.py")?;
    anyhow::ensure!(
        out.status.success(),
        "scripts/ecosystem_tools.py {tool}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// Every `expr` of the dashboard's panels, with Grafana's range variables given values.
fn dashboard_queries() -> anyhow::Result<Vec<(String, String)>> {
    let path = repo_root().join("deploy/grafana/vidq.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)
        .with_context(|| format!("{} is not JSON", path.display()))?;
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().context("no panels")? {
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().context("a panel without title")?;
        let targets = panel["targets"]
            .as_array()
            .context("a panel without targets")?;
        anyhow::ensure!(!targets.is_empty(), "panel {title:?} has no query");
        for target in targets {
            let expr = target["expr"].as_str().context("a target without expr")?;
            let expr = expr
                .replace("$__rate_interval", "1m")
                .replace("$__range", "1h");
            queries.push((title.to_owned(), expr));
        }
    }
    Ok(queries)
}

/// The `vidq_*` names in a PromQL expression, histogram series mapped to their family.
fn families_in(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("vidq_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        names.push(family.to_owned());
        rest = &tail[end..];
    }
    names
}

/// The families the worker describes at start (crates/vidq-worker/src/telemetry.rs).
fn registered_families() -> anyhow::Result<BTreeSet<String>> {
    let source = std::fs::read_to_string(repo_root().join("crates/vidq-worker/src/telemetry.rs"))?;
    let mut names: BTreeSet<String> = source
        .split('"')
        .filter(|s| s.starts_with("vidq_") && s.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .map(str::to_owned)
        .collect();
    names.insert(EPOCH_CHANGES_METRIC.to_owned());
    Ok(names)
}

#[test]
fn every_dashboard_query_names_a_family_the_worker_registers() -> anyhow::Result<()> {
    let registered = registered_families()?;
    assert!(registered.contains("vidq_queue_depth"), "{registered:?}");
    let queries = dashboard_queries()?;
    assert!(queries.len() >= 15, "{} queries", queries.len());
    let mut used = BTreeSet::new();
    for (title, expr) in &queries {
        let families = families_in(expr);
        assert!(
            !families.is_empty(),
            "panel {title:?} queries no vidq family: {expr}"
        );
        for family in families {
            assert!(
                registered.contains(&family),
                "panel {title:?} queries {family}, which the worker does not register: {expr}"
            );
            used.insert(family);
        }
    }
    // The panels the issue asks for: depth, outcomes, lateness, upstream, credits, transfers,
    // uncertain submissions.
    for family in [
        "vidq_queue_depth",
        "vidq_jobs_finished_total",
        "vidq_poll_lateness_seconds",
        "vidq_upstream_calls_total",
        "vidq_upstream_credits",
        "vidq_bytes_transferred_total",
        "vidq_uncertain_submissions_total",
    ] {
        assert!(used.contains(family), "no panel shows {family}");
    }
    Ok(())
}

#[test]
fn a_misspelt_family_is_caught() {
    assert_eq!(
        families_in("sum(rate(vidq_poll_latenes_seconds_bucket[1m]))"),
        ["vidq_poll_latenes_seconds"]
    );
    assert!(
        !registered_families()
            .expect("telemetry.rs")
            .contains("vidq_poll_latenes_seconds")
    );
}

/// A Prometheus from Debian's package on a free port, its data in a temporary directory.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    base: String,
}

impl Prometheus {
    async fn start(scrape_target: &str) -> anyhow::Result<Self> {
        let binary = tool("prometheus")?;
        let dir = std::env::temp_dir().join(unique("vidq-prometheus"));
        std::fs::create_dir_all(dir.join("data"))?;
        let rules = repo_root().join("deploy/prometheus/rules.yaml");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: vidq-worker\n    static_configs:\n      - targets: [\"{scrape_target}\"]\n",
            rules.display()
        );
        std::fs::write(dir.join("prometheus.yml"), config)?;
        let port = free_port()?;
        let log = std::fs::File::create(dir.join("prometheus.log"))?;
        let child = Command::new(binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting prometheus")?;
        let me = Self {
            child,
            dir,
            base: format!("http://127.0.0.1:{port}"),
        };
        let ready = format!("{}/-/ready", me.base);
        wait_until("Prometheus ready", Duration::from_secs(60), || async {
            Ok(match reqwest::get(&ready).await {
                Ok(r) if r.status().is_success() => Some(()),
                _ => None,
            })
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", me.log()))?;
        Ok(me)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    async fn api(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<Value> {
        let reply: Value = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .query(query)
            .send()
            .await?
            .json()
            .await?;
        Ok(reply)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // Stopped before its data directory goes.
        let _ = self.child.start_kill();
        let _ = self.child.try_wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Jobs whose upstream work outlasts their 3 s deadline end `expired`; Prometheus, scraping the
/// worker every second with rules.yaml loaded, fires VidqJobsExpiredPastDeadline and not
/// VidqWorkersAbsent, every rule is healthy, and every dashboard query runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scraping_a_worker_fires_the_expired_jobs_alert() -> anyhow::Result<()> {
    let s3 = S3Endpoint::from_env()?;
    let env = test_env(
        "ecosystem-alert",
        &redis_url(),
        &s3,
        Some(Duration::from_secs(3)),
    )
    .await?;
    let sim = Sim::start(&["--processing-min", "60s", "--processing-max", "90s"]).await?;
    let listen = format!("127.0.0.1:{}", free_port()?);
    let worker = Worker::start(
        "ecosystem-alert-w",
        env.worker_env(
            &sim.base_url,
            &[
                ("VIDQ__HTTP__LISTEN", &listen),
                ("VIDQ__LIMITS__CREDITS_POLL", "500ms"),
            ],
        ),
    )
    .await?;
    let prometheus = Prometheus::start(&listen).await?;

    // Scraped at zero first, so that increase() sees the step.
    wait_until(
        "the first scrape of the worker",
        Duration::from_secs(60),
        || async {
            let reply = prometheus
                .api(
                    "/api/v1/query",
                    &[("query", r#"vidq_jobs_finished_total{state="expired"}"#)],
                )
                .await?;
            Ok(reply["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
                .then_some(()))
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}; worker log:\n{}", worker.log()))?;

    let jobs = vidq_tests::enqueue_jobs(&env, 2).await?;
    wait_until("both jobs expired", Duration::from_secs(60), || async {
        let counts = count_states(&env, &jobs).await?;
        Ok((counts.get(&JobState::Expired) == Some(&jobs.len())).then_some(()))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; worker log:\n{}", worker.log()))?;

    let alert = wait_until(
        "VidqJobsExpiredPastDeadline firing",
        Duration::from_secs(60),
        || async {
            let reply = prometheus.api("/api/v1/alerts", &[]).await?;
            let alerts = reply["data"]["alerts"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            Ok(alerts.into_iter().find(|a| {
                a["labels"]["alertname"] == "VidqJobsExpiredPastDeadline" && a["state"] == "firing"
            }))
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}; prometheus log:\n{}", prometheus.log()))?;
    assert_eq!(alert["labels"]["severity"], "warning", "{alert}");
    let description = alert["annotations"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(
        description.contains("jobs were still unfinished at their deadline"),
        "{alert}"
    );
    // What Prometheus scraped is what the jobs did: two expired.
    let expired = prometheus
        .api(
            "/api/v1/query",
            &[("query", r#"sum(vidq_jobs_finished_total{state="expired"})"#)],
        )
        .await?;
    assert_eq!(expired["data"]["result"][0]["value"][1], "2", "{expired}");

    // Every rule was evaluated against the live series without error; a running worker is
    // not reported absent.
    let rules = prometheus.api("/api/v1/rules", &[]).await?;
    let mut evaluated = 0;
    for group in rules["data"]["groups"]
        .as_array()
        .context("no rule groups")?
    {
        for rule in group["rules"].as_array().context("no rules")? {
            assert_eq!(rule["health"], "ok", "{rule}");
            if rule["name"] == "VidqWorkersAbsent" {
                assert_eq!(rule["state"], "inactive", "{rule}");
            }
            evaluated += 1;
        }
    }
    assert_eq!(evaluated, 10, "{rules}");

    for (title, expr) in dashboard_queries()? {
        let reply = prometheus.api("/api/v1/query", &[("query", &expr)]).await?;
        assert_eq!(
            reply["status"], "success",
            "panel {title:?}: {expr}: {reply}"
        );
    }
    // The panels on families present from the start show data.
    let depth = prometheus
        .api(
            "/api/v1/query",
            &[(
                "query",
                r#"max by (queue, state) (vidq_queue_depth{state=~"due|leased"})"#,
            )],
        )
        .await?;
    assert!(
        depth["data"]["result"]
            .as_array()
            .is_some_and(|r| r.len() >= 6),
        "{depth}"
    );

    drop(worker);
    sim.stop().await;
    env.cleanup().await?;
    Ok(())
}
