//! `GET /v1/jobs/{id}/events`: the job's transitions as server-sent events.
//!
//! Every transition is published on `<prefix>:{jobs}:events:transitions` by the transition script.
//! With [`Api::with_event_feed`](super::Api::with_event_feed) (as `vidq serve` does), one
//! pub/sub connection per replica receives them and fans them out to every open stream
//! through a broadcast channel: a stream reads the job's record when it opens and again only
//! when the feed may have missed something (it lagged, or the subscription was re-made).
//! Without a feed, each stream reads the record every 250 ms.
//!
//! Each event carries `id: <at_ms>-<state>`. A client reconnecting with `Last-Event-ID` gets
//! the transitions after that one from the job's stored history (capped: when that event is no
//! longer in it, every stored transition after its time), then the live ones; without it, the
//! current state first. The stream ends after a terminal state, when the job vanishes, at
//! `api.events_max`, or on shutdown. Each token may hold `api.events_per_token` streams open.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt as _};
use serde::Deserialize;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vidq_core::{JobId, JobRecord, JobState};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::jobs::job_id;
use super::schema::{EventView, SseFrame};
use crate::Scope;

const POLL_EVERY: Duration = Duration::from_millis(250);
/// Transitions buffered for the slowest stream before it lags (and re-reads the record).
const FEED_CAPACITY: usize = 1024;

/// Open streams per token, and the replica's feed of transitions when there is one.
#[derive(Debug)]
pub(crate) struct Events {
    per_token: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
    feed: OnceLock<Arc<Feed>>,
}

impl Events {
    pub(crate) fn new(per_token: usize) -> Self {
        Self {
            per_token,
            open: Arc::default(),
            feed: OnceLock::new(),
        }
    }

    /// Feeds the streams from `channel`, a sharded subscription of `redis` (once).
    pub(crate) fn set_feed(&self, redis: vidq_redis::Redis, channel: String) {
        let (tx, _) = broadcast::channel(FEED_CAPACITY);
        let _ = self.feed.set(Arc::new(Feed { redis, channel, tx }));
    }

    /// A receiver of the feed's messages, for the console's live pages (`None` without a feed).
    pub(crate) fn watch(&self) -> Option<broadcast::Receiver<Message>> {
        self.feed.get().map(|feed| feed.tx.subscribe())
    }

    /// The feed, for [`Api::serve`](super::Api::serve) to run.
    pub(crate) fn feed(&self) -> Option<Arc<Feed>> {
        self.feed.get().cloned()
    }

    /// A slot for one more stream of `token`, or 429.
    fn open(&self, token: String) -> Result<Slot, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(token.clone()).or_default();
        if *count >= self.per_token {
            return Err(ApiError::conflict(
                "too_many_streams",
                format!(
                    "this token already holds {} event streams open (api.events_per_token)",
                    self.per_token
                ),
            )
            .with_status(StatusCode::TOO_MANY_REQUESTS));
        }
        *count += 1;
        Ok(Slot {
            open: self.open.clone(),
            token,
        })
    }
}

/// One open stream; given back when the stream is dropped (ended or disconnected).
struct Slot {
    open: Arc<Mutex<HashMap<String, usize>>>,
    token: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.token) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.token);
            }
        }
    }
}

/// The replica's one subscription to the transitions channel.
#[derive(Debug)]
pub(crate) struct Feed {
    redis: vidq_redis::Redis,
    channel: String,
    tx: broadcast::Sender<Message>,
}

#[derive(Debug, Clone)]
pub(crate) enum Message {
    /// A job moved.
    Moved(Arc<Moved>),
    /// The subscription was (re)made: what was published meanwhile was not received.
    Resync,
}

/// What the transition script publishes.
#[derive(Debug, Deserialize)]
pub(crate) struct Moved {
    pub(crate) id: String,
    pub(crate) to: JobState,
    pub(crate) at_ms: u64,
    note: Option<String>,
}

impl Feed {
    /// Subscribes (sharded, on the node holding the channel) and forwards until `stop`; the
    /// subscription comes back on its own after a lost connection or a failover, and each
    /// time it does the streams resync.
    pub(crate) async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut deliveries = self.redis.subscribe_sharded(vec![self.channel.clone()]);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                delivery = deliveries.next() => match delivery {
                    Some(vidq_redis::Delivery::Subscribed) => {
                        let _ = self.tx.send(Message::Resync);
                    }
                    Some(vidq_redis::Delivery::Message(message)) => self.forward(&message),
                    None => return,
                },
            }
        }
    }

    fn forward(&self, message: &redis::Msg) {
        let moved = message
            .get_payload::<String>()
            .ok()
            .and_then(|text| serde_json::from_str::<Moved>(&text).ok());
        match moved {
            // No stream open is no error.
            Some(moved) => drop(self.tx.send(Message::Moved(Arc::new(moved)))),
            None => tracing::warn!("an unreadable job event was ignored"),
        }
    }
}

/// Follow a job's transitions.
#[utoipa::path(
    get, path = "/v1/jobs/{id}/events", tag = "jobs",
    params(
        ("id" = String, Path, description = "Job id"),
        ("Last-Event-ID" = Option<String>, Header, description = "The `id` of the last event received: the stream resumes after it"),
    ),
    responses(
        (status = 200, description = "Server-sent events named `state`, each with an `id` (`<at_ms>-<state>`) and an `EventView` JSON object: the current state first (or, with `Last-Event-ID`, the transitions after that one), then each transition; the stream ends after a terminal state",
            content_type = "text/event-stream", body = SseFrame),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope", body = ErrorBody),
        (status = 404, description = "No such job, or another tenant's (or a malformed id)", body = ErrorBody),
        (status = 429, description = "Rate limited, or the token holds `api.events_per_token` streams open already (`too_many_streams`)", body = ErrorBody, headers(("Retry-After" = u64))),
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
    let slot = state
        .events
        .open(format!("{}#{}", caller.tenant, caller.token))?;
    // Subscribed before the record is read: nothing published in between is missed.
    let feed = state.events.feed().map(|feed| feed.tx.subscribe());
    let job = state.visible_job(&caller, &id).await?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_event_id);
    let mut follow = Follow {
        deadline: Instant::now() + state.events_max,
        sent: HashSet::new(),
        last_at: 0,
        done: false,
        pending: VecDeque::new(),
        feed,
        state,
        id,
        _slot: slot,
    };
    match resume {
        Some(after) => follow.replay_after(&job, after),
        None => follow.push(current(&job)),
    }
    follow.done = job.state.is_terminal() && follow.pending.is_empty();
    let events = futures::stream::unfold(follow, |mut f| async move {
        let next = f.next().await?;
        let event = Event::default()
            .event("state")
            .id(event_id(next.at_ms, &next.state))
            .json_data(&next.view)
            .unwrap_or_else(|_| Event::default().event("state"));
        Some((Ok(event), f))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// `<at_ms>-<state>`.
fn event_id(at_ms: u64, state: &JobState) -> String {
    format!("{at_ms}-{state}")
}

fn parse_event_id(text: &str) -> Option<(u64, JobState)> {
    let (at, state) = text.trim().split_once('-')?;
    Some((at.parse().ok()?, state.parse().ok()?))
}

/// One event to send.
struct Next {
    at_ms: u64,
    state: JobState,
    view: EventView,
}

struct Follow {
    state: Arc<AppState>,
    id: JobId,
    deadline: Instant,
    /// Events already queued or sent, by (at_ms, state): the record and the feed overlap.
    sent: HashSet<(u64, JobState)>,
    last_at: u64,
    done: bool,
    pending: VecDeque<Next>,
    feed: Option<broadcast::Receiver<Message>>,
    _slot: Slot,
}

impl Follow {
    /// Queues `next` unless it was queued before or is older than what was sent.
    fn push(&mut self, next: Next) {
        if next.at_ms < self.last_at || !self.sent.insert((next.at_ms, next.state)) {
            return;
        }
        self.last_at = next.at_ms;
        self.pending.push_back(next);
    }

    fn moved(&mut self, to: JobState, at_ms: u64, note: Option<String>) {
        self.push(Next {
            at_ms,
            state: to,
            view: EventView {
                id: self.id.to_string(),
                state: to.into(),
                at_ms,
                note,
            },
        });
    }

    /// The stored transitions after `(at_ms, state)`.
    fn replay_after(&mut self, job: &JobRecord, (at_ms, state): (u64, JobState)) {
        self.sent.insert((at_ms, state));
        self.last_at = at_ms;
        let start = job
            .history
            .iter()
            .rposition(|t| t.at_ms == at_ms && t.to == state)
            .map_or_else(
                || job.history.partition_point(|t| t.at_ms <= at_ms),
                |i| i + 1,
            );
        for t in &job.history[start..] {
            self.moved(t.to, t.at_ms, t.note.clone());
        }
    }

    /// Queues every stored transition not sent yet; the current state if none is stored.
    fn catch_up(&mut self, job: &JobRecord) {
        for t in &job.history {
            if t.at_ms >= self.last_at {
                self.moved(t.to, t.at_ms, t.note.clone());
            }
        }
        if self.pending.back().is_none_or(|e| e.state != job.state) {
            self.push(current(job));
        }
    }

    async fn next(&mut self) -> Option<Next> {
        loop {
            if let Some(next) = self.pending.pop_front() {
                self.done |= next.state.is_terminal();
                return Some(next);
            }
            if self.done {
                return None;
            }
            let reread = match &mut self.feed {
                Some(feed) => tokio::select! {
                    message = feed.recv() => match message {
                        Ok(Message::Moved(moved)) if moved.id == self.id.to_string() => {
                            self.moved(moved.to, moved.at_ms, moved.note.clone());
                            false
                        }
                        Ok(Message::Moved(_)) => false,
                        Ok(Message::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => true,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                    () = tokio::time::sleep_until(self.deadline) => return None,
                    () = self.state.shutdown.cancelled() => return None,
                },
                None => tokio::select! {
                    () = tokio::time::sleep_until((Instant::now() + POLL_EVERY).min(self.deadline)) => true,
                    () = self.state.shutdown.cancelled() => return None,
                },
            };
            if Instant::now() >= self.deadline {
                return None;
            }
            if reread {
                match self.state.producer.status(&self.id).await {
                    Ok(Some(job)) => self.catch_up(&job),
                    Ok(None) => return None,
                    Err(error) => {
                        tracing::warn!(job.id = %self.id, %error, "reading the job for its event stream")
                    }
                }
            }
        }
    }
}

/// The job's current state as an event.
fn current(job: &JobRecord) -> Next {
    let last = job.history.last().filter(|t| t.to == job.state);
    let at_ms = last.map_or(job.updated_at, |t| t.at_ms);
    Next {
        at_ms,
        state: job.state,
        view: EventView {
            id: job.id.to_string(),
            state: job.state.into(),
            at_ms,
            note: last.and_then(|t| t.note.clone()),
        },
    }
}
