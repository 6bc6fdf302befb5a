//! The pages (GET): sign-in form, overview, jobs list and search, one job, dead tasks (and
//! the confirmation of their purge), workers.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::{Query, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse as _, Redirect, Response};
use vidq_core::{JobId, JobRecord, TaskKind};

use crate::console::{State, session};
use crate::filters::Filters;
use crate::html::{button, csrf_field, error_page, esc, live_page, page, time};
use crate::session::Session;
use crate::{Backend, Principal};

/// Jobs per page of the list.
const PAGE: usize = 50;

pub(crate) fn who(session: &Session) -> Option<(&Principal, &str)> {
    Some((&session.principal, session.csrf.as_str()))
}

pub(crate) async fn login_form() -> Response {
    page(
        StatusCode::OK,
        "Sign in",
        None,
        r#"<form method="post" action="/console/login" class="login">
<label>API token <input type="password" name="token" id="token" autocomplete="off" required></label>
<button type="submit" id="sign-in">Sign in</button></form>
<p class="hint">The token is checked like the API's bearer tokens and never stored: the session keeps its name and scopes.</p>"#,
    )
}

pub(crate) fn unavailable(session: &Session, detail: &str) -> Response {
    tracing::warn!(error = %detail, "console: a page could not be read");
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "could not read from Redis; retry later",
        who(session),
    )
}

pub(crate) async fn jobs<B: Backend>(
    AxumState(state): AxumState<State<B>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let session = match session(&state, &headers, true).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let principal = &session.principal;
    let filters = match Filters::parse(principal, &query) {
        Ok(f) => f,
        Err(message) => return error_page(StatusCode::BAD_REQUEST, &message, who(&session)),
    };
    let tenant = filters.tenant.as_deref();
    if let Some(q) = query.get("q").map(|q| q.trim()).filter(|q| !q.is_empty()) {
        return search(&state, &session, tenant, q).await;
    }
    let store = state.backend.store();
    let (filter_state, cursor) = (filters.state, filters.cursor.as_ref());
    let listed = match tenant {
        Some(t) => store.list_tenant(t, filter_state, cursor, PAGE).await,
        None => store.list(filter_state, cursor, PAGE).await,
    };
    let page_of = match listed {
        Ok(p) => filters.apply(p),
        Err(e) => return unavailable(&session, &e.to_string()),
    };
    let mut body = filters.form(principal);
    let actions = principal.write;
    if actions {
        let _ = write!(
            body,
            r#"<form method="post" action="/console/jobs:bulk" id="bulk">{}"#,
            csrf_field(&session.csrf)
        );
    }
    body.push_str(r#"<div data-live-part="jobs"><table id="jobs"><tr>"#);
    if actions {
        body.push_str("<th></th>");
    }
    body.push_str("<th>job</th><th>state</th><th>tenant</th><th>created</th><th>upstream</th><th>metadata</th></tr>");
    for job in &page_of.jobs {
        body.push_str(&job_row(job, actions));
    }
    body.push_str("</table>");
    if page_of.jobs.is_empty() {
        body.push_str(r#"<p class="hint" id="empty">No jobs on this page.</p>"#);
    }
    body.push_str("</div>");
    if actions {
        body.push_str(r#"<p><button type="submit" name="action" value="cancel" data-action="Cancel selected">Cancel selected</button> <button type="submit" name="action" value="retry" data-action="Retry selected">Retry selected</button></p></form>"#);
    }
    if let Some(next) = page_of.next_cursor {
        let href = filters.next_href(principal, &next);
        let _ = write!(
            body,
            r#"<p><a id="next" href="{}">Older jobs →</a></p>"#,
            esc(&href)
        );
    }
    live_page(StatusCode::OK, "Jobs", who(&session), &body, Some("all"))
}

fn job_row(job: &JobRecord, actions: bool) -> String {
    let id = job.id.to_string();
    let metadata = job
        .request
        .metadata()
        .iter()
        .map(|(k, v)| format!("{}={}", esc(k), esc(v)))
        .collect::<Vec<_>>()
        .join(" ");
    let check = if actions {
        format!(r#"<td><input type="checkbox" name="id" value="{id}"></td>"#)
    } else {
        String::new()
    };
    format!(
        r#"<tr data-job="{id}" data-state="{state}">{check}<td><a href="/console/jobs/{id}">{id}</a></td><td class="state s-{state}">{state}</td><td>{tenant}</td><td>{created}</td><td>{img}</td><td>{metadata}</td></tr>"#,
        state = job.state.as_str(),
        tenant = esc(job.owner.as_deref().unwrap_or("—")),
        created = time(job.created_at),
        img = esc(job.img_uuid.as_deref().unwrap_or("")),
    )
}

/// Finds one job by id, by upstream's `img_uuid` (an index the transition script writes), or
/// by the idempotency key it was created with (the tenant's): each one key read, no scan.
async fn search<B: Backend>(
    state: &State<B>,
    session: &Session,
    tenant: Option<&str>,
    q: &str,
) -> Response {
    let principal = &session.principal;
    let store = state.backend.store();
    let key_tenant = tenant.unwrap_or(principal.tenant.as_str());
    let mut candidates = Vec::new();
    if let Ok(id) = q.parse::<JobId>() {
        candidates.push(id);
    }
    match tokio::try_join!(
        store.job_by_img_uuid(q),
        store.idempotent_job(Some(key_tenant), q)
    ) {
        Ok((by_img, by_key)) => candidates.extend(by_img.into_iter().chain(by_key)),
        Err(e) => return unavailable(session, &e.to_string()),
    }
    for id in candidates {
        match store.get(&id).await {
            Ok(Some(job))
                if (principal.admin || job.owner.as_deref() == Some(&principal.tenant))
                    && tenant.is_none_or(|t| job.owner.as_deref() == Some(t)) =>
            {
                return to_job(&job.id);
            }
            Ok(_) => {}
            Err(e) => return unavailable(session, &e.to_string()),
        }
    }
    page(
        StatusCode::NOT_FOUND,
        "Jobs",
        who(session),
        &format!(
            r#"{}<p class="error" id="not-found">No job has the id, img_uuid or idempotency key {}.</p>"#,
            Filters::default().form(principal),
            esc(q)
        ),
    )
}

fn to_job(id: &JobId) -> Response {
    Redirect::to(&format!("/console/jobs/{id}")).into_response()
}

/// Dead tasks shown per queue.
const DEAD_PAGE: usize = 100;

pub(crate) async fn dead<B: Backend>(
    AxumState(state): AxumState<State<B>>,
    headers: HeaderMap,
) -> Response {
    let session = match session(&state, &headers, true).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !session.principal.admin {
        return error_page(
            StatusCode::FORBIDDEN,
            "dead tasks are every tenant's: an admin token sees them",
            who(&session),
        );
    }
    let mut body = String::new();
    for kind in TaskKind::ALL {
        let q = kind.queue_name();
        let tasks = match state.backend.dead_tasks(kind, 0, DEAD_PAGE).await {
            Ok(t) => t,
            Err(e) => return unavailable(&session, &e.to_string()),
        };
        let total = match state.backend.depth(kind).await {
            Ok(depth) => depth.dead,
            Err(e) => return unavailable(&session, &e.to_string()),
        };
        let _ = write!(
            body,
            r#"<section id="{q}" data-queue="{q}"><h2>{q} <span class="n" data-dead="{total}">({total})</span></h2>"#,
        );
        if total > tasks.len() as u64 {
            let _ = write!(
                body,
                r#"<p class="hint">The newest {} of {total} are shown; Retry all takes every one.</p>"#,
                tasks.len()
            );
        }
        if tasks.is_empty() {
            body.push_str(r#"<p class="hint">No dead tasks.</p></section>"#);
            continue;
        }
        body.push_str(&button(
            &format!("/console/dead/{q}/retry-all"),
            "Retry all",
            &session.csrf,
            &[],
        ));
        let _ = write!(
            body,
            r#" <a class="danger" id="purge-{q}" href="/console/dead/{q}/purge">Purge all (delete, no retry)…</a>"#
        );
        body.push_str(
            r#"<table class="dead"><tr><th>task</th><th>died</th><th>reason</th><th></th></tr>"#,
        );
        for task in &tasks {
            let died = task
                .died_at
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| time(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
                .unwrap_or_default();
            let _ = write!(
                body,
                r#"<tr data-task="{id}"><td><code>{id}</code></td><td>{died}</td><td>{reason}</td><td>{retry}</td></tr>"#,
                id = esc(&task.id),
                reason = esc(&task.reason),
                retry = button(
                    &format!("/console/dead/{q}/retry"),
                    "Retry",
                    &session.csrf,
                    &[("task", &task.id)]
                ),
            );
        }
        body.push_str("</table></section>");
    }
    page(StatusCode::OK, "Dead tasks", who(&session), &body)
}

/// The confirmation step of a purge: how many dead tasks of the queue would be deleted, and
/// the one button that deletes them.
pub(crate) async fn purge_confirm<B: Backend>(
    AxumState(state): AxumState<State<B>>,
    headers: HeaderMap,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    let session = match session(&state, &headers, true).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !session.principal.admin {
        return error_page(
            StatusCode::FORBIDDEN,
            "dead tasks are every tenant's: an admin token sees them",
            who(&session),
        );
    }
    let Some(kind) = TaskKind::ALL.into_iter().find(|k| k.queue_name() == name) else {
        return error_page(
            StatusCode::NOT_FOUND,
            &format!("no queue {name}"),
            who(&session),
        );
    };
    let q = kind.queue_name();
    let total = match state.backend.depth(kind).await {
        Ok(depth) => depth.dead,
        Err(e) => return unavailable(&session, &e.to_string()),
    };
    let body = format!(
        r#"<p id="purge-count">Delete the <b>{total}</b> dead tasks of <b>{q}</b>? They are removed for good, not retried; their jobs stay as they are.</p>{} <a href="/console/dead#{q}">Keep them</a>"#,
        button(
            &format!("/console/dead/{q}/purge"),
            &format!("Delete {total} dead tasks of {q}"),
            &session.csrf,
            &[],
        )
    );
    page(StatusCode::OK, "Purge dead tasks", who(&session), &body)
}

pub(crate) async fn workers<B: Backend>(
    AxumState(state): AxumState<State<B>>,
    headers: HeaderMap,
) -> Response {
    let session = match session(&state, &headers, true).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !session.principal.admin {
        return error_page(
            StatusCode::FORBIDDEN,
            "the worker processes serve every tenant: an admin token sees them",
            who(&session),
        );
    }
    let workers = match state.backend.workers().await {
        Ok(w) => w,
        Err(e) => return unavailable(&session, &e.to_string()),
    };
    let mut body = format!(
        r#"<p>Live worker processes: <span class="n" id="live">{}</span>. A process drops out when its heartbeat expires (by Redis time).</p>"#,
        workers.len()
    );
    body.push_str(r#"<table id="workers"><tr><th>host</th><th>pid</th><th>version</th><th>queues (running / concurrency)</th><th>started</th><th>last seen</th></tr>"#);
    for w in &workers {
        let queues = w
            .queues
            .iter()
            .map(|l| {
                format!(
                    r#"<span data-queue="{q}">{q} {}/{}</span>"#,
                    l.running,
                    l.concurrency,
                    q = esc(&l.queue)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            body,
            r#"<tr data-worker="{id}" data-pid="{pid}"><td>{host}</td><td class="n">{pid}</td><td>{version}</td><td>{queues}</td><td>{started}</td><td>{seen}</td></tr>"#,
            id = esc(&w.id),
            pid = w.pid,
            host = esc(&w.host),
            version = esc(&w.version),
            started = time(w.started_at_ms),
            seen = time(w.last_seen_ms),
        );
    }
    body.push_str("</table>");
    if workers.is_empty() {
        body.push_str(r#"<p class="hint" id="no-workers">No worker process is running: queued tasks wait.</p>"#);
    }
    page(StatusCode::OK, "Workers", who(&session), &body)
}
