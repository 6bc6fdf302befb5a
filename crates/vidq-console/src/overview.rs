//! The overview: jobs per state, jobs finished and failed per minute over the last hour (an
//! inline SVG chart from the counters the transition script keeps by Redis's clock), the
//! upstream figures the workers keep in Redis (credit balance, today's submissions against the
//! daily budget, uncertain submissions), live workers, and each queue's depth and paused flag.
//! A token without `admin` sees its own unfinished jobs only. The page updates live.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::State as AxumState;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use vidq_core::{JobState, MinuteCounts, TaskKind};

use crate::Backend;
use crate::console::{State, session};
use crate::html::{button, esc, live_page, time};
use crate::pages::{unavailable, who};

/// Minutes the chart covers.
const CHART_MINUTES: u32 = 60;
const DAY_MS: u64 = 86_400_000;

pub(crate) async fn overview<B: Backend>(
    AxumState(state): AxumState<State<B>>,
    headers: HeaderMap,
) -> Response {
    let session = match session(&state, &headers, true).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let principal = &session.principal;
    let store = state.backend.store();
    let mut body = String::from(r#"<div data-live-part="overview">"#);
    if principal.admin {
        let (counts, minutes, usage, workers) = match tokio::try_join!(
            async { store.state_counts().await.map_err(|e| e.to_string()) },
            async {
                store
                    .finished_per_minute(CHART_MINUTES)
                    .await
                    .map_err(|e| e.to_string())
            },
            usage(&state),
            async { state.backend.workers().await.map_err(|e| e.to_string()) },
        ) {
            Ok(found) => found,
            Err(e) => return unavailable(&session, &e),
        };
        body.push_str(
            r#"<h2>Jobs per state</h2><table id="states"><tr><th>state</th><th>jobs</th></tr>"#,
        );
        for s in JobState::ALL {
            let n = counts.get(&s).copied().unwrap_or(0);
            let _ = write!(
                body,
                r#"<tr data-state="{s}"><td><a href="/console/jobs?state={s}">{s}</a></td><td class="n">{n}</td></tr>"#,
                s = s.as_str()
            );
        }
        body.push_str("</table><p class=\"hint\">Unfinished states: jobs in them now; finished states: jobs that ended there since the counts began.</p>");
        body.push_str(&chart(&minutes));
        body.push_str(&usage.html());
        let _ = write!(
            body,
            r#"<p>Workers alive: <a href="/console/workers"><span class="n" id="workers-alive">{}</span></a></p>"#,
            workers.len()
        );
        body.push_str(r#"<h2>Queues</h2><table id="queues"><tr><th>queue</th><th>due</th><th>scheduled</th><th>leased</th><th>dead</th><th>claimed</th></tr>"#);
        for kind in TaskKind::ALL {
            let q = kind.queue_name();
            // One read: the depth says whether the queue is paused.
            let d = match state.backend.depth(kind).await {
                Ok(found) => found,
                Err(e) => return unavailable(&session, &e.to_string()),
            };
            let toggle = if d.paused {
                format!(
                    r#"<span class="state s-paused" data-paused="true">paused</span> {}"#,
                    button(
                        &format!("/console/queues/{q}/resume"),
                        "Resume",
                        &session.csrf,
                        &[]
                    )
                )
            } else {
                format!(
                    r#"<span data-paused="false">running</span> {}"#,
                    button(
                        &format!("/console/queues/{q}/pause"),
                        "Pause",
                        &session.csrf,
                        &[]
                    )
                )
            };
            let _ = write!(
                body,
                r#"<tr data-queue="{q}"><td>{q}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n"><a href="/console/dead#{q}">{}</a></td><td>{toggle}</td></tr>"#,
                d.due, d.scheduled, d.leased, d.dead,
            );
        }
        body.push_str("</table><p class=\"hint\">A paused queue's tasks are not claimed (its depth still counts; tasks running go on): e.g. pause submit during an upstream incident.</p>");
    } else {
        let n = match store.unfinished_count(Some(&principal.tenant)).await {
            Ok(n) => n,
            Err(e) => return unavailable(&session, &e.to_string()),
        };
        let _ = write!(
            body,
            r#"<p>Unfinished jobs of <b>{}</b>: <span class="n" id="unfinished">{n}</span>. <a href="/console/jobs">See the jobs</a>.</p>
<p class="hint">Queue depths, dead tasks and the upstream figures are shared by every tenant: an admin token sees them.</p>"#,
            esc(&principal.tenant)
        );
    }
    body.push_str("</div>");
    live_page(
        StatusCode::OK,
        "Overview",
        who(&session),
        &body,
        Some("all"),
    )
}

/// Jobs finished (succeeded) and failed (failed or expired) per minute, as stacked bars.
fn chart(minutes: &[MinuteCounts]) -> String {
    const W: u64 = 600;
    const H: u64 = 120;
    let succeeded: u64 = minutes.iter().map(|m| m.succeeded).sum();
    let failed: u64 = minutes.iter().map(|m| m.failed).sum();
    let peak = minutes
        .iter()
        .map(|m| m.succeeded + m.failed)
        .max()
        .unwrap_or(0)
        .max(1);
    let n = minutes.len().max(1) as u64;
    let bar = W / n;
    let mut out = format!(
        r#"<h2>Finished per minute, last hour</h2><svg id="chart" role="img" aria-label="jobs finished and failed per minute" viewBox="0 0 {W} {h}" width="{W}" height="{h}" data-succeeded="{succeeded}" data-failed="{failed}" data-minutes="{n}"><line x1="0" y1="{H}" x2="{W}" y2="{H}" class="axis"/>"#,
        h = H + 16,
    );
    for (i, m) in minutes.iter().enumerate() {
        let x = i as u64 * bar;
        let ok_h = m.succeeded * H / peak;
        let bad_h = m.failed * H / peak;
        let at = time(m.minute * 60_000);
        if m.succeeded > 0 {
            let _ = write!(
                out,
                r#"<rect class="ok" data-minute="{}" x="{x}" y="{}" width="{}" height="{ok_h}"><title>{at}: {} succeeded</title></rect>"#,
                m.minute,
                H - ok_h,
                bar.saturating_sub(1).max(1),
                m.succeeded
            );
        }
        if m.failed > 0 {
            let _ = write!(
                out,
                r#"<rect class="bad" data-minute="{}" x="{x}" y="{}" width="{}" height="{bad_h}"><title>{at}: {} failed</title></rect>"#,
                m.minute,
                H - ok_h - bad_h,
                bar.saturating_sub(1).max(1),
                m.failed
            );
        }
    }
    let _ = write!(
        out,
        r#"<text x="0" y="{}" class="label">−60 min</text><text x="{}" y="{}" class="label" text-anchor="end">now · peak {peak}/min</text></svg><p class="hint" id="chart-totals">Last hour: <b>{succeeded}</b> succeeded, <b>{failed}</b> failed (by Redis's clock).</p>"#,
        H + 14,
        W,
        H + 14,
    );
    out
}

/// The upstream figures the workers keep in Redis (`vidq usage` reads the same keys).
struct Usage {
    now_ms: u64,
    submissions: u64,
    spent: f64,
    uncertain: u64,
    budget: Option<u64>,
    balance: Option<(f64, u64)>,
}

impl Usage {
    fn html(&self) -> String {
        let balance = match self.balance {
            Some((count, at_ms)) => format!(
                r#"<span class="n" id="credits">{count}</span> <span class="hint">(read {} s ago)</span>"#,
                self.now_ms.saturating_sub(at_ms) / 1000
            ),
            None => r#"<span id="credits">unknown</span> <span class="hint">(no worker has read it yet)</span>"#.to_owned(),
        };
        let budget = match self.budget {
            Some(b) if b > 0 => b.to_string(),
            Some(_) => "no daily budget (counted only while limits.daily_submissions or limits.max_processing is set)".to_owned(),
            None => "unknown".to_owned(),
        };
        format!(
            r#"<h2>Upstream</h2><dl id="usage"><dt>credit balance</dt><dd>{balance}</dd><dt>submissions today (UTC)</dt><dd><span class="n" id="submissions-today">{}</span> of <span id="daily-budget">{budget}</span></dd><dt>credits spent today</dt><dd class="n">{}</dd><dt>uncertain submissions today</dt><dd><span class="n" id="uncertain">{}</span> <span class="hint">(a retry after an interrupted call: upstream may hold a duplicate)</span></dd></dl>"#,
            self.submissions, self.spent, self.uncertain
        )
    }
}

async fn usage<B: Backend>(state: &State<B>) -> Result<Usage, String> {
    let prefix = state.backend.store().prefix();
    let mut conn = state.backend.redis();
    type Reply = (
        (u64, u64),
        HashMap<String, String>,
        Option<String>,
        Option<u64>,
    );
    let ((secs, micros), today, balance, budget): Reply = redis::pipe()
        .cmd("TIME")
        .hgetall(format!("{prefix}:{{limits}}:today"))
        .get(format!("{prefix}:{{limits}}:credits"))
        .get(format!("{prefix}:{{limits}}:budget"))
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let now_ms = secs * 1000 + micros / 1000;
    let day = (now_ms / DAY_MS).to_string();
    let same_day = today.get("day") == Some(&day);
    let figure = |name: &str| {
        today
            .get(name)
            .filter(|_| same_day)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let balance = balance
        .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
        .and_then(|b| Some((b["count"].as_f64()?, b["at_ms"].as_u64().unwrap_or(0))));
    Ok(Usage {
        now_ms,
        submissions: figure("submissions") as u64,
        spent: figure("spent"),
        uncertain: figure("uncertain") as u64,
        budget,
        balance,
    })
}
