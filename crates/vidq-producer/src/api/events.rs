//! `GET /v1/jobs/{id}/events`: the job's transitions as server-sent events.
//!
//! Polls the job record (a cheap pipelined read) rather than holding a pub/sub connection per
//! stream: the store publishes only terminal events, and polling also sees the intermediate
//! ones. The current state is sent first, then each transition; the stream ends after a
//! terminal state, when the job vanishes, at the `events_max` limit, or on shutdown.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio::time::Instant;
use vidq_core::{JobId, JobRecord, JobState};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::jobs::job_id;
use super::schema::{EventView, SseFrame};
use crate::Scope;

const POLL_EVERY: Duration = Duration::from_millis(250);

/// Follow a job's transitions.
#[utoipa::path(
    get, path = "/v1/jobs/{id}/events", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Server-sent events named `state`, each carrying an `EventView` JSON object: the current state first, then each transition; the stream ends after a terminal state",
            content_type = "text/event-stream", body = SseFrame),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope", body = ErrorBody),
        (status = 404, description = "No such job, or another tenant's (or a malformed id)", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody, headers(("Retry-After" = u64))),
        (status = 503, description = "Redis unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn stream(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let caller = state.authorize(&headers, Scope::Read)?;
    let id = job_id(&id)?;
    let job = state.visible_job(&caller, &id).await?;
    let follow = Follow {
        deadline: Instant::now() + state.events_max,
        last_state: job.state,
        last_at: job.history.last().map_or(job.created_at, |t| t.at_ms),
        done: job.state.is_terminal(),
        pending: VecDeque::from([current(&job)]),
        state,
        id,
    };
    let events = futures::stream::unfold(follow, |mut f| async move {
        let next = f.next().await?;
        let event = Event::default()
            .event("state")
            .json_data(&next)
            .unwrap_or_else(|_| Event::default().event("state"));
        Some((Ok(event), f))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

struct Follow {
    state: Arc<AppState>,
    id: JobId,
    deadline: Instant,
    last_state: JobState,
    last_at: u64,
    done: bool,
    pending: VecDeque<EventView>,
}

impl Follow {
    async fn next(&mut self) -> Option<EventView> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.done {
                return None;
            }
            tokio::select! {
                () = tokio::time::sleep_until((Instant::now() + POLL_EVERY).min(self.deadline)) => {}
                () = self.state.shutdown.cancelled() => return None,
            }
            if Instant::now() >= self.deadline {
                return None;
            }
            match self.state.producer.status(&self.id).await {
                Ok(Some(job)) => self.observe(&job),
                Ok(None) => return None,
                Err(error) => {
                    tracing::warn!(job.id = %self.id, %error, "reading the job for its event stream")
                }
            }
        }
    }

    fn observe(&mut self, job: &JobRecord) {
        if job.state == self.last_state {
            return;
        }
        for t in job.history.iter().filter(|t| t.at_ms > self.last_at) {
            self.pending.push_back(EventView {
                id: self.id.to_string(),
                state: t.to.into(),
                at_ms: t.at_ms,
                note: t.note.clone(),
            });
        }
        if self
            .pending
            .back()
            .is_none_or(|e| e.state != job.state.into())
        {
            self.pending.push_back(current(job));
        }
        self.last_state = job.state;
        self.last_at = job.history.last().map_or(self.last_at, |t| t.at_ms);
        self.done = job.state.is_terminal();
    }
}

/// The job's current state as an event.
fn current(job: &JobRecord) -> EventView {
    let last = job.history.last().filter(|t| t.to == job.state);
    EventView {
        id: job.id.to_string(),
        state: job.state.into(),
        at_ms: last.map_or(job.updated_at, |t| t.at_ms),
        note: last.and_then(|t| t.note.clone()),
    }
}
