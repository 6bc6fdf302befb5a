//! The HTTP API (`vidq serve`): an axum router over a [`Producer`].

mod auth;
mod batch;
mod error;
mod events;
mod guard;
mod jobs;
mod metrics;
mod openapi;
mod ops;
mod queues;
mod rate_limit;
mod schema;
mod workers;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use vidq_core::{EpochStatus, EpochWatch};
use vidq_storage::Storage;

use crate::{ApiSettings, EnqueueOptions, Producer, Scope};
use auth::{Caller, Tokens};
use error::ApiError;
use rate_limit::RateLimiter;

pub use openapi::openapi;

/// The HTTP API: build it from a producer and the `[api]` settings, then [`Api::serve`] it
/// or mount [`Api::router`] in your own server.
#[derive(Clone, Debug)]
pub struct Api {
    state: Arc<AppState>,
    /// Run by [`Api::serve`] while it serves.
    epoch_watch: Option<EpochWatch>,
}

#[derive(Debug)]
struct AppState {
    producer: Producer,
    storage: Option<Storage>,
    tokens: Tokens,
    limiter: RateLimiter,
    /// Per-tenant quotas and the backlog cap, checked at create.
    quotas: crate::QuotaSettings,
    /// Request timeout, requests at once, batch size.
    limits: crate::ServerLimits,
    /// Permits of the requests being served (`limits.max_concurrent`).
    in_flight: Arc<tokio::sync::Semaphore>,
    body_limit: usize,
    reuse_ttl: Duration,
    reuse_across_tenants: bool,
    idempotency_ttl: Duration,
    events_max: Duration,
    metrics: metrics::ApiMetrics,
    /// Whether Redis lost its data lately (always ready without an epoch watch).
    epoch: EpochStatus,
    /// Cancelled when the server stops, so open event streams end.
    shutdown: tokio_util::sync::CancellationToken,
    /// What a `callback_url` must pass at enqueue (the workers' `[webhooks]` policy).
    callback_policy: std::sync::RwLock<vidq_core::CallbackPolicy>,
    /// Event streams: the per-token cap and the replica's feed of transitions.
    events: events::Events,
}

impl AppState {
    /// The caller when its token has `scope` (the rate limit is [`guard::rate_limit`]'s).
    fn authorize(&self, headers: &HeaderMap, scope: Scope) -> Result<Caller, ApiError> {
        self.tokens.authorize(headers, scope)
    }

    /// Refuses a `callback_url` the workers would refuse to call (422 naming it).
    fn check_callback(&self, request: &vidq_core::TransformRequest) -> Result<(), ApiError> {
        let policy = match self.callback_policy.read() {
            Ok(policy) => policy.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        Ok(request.check_callback(&policy)?)
    }

    /// The job `id` if `caller` may see it: another tenant's job is 404 like a missing one.
    async fn visible_job(
        &self,
        caller: &Caller,
        id: &vidq_core::JobId,
    ) -> Result<vidq_core::JobRecord, ApiError> {
        self.producer
            .status(id)
            .await?
            .filter(|job| caller.may_see(job.owner.as_deref()))
            .ok_or_else(|| ApiError::not_found(id))
    }

    fn enqueue_options(
        &self,
        caller: &Caller,
        idempotency_key: Option<String>,
        body_hash: String,
    ) -> EnqueueOptions {
        EnqueueOptions {
            idempotency_key,
            body_hash: Some(body_hash),
            idempotency_ttl: Some(self.idempotency_ttl),
            reuse_within: Some(self.reuse_ttl),
            owner: Some(caller.tenant.clone()),
            reuse_across_owners: self.reuse_across_tenants,
            quota: self.quotas.for_tenant(Some(&caller.tenant)),
            trace: None,
        }
    }
}

impl Api {
    /// The API over `producer`; `storage` serves video downloads (without it
    /// `GET /v1/jobs/{id}/video` answers 503).
    #[must_use]
    pub fn new(producer: Producer, settings: &ApiSettings, storage: Option<Storage>) -> Self {
        let limiter = RateLimiter::new(
            producer.redis().clone(),
            producer.store().prefix(),
            settings.rate_per_second,
            settings.rate_burst,
        );
        Self {
            state: Arc::new(AppState {
                producer,
                storage,
                tokens: Tokens::new(&settings.tokens),
                limiter,
                quotas: settings.quotas.clone(),
                limits: settings.limits.clone(),
                in_flight: Arc::new(tokio::sync::Semaphore::new(settings.limits.max_concurrent)),
                body_limit: settings.body_limit,
                reuse_ttl: settings.reuse_ttl,
                reuse_across_tenants: settings.reuse_across_tenants,
                idempotency_ttl: settings.idempotency_ttl,
                events_max: settings.events_max,
                metrics: metrics::ApiMetrics::new(),
                epoch: EpochStatus::default(),
                shutdown: tokio_util::sync::CancellationToken::new(),
                callback_policy: std::sync::RwLock::default(),
                events: events::Events::new(settings.events_per_token),
            }),
            epoch_watch: None,
        }
    }

    /// Runs `watch` while serving: after Redis lost its data, `/readyz` answers 503 for the
    /// watch's `unready_for`, and `/metrics` counts it in `vidq_redis_epoch_changes_total`.
    #[must_use]
    pub fn with_epoch_watch(mut self, watch: EpochWatch) -> Self {
        self.epoch_watch = Some(
            watch
                .with_status(self.state.epoch.clone())
                .with_counter(self.state.metrics.epoch_changes()),
        );
        self
    }

    /// Checks each new job's `callback_url` against `policy` (by default https to public
    /// addresses only), as the workers will before sending its webhook.
    #[must_use]
    pub fn with_callback_policy(self, policy: vidq_core::CallbackPolicy) -> Self {
        match self.state.callback_policy.write() {
            Ok(mut current) => *current = policy,
            Err(poisoned) => *poisoned.into_inner() = policy,
        }
        self
    }

    /// Feeds every `GET /v1/jobs/{id}/events` stream from one pub/sub connection of `client`
    /// (the producer's Redis) to `<prefix>:{jobs}:events:transitions`, run by [`Api::serve`]; without
    /// it each stream reads its job's record every 250 ms.
    #[must_use]
    pub fn with_event_feed(self) -> Self {
        let channel = self.state.producer.store().transitions_channel();
        let redis = self.state.producer.redis_layer().clone();
        self.state.events.set_feed(redis, channel);
        self
    }

    /// Replaces the bearer tokens while serving (requests in flight and open connections go
    /// on); returns how many there are now. `tokens` should come from
    /// [`ApiSettings::load_tokens`](crate::ApiSettings::load_tokens) or
    /// [`ProducerSettings::load`](crate::ProducerSettings::load), which check them.
    pub fn replace_tokens(&self, tokens: &[crate::ApiToken]) -> usize {
        self.state.tokens.replace(tokens)
    }

    /// Every route, with request metrics.
    pub fn router(&self) -> Router {
        let state = self.state.clone();
        Router::new()
            .route("/v1/jobs", get(jobs::list).post(jobs::create))
            .route("/v1/jobs:batch", post(batch::create))
            .route("/v1/jobs/{id}", get(jobs::get).delete(jobs::cancel))
            .route("/v1/jobs/{id}/video", get(jobs::video))
            .route("/v1/jobs/{id}/events", get(events::stream))
            .route("/v1/workers", get(workers::list))
            .route("/v1/queues", get(queues::list))
            .route("/v1/queues/{queue}/pause", post(queues::pause))
            .route("/v1/queues/{queue}/resume", post(queues::resume))
            .route("/healthz", get(ops::healthz))
            .route("/readyz", get(ops::readyz))
            .route("/metrics", get(ops::metrics))
            .route("/openapi.json", get(ops::openapi_json))
            // The operator's console (crate vidq-console): its own sessions, same tokens.
            .nest(
                "/console",
                vidq_console::router(
                    console_backend::ConsoleBackend(state.clone()),
                    vidq_console::ConsoleSettings::default(),
                ),
            )
            .fallback(ops::not_found)
            .method_not_allowed_fallback(ops::method_not_allowed)
            .route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                guard::rate_limit,
            ))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                guard::bound,
            ))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                metrics::count_requests,
            ))
            .with_state(state)
    }

    /// Serves the API on `listener` until `shutdown` completes, then finishes the requests
    /// in flight (event streams end at once) and stops the epoch watch.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let stop = self.state.shutdown.clone();
        // Its own token, so the watch also stops when serving failed: nothing outlives this call.
        let stop_watch = stop.child_token();
        let mut background = tokio::task::JoinSet::new();
        if let Some(watch) = self.epoch_watch.clone() {
            background.spawn(watch.run(stop_watch.clone()));
        }
        if let Some(feed) = self.state.events.feed() {
            background.spawn(feed.run(stop_watch.clone()));
        }
        // The peer's address reaches the handlers (the console limits sign-ins by it).
        let app = self
            .router()
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                stop.cancel();
            })
            .await;
        stop_watch.cancel();
        while background.join_next().await.is_some() {}
        served
    }
}

/// The console's view of the API: the same tokens, producer and storage (crate vidq-console).
mod console_backend {
    use std::sync::Arc;

    use axum::http::{HeaderMap, HeaderValue, header};
    use vidq_console::{Backend, BackendError, Canceled, Live, LiveStream, Principal};
    use vidq_core::workers::{WorkerInfo, WorkerRegistry};
    use vidq_core::{JobId, JobRecord, JobState, JobStore, TaskKind};
    use vidq_queue::{DeadTask, Depth};

    use super::AppState;
    use crate::{CancelOutcome, Scope};

    pub(super) struct ConsoleBackend(pub(super) Arc<AppState>);

    impl Backend for ConsoleBackend {
        fn authenticate(&self, token: &str) -> Option<Principal> {
            let mut headers = HeaderMap::new();
            let value = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
            headers.insert(header::AUTHORIZATION, value);
            let caller = self.0.tokens.authorize(&headers, Scope::Read).ok()?;
            let write = caller.admin || self.0.tokens.authorize(&headers, Scope::Write).is_ok();
            Some(Principal {
                tenant: caller.tenant,
                admin: caller.admin,
                write,
            })
        }

        fn authenticate_digest(&self, digest: &[u8; 32]) -> Option<Principal> {
            let caller = self.0.tokens.authorize_digest(digest, Scope::Read).ok()?;
            let write =
                caller.admin || self.0.tokens.authorize_digest(digest, Scope::Write).is_ok();
            Some(Principal {
                tenant: caller.tenant,
                admin: caller.admin,
                write,
            })
        }

        fn live(&self) -> Option<LiveStream> {
            use super::events::Message;
            use tokio::sync::broadcast::error::RecvError;
            let rx = self.0.events.watch()?;
            let stop = self.0.shutdown.clone();
            Some(Box::pin(futures::stream::unfold(
                (rx, stop),
                |(mut rx, stop)| async move {
                    let live = tokio::select! {
                        () = stop.cancelled() => return None,
                        m = rx.recv() => match m {
                            Ok(Message::Moved(m)) => Live::Moved {
                                id: m.id.clone(),
                                to: m.to,
                                at_ms: m.at_ms,
                            },
                            Ok(Message::Resync) | Err(RecvError::Lagged(_)) => Live::Resync,
                            Err(RecvError::Closed) => return None,
                        },
                    };
                    Some((live, (rx, stop)))
                },
            )))
        }

        async fn resend_webhook(&self, job: &JobRecord) -> Result<bool, BackendError> {
            if !job.state.is_terminal() || job.request.callback_url().is_none() {
                return Ok(false);
            }
            self.0.producer.resend_webhook(&job.id).await?;
            Ok(true)
        }

        fn store(&self) -> &JobStore {
            self.0.producer.store()
        }

        fn redis(&self) -> vidq_redis::Conn {
            self.0.producer.redis().clone()
        }

        async fn depth(&self, kind: TaskKind) -> Result<Depth, BackendError> {
            Ok(self.0.producer.depth(kind).await?)
        }

        async fn dead_tasks(
            &self,
            kind: TaskKind,
            offset: usize,
            limit: usize,
        ) -> Result<Vec<DeadTask>, BackendError> {
            Ok(self.0.producer.dead_tasks(kind, offset, limit).await?)
        }

        async fn retry_dead(&self, kind: TaskKind, task_id: &str) -> Result<bool, BackendError> {
            Ok(self.0.producer.retry_dead(kind, task_id).await?)
        }

        async fn retry_all_dead(&self, kind: TaskKind) -> Result<u64, BackendError> {
            Ok(self.0.producer.retry_all_dead(kind).await?)
        }

        async fn purge_dead(&self, kind: TaskKind) -> Result<u64, BackendError> {
            Ok(self.0.producer.purge_dead(kind).await?)
        }

        async fn set_paused(&self, kind: TaskKind, paused: bool) -> Result<bool, BackendError> {
            Ok(if paused {
                self.0.producer.pause(kind).await?
            } else {
                self.0.producer.resume(kind).await?
            })
        }

        async fn workers(&self) -> Result<Vec<WorkerInfo>, BackendError> {
            let registry = WorkerRegistry::new(
                self.0.producer.redis().clone(),
                self.0.producer.store().prefix(),
            );
            Ok(registry.list().await?)
        }

        async fn cancel(&self, id: &JobId) -> Result<Canceled, BackendError> {
            Ok(match self.0.producer.cancel(id).await? {
                CancelOutcome::Canceled => Canceled::Now,
                CancelOutcome::AlreadyFinished(state) => Canceled::AlreadyFinished(state),
            })
        }

        async fn retry(&self, id: &JobId) -> Result<JobState, BackendError> {
            Ok(self.0.producer.retry(id).await?)
        }

        async fn video_url(&self, job: &JobRecord) -> Result<Option<String>, BackendError> {
            let (Some(storage), Some(output)) = (&self.0.storage, &job.output) else {
                return Ok(None);
            };
            Ok(Some(storage.presign_get(&output.key, None).await?))
        }
    }
}
