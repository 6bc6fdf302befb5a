//! `GET /console/events`: the live pages' server-sent events, from the replica's one
//! subscription to job transitions (the API's event feed), scoped to the session's tenant like
//! the API: an admin gets every job's transitions, another token only its own jobs'. Events:
//! `job` (`{"id","state","at_ms"}`), `resync` (the feed may have missed some: re-read), and
//! `signed-out` (the session ended or its token was removed; the stream then ends). Without a
//! feed, `resync` comes every 2 s.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State as AxumState;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse as _, Response};
use futures::StreamExt as _;
use vidq_core::JobId;

use crate::backend::{Live, LiveStream};
use crate::console::{State, session};
use crate::{Backend, Principal};

/// How often an open stream checks that its session (and token) still stands.
const SESSION_CHECK: Duration = Duration::from_secs(2);
/// Without a feed: how often the page is told to re-read.
const POLL: Duration = Duration::from_secs(2);
/// Owners remembered per stream (jobs seen recently), so a tenant's stream reads each job once.
const OWNERS_CACHED: usize = 4096;

pub(crate) async fn events<B: Backend>(
    AxumState(state): AxumState<State<B>>,
    headers: HeaderMap,
) -> Response {
    let session = match session(&state, &headers, false).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let follow = Follow {
        feed: state.backend.live(),
        principal: session.principal,
        owners: HashMap::new(),
        headers,
        state,
        ended: false,
        next_check: tokio::time::Instant::now() + SESSION_CHECK,
    };
    let events = futures::stream::unfold(follow, |mut f| async move {
        let event = f.next().await?;
        Some((Ok::<_, Infallible>(event), f))
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response();
    crate::html::secure_headers(response.headers_mut());
    response
}

struct Follow<B> {
    state: State<B>,
    headers: HeaderMap,
    principal: Principal,
    feed: Option<LiveStream>,
    owners: HashMap<String, Option<String>>,
    ended: bool,
    next_check: tokio::time::Instant,
}

impl<B: Backend> Follow<B> {
    async fn next(&mut self) -> Option<Event> {
        if self.ended {
            return None;
        }
        loop {
            let check = tokio::time::sleep_until(self.next_check);
            let message = match &mut self.feed {
                Some(feed) => tokio::select! {
                    m = feed.next() => match m {
                        Some(m) => Some(m),
                        None => return None,
                    },
                    () = check => None,
                },
                None => {
                    tokio::time::sleep(POLL).await;
                    if !signed_in(&self.state, &self.headers, &self.principal).await {
                        self.ended = true;
                        return Some(Event::default().event("signed-out").data("{}"));
                    }
                    Some(Live::Resync)
                }
            };
            match message {
                None => {
                    self.next_check = tokio::time::Instant::now() + SESSION_CHECK;
                    if !signed_in(&self.state, &self.headers, &self.principal).await {
                        self.ended = true;
                        return Some(Event::default().event("signed-out").data("{}"));
                    }
                }
                Some(Live::Resync) => return Some(Event::default().event("resync").data("{}")),
                Some(Live::Moved { id, to, at_ms }) => {
                    if visible(&self.state, &self.principal, &mut self.owners, &id).await {
                        let data =
                            serde_json::json!({"id": id, "state": to.as_str(), "at_ms": at_ms});
                        return Some(Event::default().event("job").data(data.to_string()));
                    }
                }
            }
        }
    }
}

/// Whether the session (and its token) still stands.
async fn signed_in<B: Backend>(
    state: &State<B>,
    headers: &HeaderMap,
    principal: &Principal,
) -> bool {
    session(state, headers, false)
        .await
        .is_ok_and(|s| s.principal == *principal)
}

/// Whether the principal may see job `id` (an admin every job; another token its own).
async fn visible<B: Backend>(
    state: &State<B>,
    principal: &Principal,
    owners: &mut HashMap<String, Option<String>>,
    id: &str,
) -> bool {
    if principal.admin {
        return true;
    }
    if let Some(owner) = owners.get(id) {
        return owner.as_deref() == Some(principal.tenant.as_str());
    }
    let Ok(job_id) = id.parse::<JobId>() else {
        return false;
    };
    let owner = match state.backend.store().get(&job_id).await {
        Ok(Some(job)) => job.owner,
        Ok(None) => None,
        Err(error) => {
            tracing::debug!(%error, "console: could not read a job's owner for a live page");
            return false;
        }
    };
    if owners.len() >= OWNERS_CACHED {
        owners.clear();
    }
    let mine = owner.as_deref() == Some(principal.tenant.as_str());
    owners.insert(id.to_owned(), owner);
    mine
}
