//! One job's page: its record, request, stored video, timeline and actions.

use std::fmt::Write as _;

use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use vidq_core::{JobId, JobRecord, JobState, WebhookDelivery};

use crate::Backend;
use crate::console::{State, session};
use crate::html::{button, error_page, esc, live_page, time, took};
use crate::pages::{unavailable, who};

pub(crate) async fn job<B: Backend>(
    AxumState(state): AxumState<State<B>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let session = match session(&state, &headers, true).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let principal = &session.principal;
    let not_found = || {
        error_page(
            StatusCode::NOT_FOUND,
            &format!("no job {id}"),
            who(&session),
        )
    };
    let Ok(job_id) = id.parse::<JobId>() else {
        return not_found();
    };
    let job = match state.backend.store().get(&job_id).await {
        Ok(Some(job)) if principal.admin || job.owner.as_deref() == Some(&principal.tenant) => job,
        Ok(_) => return not_found(),
        Err(e) => return unavailable(&session, &e.to_string()),
    };
    let deliveries = match state.backend.store().deliveries(&job.id).await {
        Ok(d) => d,
        Err(e) => return unavailable(&session, &e.to_string()),
    };
    let mut body = String::from(r#"<div data-live-part="job">"#);
    let r = &job.request;
    let _ = write!(
        body,
        r#"<dl id="summary"><dt>state</dt><dd id="job-state" class="state s-{state}">{state}</dd>
<dt>tenant</dt><dd>{tenant}</dd><dt>created</dt><dd>{created}</dd><dt>updated</dt><dd>{updated}</dd>
<dt>deadline</dt><dd>{deadline}</dd><dt>upstream img_uuid</dt><dd id="img-uuid">{img}</dd>
<dt>submission attempts</dt><dd>{attempts}</dd><dt>upstream cost</dt><dd>{cost}</dd></dl>"#,
        state = job.state.as_str(),
        tenant = esc(job.owner.as_deref().unwrap_or("—")),
        created = time(job.created_at),
        updated = time(job.updated_at),
        deadline = time(job.deadline_at),
        img = esc(job.img_uuid.as_deref().unwrap_or("—")),
        attempts = job.attempts,
        cost = job.upstream_cost.map_or("—".to_owned(), |c| c.to_string()),
    );
    if let Some(error) = &job.error {
        let _ = write!(
            body,
            r#"<h2>Error</h2><p class="error" id="job-error">{}</p>"#,
            esc(error)
        );
    }
    let metadata = r
        .metadata()
        .iter()
        .map(|(k, v)| format!("{}={}", esc(k), esc(v)))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = write!(
        body,
        r#"<h2>Request</h2><dl id="request"><dt>reference video</dt><dd>{url}</dd><dt>model</dt><dd>{model}</dd>
<dt>duration</dt><dd>{duration} s</dd><dt>resolution</dt><dd>{resolution}</dd><dt>seed</dt><dd>{seed}</dd>
<dt>prompt</dt><dd>{prompt}</dd><dt>priority</dt><dd>{priority}</dd><dt>metadata</dt><dd>{metadata}</dd></dl>"#,
        url = esc(r.reference_video_url().as_str()),
        model = r.model(),
        duration = r.duration(),
        resolution = esc(&serde_json::to_value(r.resolution())
            .map(|v| v.as_str().unwrap_or("").to_owned())
            .unwrap_or_default()),
        seed = r.seed(),
        prompt = esc(r.prompt().unwrap_or("—")),
        priority = esc(&serde_json::to_value(r.priority())
            .map(|v| v.as_str().unwrap_or("").to_owned())
            .unwrap_or_default()),
    );
    if let Some(output) = &job.output {
        let _ = write!(
            body,
            r#"<h2>Video</h2><dl id="output"><dt>size</dt><dd id="bytes">{}</dd><dt>sha256</dt><dd id="sha256"><code>{}</code></dd><dt>type</dt><dd>{}</dd></dl>"#,
            output.bytes,
            esc(&output.sha256),
            esc(&output.content_type)
        );
        if job.state == JobState::Succeeded {
            match state.backend.video_url(&job).await {
                Ok(Some(url)) => {
                    let _ = write!(
                        body,
                        r#"<video id="video" controls preload="metadata" src="{}"></video>"#,
                        esc(&url)
                    );
                }
                Ok(None) => body.push_str(
                    r#"<p class="hint">Video storage is not configured on this server.</p>"#,
                ),
                Err(e) => {
                    tracing::warn!(job.id = %job.id, error = %e, "console: could not presign the video URL");
                    body.push_str(
                        r#"<p class="error">Could not sign a URL for the video; retry later.</p>"#,
                    );
                }
            }
        }
    }
    body.push_str(&timeline(&job));
    if r.callback_url().is_some() {
        body.push_str(&webhooks(&deliveries));
    }
    if principal.write {
        let id = job.id.to_string();
        body.push_str(r#"<p id="actions">"#);
        if !job.state.is_terminal() {
            body.push_str(&button(
                &format!("/console/jobs/{id}/cancel"),
                "Cancel",
                &session.csrf,
                &[],
            ));
        }
        if job.state == JobState::Failed {
            body.push_str(&button(
                &format!("/console/jobs/{id}/retry"),
                "Retry",
                &session.csrf,
                &[],
            ));
        }
        if job.state.is_terminal() && r.callback_url().is_some() {
            body.push_str(&button(
                &format!("/console/jobs/{id}/webhook"),
                "Send the webhook again",
                &session.csrf,
                &[],
            ));
        }
        body.push_str("</p>");
    }
    body.push_str("</div>");
    let id = job.id.to_string();
    live_page(
        StatusCode::OK,
        &format!("Job {}", job.id),
        who(&session),
        &body,
        Some(&id),
    )
}

/// The job's transitions, each with the time spent in the state it left.
fn timeline(job: &JobRecord) -> String {
    let mut out = String::from(
        r#"<h2>Timeline</h2><table id="timeline"><tr><th>at</th><th>from</th><th>to</th><th>time in the state left</th><th>note</th></tr>"#,
    );
    let mut since = job.created_at;
    for t in &job.history {
        let _ = write!(
            out,
            r#"<tr data-to="{to}"><td>{at}</td><td>{from}</td><td>{to}</td><td class="n">{took}</td><td>{note}</td></tr>"#,
            at = time(t.at_ms),
            from = t.from.as_str(),
            to = t.to.as_str(),
            took = took(t.at_ms.saturating_sub(since)),
            note = esc(t.note.as_deref().unwrap_or("")),
        );
        since = t.at_ms;
    }
    out.push_str("</table>");
    out
}

/// The webhook's delivery attempts, newest first, as the worker's `notify` task recorded them.
fn webhooks(deliveries: &[WebhookDelivery]) -> String {
    let mut out = String::from(
        r#"<h2>Webhook deliveries</h2><table id="deliveries"><tr><th>at</th><th>attempt</th><th>outcome</th><th>HTTP status</th><th>error</th></tr>"#,
    );
    for d in deliveries {
        let _ = write!(
            out,
            r#"<tr data-outcome="{outcome}" data-attempt="{attempt}"><td>{at}</td><td class="n">{attempt}</td><td>{outcome}</td><td class="n">{status}</td><td>{error}</td></tr>"#,
            at = time(d.at_ms),
            attempt = d.attempt,
            outcome = esc(&d.outcome),
            status = d.status.map_or(String::from("—"), |s| s.to_string()),
            error = esc(d.error.as_deref().unwrap_or("")),
        );
    }
    out.push_str("</table>");
    if deliveries.is_empty() {
        out.push_str(r#"<p class="hint" id="no-deliveries">No delivery attempt yet.</p>"#);
    }
    out
}
