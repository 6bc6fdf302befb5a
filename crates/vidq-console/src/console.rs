//! The router, its shared state, and the session checks every page and action goes through.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Redirect, Response};
use axum::routing::{get, post};

use crate::html::{error_page, secure_headers};
use crate::session::{Session, Sessions};
use crate::{Backend, actions, job_page, live, overview, pages};

/// How the console keeps sessions.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    /// How long a session lasts after sign-in (default 8 hours).
    pub session_ttl: Duration,
    /// Always mark the cookie `Secure` (it is anyway when the request came over https, as
    /// `X-Forwarded-Proto: https` from a proxy says).
    pub secure_cookie: bool,
    /// Sign-in attempts a client address may make per minute (GCRA in Redis; default 10).
    pub sign_in_per_minute: u32,
    /// Sign-in attempts a client address may make at once before that rate applies (default 10).
    pub sign_in_burst: u32,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(8 * 3600),
            secure_cookie: false,
            sign_in_per_minute: 10,
            sign_in_burst: 10,
        }
    }
}

pub(crate) struct Inner<B> {
    pub(crate) backend: B,
    pub(crate) sessions: Sessions,
    pub(crate) settings: ConsoleSettings,
}

pub(crate) type State<B> = Arc<Inner<B>>;

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// The console's routes, to be nested at `/console` (every link and the cookie's path assume
/// it) in a router of any state `S`.
pub fn router<B: Backend, S: Clone + Send + Sync + 'static>(
    backend: B,
    settings: ConsoleSettings,
) -> Router<S> {
    let sessions = Sessions::new(
        backend.redis(),
        backend.store().prefix(),
        settings.session_ttl,
    );
    let state = Arc::new(Inner {
        backend,
        sessions,
        settings,
    });
    Router::new()
        .route("/", get(overview::overview::<B>))
        .route("/login", get(pages::login_form).post(actions::login::<B>))
        .route("/logout", post(actions::logout::<B>))
        .route("/jobs", get(pages::jobs::<B>))
        .route("/jobs/{id}", get(job_page::job::<B>))
        .route("/jobs/{id}/cancel", post(actions::cancel::<B>))
        .route("/jobs/{id}/retry", post(actions::retry::<B>))
        .route("/jobs/{id}/webhook", post(actions::resend_webhook::<B>))
        .route("/events", get(live::events::<B>))
        .route("/jobs:bulk", post(actions::bulk::<B>))
        .route("/dead", get(pages::dead::<B>))
        .route("/dead/{queue}/retry", post(actions::retry_dead::<B>))
        .route(
            "/dead/{queue}/retry-all",
            post(actions::retry_all_dead::<B>),
        )
        .route(
            "/dead/{queue}/purge",
            get(pages::purge_confirm::<B>).post(actions::purge_dead::<B>),
        )
        .route("/workers", get(pages::workers::<B>))
        .route("/queues/{queue}/pause", post(actions::pause::<B>))
        .route("/queues/{queue}/resume", post(actions::resume::<B>))
        .route("/console.css", get(css))
        .route("/console.js", get(js))
        .with_state(state)
}

async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

async fn js() -> Response {
    asset(JS, "text/javascript; charset=utf-8")
}

fn asset(text: &'static str, content_type: &'static str) -> Response {
    let mut response = text.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    secure_headers(headers);
    response
}

/// The request's session, or the response to send instead: a page view without one goes to
/// the sign-in form, an action without one is 403.
pub(crate) async fn session<B: Backend>(
    state: &State<B>,
    headers: &HeaderMap,
    page_view: bool,
) -> Result<Session, Response> {
    match state.sessions.find(headers).await {
        // The token must still be configured (tokens reload on SIGHUP), with its scopes now.
        Ok(Some(mut session)) => match session
            .digest()
            .and_then(|d| state.backend.authenticate_digest(&d))
        {
            Some(principal) => {
                session.principal = principal;
                Ok(session)
            }
            None => {
                if let Err(error) = state.sessions.delete(headers).await {
                    tracing::warn!(%error, "console: could not delete a session");
                }
                tracing::info!(tenant = %session.principal.tenant, "console: session ended: its token was removed");
                Err(signed_out(page_view))
            }
        },
        Ok(None) => Err(signed_out(page_view)),
        Err(error) => {
            tracing::error!(%error, "console: could not read the session from Redis");
            Err(error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "the session store (Redis) is unavailable; retry later",
                None,
            ))
        }
    }
}

/// A page view goes to the sign-in form (the cookie cleared), an action is 403.
fn signed_out(page_view: bool) -> Response {
    let mut response = if page_view {
        Redirect::to("/console/login").into_response()
    } else {
        error_page(
            StatusCode::FORBIDDEN,
            "sign in first: this action needs a session",
            None,
        )
    };
    response
        .headers_mut()
        .insert(header::SET_COOKIE, crate::session::clear_cookie());
    response
}

/// Whether the cookie must be `Secure` for this request.
pub(crate) fn secure<B>(state: &State<B>, headers: &HeaderMap) -> bool {
    state.settings.secure_cookie
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}
