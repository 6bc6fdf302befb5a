//! The actions (POST): sign in and out, cancel and retry jobs, retry and purge dead tasks. Each one past
//! sign-in needs the session's CSRF token in its form and the scope it acts with (`write` for
//! the tenant's jobs, `admin` for dead tasks); anything else is 403 and changes nothing.

use axum::body::Bytes;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State as AxumState};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Redirect, Response};
use vidq_core::{JobId, JobRecord, TaskKind};

use crate::console::{State, secure, session};
use crate::html::{error_page, esc, page};
use crate::session::{Session, clear_cookie, set_cookie, token_digest};
use crate::{Backend, BackendError, Canceled, Principal};

/// Most jobs one bulk action takes.
const MAX_BULK: usize = 100;

/// The fields of a urlencoded form body.
fn fields(body: &Bytes) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn who(session: &Session) -> Option<(&Principal, &str)> {
    Some((&session.principal, session.csrf.as_str()))
}

/// The client address a sign-in is limited by: the connection's peer when the server knows
/// it (`vidq serve` does), else one shared bucket.
fn client_address(extensions: &Extensions) -> String {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}

pub(crate) async fn login<B: Backend>(
    AxumState(state): AxumState<State<B>>,
    headers: HeaderMap,
    extensions: Extensions,
    body: Bytes,
) -> Response {
    let client = client_address(&extensions);
    let settings = &state.settings;
    match state
        .sessions
        .admit_sign_in(&client, settings.sign_in_per_minute, settings.sign_in_burst)
        .await
    {
        Ok(Ok(())) => {}
        Ok(Err(wait)) => {
            tracing::warn!(client = %client, "console: sign-in rate limited");
            let secs = wait.as_secs() + 1;
            let mut response = error_page(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("too many sign-in attempts from this address; try again in {secs} s"),
                None,
            );
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return response;
        }
        Err(error) => {
            tracing::error!(%error, "console: could not check the sign-in rate limit");
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "the session store (Redis) is unavailable; retry later",
                None,
            );
        }
    }
    let form = fields(&body);
    let token = field(&form, "token").map(str::trim).unwrap_or("");
    if token.is_empty() {
        return error_page(StatusCode::BAD_REQUEST, "token: enter an API token", None);
    }
    let Some(principal) = state.backend.authenticate(token) else {
        tracing::info!("console: sign-in refused (unknown token or no read scope)");
        return error_page(
            StatusCode::UNAUTHORIZED,
            "unknown token, or one without the read scope",
            None,
        );
    };
    let tenant = principal.tenant.clone();
    match state.sessions.create(principal, &token_digest(token)).await {
        Ok(id) => {
            tracing::info!(tenant = %tenant, "console: signed in");
            let mut response = Redirect::to("/console").into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                set_cookie(&id, state.sessions.ttl(), secure(&state, &headers)),
            );
            response
        }
        Err(error) => {
            tracing::error!(%error, "console: could not store a session");
            error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "the session store (Redis) is unavailable; retry later",
                None,
            )
        }
    }
}

/// The session of an action, with its CSRF token checked and `allowed` (given the principal)
/// true; else the 403 (or sign-in) response.
async fn authorized<B: Backend>(
    state: &State<B>,
    headers: &HeaderMap,
    form: &[(String, String)],
    allowed: impl Fn(&Principal) -> bool,
    needs: &str,
) -> Result<Session, Response> {
    let session = session(state, headers, false).await?;
    if !session.csrf_matches(field(form, "csrf").unwrap_or("")) {
        tracing::warn!(tenant = %session.principal.tenant, "console: action refused: missing or wrong CSRF token");
        return Err(error_page(
            StatusCode::FORBIDDEN,
            "this form is stale or was not sent by the console (CSRF token missing or wrong); reload the page",
            who(&session),
        ));
    }
    if !allowed(&session.principal) {
        tracing::warn!(tenant = %session.principal.tenant, needs, "console: action refused: scope");
        return Err(error_page(
            StatusCode::FORBIDDEN,
            &format!("this action needs the {needs} scope"),
            who(&session),
        ));
    }
    Ok(session)
}

pub(crate) async fn logout<B: Backend>(
    AxumState(state): AxumState<State<B>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = fields(&body);
    if let Err(response) = authorized(&state, &headers, &form, |_| true, "read").await {
        return response;
    }
    if let Err(error) = state.sessions.delete(&headers).await {
        tracing::warn!(%error, "console: could not delete a session");
    }
    let mut response = Redirect::to("/console/login").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, clear_cookie());
    response
}

/// The job `id` if the principal may act on it (another tenant's job is 404 like a missing one).
async fn own_job<B: Backend>(
    state: &State<B>,
    session: &Session,
    id: &str,
) -> Result<JobId, Response> {
    own_record(state, session, id).await.map(|job| job.id)
}

/// The record of job `id` if the principal may act on it (another tenant's is 404).
async fn own_record<B: Backend>(
    state: &State<B>,
    session: &Session,
    id: &str,
) -> Result<JobRecord, Response> {
    let not_found = || error_page(StatusCode::NOT_FOUND, &format!("no job {id}"), who(session));
    let job_id = id.parse::<JobId>().map_err(|_| not_found())?;
    match state.backend.store().get(&job_id).await {
        Ok(Some(job))
            if session.principal.admin
                || job.owner.as_deref() == Some(session.principal.tenant.as_str()) =>
        {
            Ok(job)
        }
        Ok(_) => Err(not_found()),
        Err(error) => {
            tracing::warn!(%error, "console: could not read a job");
            Err(error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "could not read from Redis; retry later",
                who(session),
            ))
        }
    }
}

/// One job action's outcome for people.
async fn act<B: Backend>(state: &State<B>, id: &JobId, action: &str) -> Result<String, String> {
    match action {
        "cancel" => match state.backend.cancel(id).await {
            Ok(Canceled::Now) => Ok(format!("job {id} canceled")),
            Ok(Canceled::AlreadyFinished(s)) => Ok(format!("job {id} had already finished ({s})")),
            Err(e) => Err(format!("job {id}: {e}")),
        },
        "retry" => match state.backend.retry(id).await {
            Ok(s) => Ok(format!("job {id} retried: {s}")),
            Err(e) => Err(format!("job {id}: {e}")),
        },
        other => Err(format!("action: {other:?} is not cancel or retry")),
    }
}

async fn job_action<B: Backend>(
    state: State<B>,
    headers: HeaderMap,
    id: String,
    body: Bytes,
    action: &str,
) -> Response {
    let form = fields(&body);
    let session = match authorized(&state, &headers, &form, |p| p.write, "write").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let job_id = match own_job(&state, &session, &id).await {
        Ok(id) => id,
        Err(r) => return r,
    };
    match act(&state, &job_id, action).await {
        Ok(_) => Redirect::to(&format!("/console/jobs/{job_id}")).into_response(),
        Err(message) => error_page(StatusCode::CONFLICT, &message, who(&session)),
    }
}

pub(crate) async fn cancel<B: Backend>(
    AxumState(state): AxumState<State<B>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    job_action(state, headers, id, body, "cancel").await
}

pub(crate) async fn retry<B: Backend>(
    AxumState(state): AxumState<State<B>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    job_action(state, headers, id, body, "retry").await
}

/// Sends a finished job's webhook again: queues a `notify` task (admin or write, CSRF).
pub(crate) async fn resend_webhook<B: Backend>(
    AxumState(state): AxumState<State<B>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = fields(&body);
    let session = match authorized(&state, &headers, &form, |p| p.write, "write").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let job = match own_record(&state, &session, &id).await {
        Ok(job) => job,
        Err(r) => return r,
    };
    if !job.state.is_terminal() || job.request.callback_url().is_none() {
        return error_page(
            StatusCode::CONFLICT,
            &format!(
                "job {}: only a finished job with a callback_url has a webhook to send again",
                job.id
            ),
            who(&session),
        );
    }
    match state.backend.resend_webhook(&job).await {
        Ok(_) => {
            tracing::info!(tenant = %session.principal.tenant, job.id = %job.id, "console: webhook queued again");
            Redirect::to(&format!("/console/jobs/{}?resent=1", job.id)).into_response()
        }
        Err(error) => failed(&session, "queue the webhook", &error),
    }
}

/// Cancel or retry the selected jobs (`id` repeated, `action`); reports each one.
pub(crate) async fn bulk<B: Backend>(
    AxumState(state): AxumState<State<B>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = fields(&body);
    let session = match authorized(&state, &headers, &form, |p| p.write, "write").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let action = field(&form, "action").unwrap_or("");
    if action != "cancel" && action != "retry" {
        return error_page(
            StatusCode::BAD_REQUEST,
            "action: must be cancel or retry",
            who(&session),
        );
    }
    let ids: Vec<&str> = form
        .iter()
        .filter(|(k, _)| k == "id")
        .map(|(_, v)| v.as_str())
        .collect();
    if ids.is_empty() || ids.len() > MAX_BULK {
        return error_page(
            StatusCode::BAD_REQUEST,
            &format!("id: select 1 to {MAX_BULK} jobs"),
            who(&session),
        );
    }
    let mut items = String::new();
    for id in ids {
        let line = match own_job(&state, &session, id).await {
            Ok(job_id) => match act(&state, &job_id, action).await {
                Ok(done) => format!(r#"<li class="ok">{}</li>"#, esc(&done)),
                Err(failed) => format!(r#"<li class="error">{}</li>"#, esc(&failed)),
            },
            Err(_) => format!(r#"<li class="error">no job {}</li>"#, esc(id)),
        };
        items.push_str(&line);
    }
    page(
        StatusCode::OK,
        "Bulk action",
        who(&session),
        &format!(
            r#"<ul id="results">{items}</ul><p><a href="/console/jobs">Back to the jobs</a></p>"#
        ),
    )
}

fn queue(name: &str) -> Option<TaskKind> {
    TaskKind::ALL.into_iter().find(|k| k.queue_name() == name)
}

/// The prelude of every action on a queue: the session (CSRF and the `admin` scope checked),
/// the queue named `name` (404 when there is none) and the form's fields.
async fn admin_queue<B: Backend>(
    state: &State<B>,
    headers: &HeaderMap,
    name: &str,
    body: &Bytes,
) -> Result<(Session, TaskKind, Vec<(String, String)>), Response> {
    let form = fields(body);
    let session = authorized(state, headers, &form, |p| p.admin, "admin").await?;
    match queue(name) {
        Some(kind) => Ok((session, kind, form)),
        None => Err(error_page(
            StatusCode::NOT_FOUND,
            &format!("no queue {name}"),
            who(&session),
        )),
    }
}

/// The 503 of a queue action whose Redis call failed (`what`: "retry the task").
fn failed(session: &Session, what: &str, error: &BackendError) -> Response {
    tracing::warn!(%error, "console: could not {what}");
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("could not {what}; retry later"),
        who(session),
    )
}

pub(crate) async fn retry_dead<B: Backend>(
    AxumState(state): AxumState<State<B>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let (session, kind, form) = match admin_queue(&state, &headers, &name, &body).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let Some(task) = field(&form, "task").filter(|t| !t.is_empty()) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "task: which dead task to retry",
            who(&session),
        );
    };
    match state.backend.retry_dead(kind, task).await {
        Ok(true) => Redirect::to("/console/dead").into_response(),
        Ok(false) => error_page(
            StatusCode::NOT_FOUND,
            &format!("no dead task {task} in {name}"),
            who(&session),
        ),
        Err(error) => failed(&session, "retry the task", &error),
    }
}

pub(crate) async fn retry_all_dead<B: Backend>(
    AxumState(state): AxumState<State<B>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let (session, kind, _) = match admin_queue(&state, &headers, &name, &body).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    match state.backend.retry_all_dead(kind).await {
        Ok(_) => Redirect::to("/console/dead").into_response(),
        Err(error) => failed(&session, "retry the tasks", &error),
    }
}

pub(crate) async fn purge_dead<B: Backend>(
    AxumState(state): AxumState<State<B>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let (session, kind, _) = match admin_queue(&state, &headers, &name, &body).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    match state.backend.purge_dead(kind).await {
        Ok(n) => {
            tracing::info!(tenant = %session.principal.tenant, queue = %name, purged = n, "console: dead tasks purged");
            Redirect::to("/console/dead").into_response()
        }
        Err(error) => failed(&session, "purge the tasks", &error),
    }
}

pub(crate) async fn pause<B: Backend>(
    state: AxumState<State<B>>,
    headers: HeaderMap,
    name: Path<String>,
    body: Bytes,
) -> Response {
    set_paused(state, headers, name, body, true).await
}

pub(crate) async fn resume<B: Backend>(
    state: AxumState<State<B>>,
    headers: HeaderMap,
    name: Path<String>,
    body: Bytes,
) -> Response {
    set_paused(state, headers, name, body, false).await
}

/// Pauses or resumes a queue (admin), then back to the overview.
async fn set_paused<B: Backend>(
    AxumState(state): AxumState<State<B>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
    paused: bool,
) -> Response {
    let (session, kind, _) = match admin_queue(&state, &headers, &name, &body).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    match state.backend.set_paused(kind, paused).await {
        Ok(changed) => {
            tracing::info!(tenant = %session.principal.tenant, queue = %name, paused, changed, "console: queue paused or resumed");
            Redirect::to("/console").into_response()
        }
        Err(error) => failed(&session, "change the queue", &error),
    }
}
