//! [`run`]: builds everything from the settings, runs one apalis worker per task kind, the
//! reconciler and the probes until the shutdown signal, then drains within the grace period
//! and hands back what is left.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use apalis::prelude::{Monitor, WorkerBuilder, WorkerBuilderExt};
use tokio_util::sync::CancellationToken;
use vidq_core::workers::WorkerRegistry;
use vidq_core::{EpochWatch, JobStore, JobTask, TaskKind};
use vidq_queue::{QueueConfig, RedisQueue, RetryPolicy, WorkerLeases};
use vidq_redis::{Conn, Redis};
use vidq_storage::Storage;

use crate::heartbeat;
use crate::http::{self, Probes};
use crate::limits::Limits;
use crate::pipeline::{MaxAttempts, Pipeline, PipelineParts, Queues};
use crate::reconciler::{self, ReconcilerConfig};
use crate::settings::{QueueSettings, WorkerSettings};
use crate::tasks;
use crate::telemetry;
use crate::usage;

/// Runs the worker until `shutdown` resolves, then stops taking tasks, lets running ones
/// finish within `shutdown.grace`, and hands back the leases of what is left so other replicas
/// take them at once.
pub async fn run(
    settings: WorkerSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = telemetry::install().context("installing the metrics recorder")?;
    // The one connection layer of this process (standalone, cluster or Sentinel).
    let redis = Redis::connect(&settings.redis)
        .await
        .context("connecting to Redis ([redis])")?;
    let conn = redis.conn();
    warn_unless_noeviction(&conn).await;

    let store = JobStore::on_redis(&redis)
        .with_prefix(settings.redis.prefix.clone())?
        .with_finished_ttl(settings.jobs.finished_ttl);
    let upstream = settings.goenhance.client()?;
    let storage = Storage::new(&settings.storage)
        .await
        .context("setting up storage")?;
    let download = reqwest::Client::builder()
        .connect_timeout(settings.goenhance.connect_timeout)
        .read_timeout(Duration::from_secs(60))
        .redirect(crate::webhook::public_redirects_only())
        .build()
        .context("building the download client")?;

    let queue = |kind: TaskKind, q: &QueueSettings| {
        let mut config = QueueConfig::new(kind.queue_name())
            .with_prefix(settings.redis.prefix.clone())
            .with_lease(settings.queues.lease)
            .with_retry(RetryPolicy {
                max_attempts: q.max_attempts,
                base: q.backoff,
                max: q.backoff_max,
                jitter: 0.2,
            });
        config.max_deliveries = settings.queues.max_deliveries;
        if kind == TaskKind::Submit {
            // Submissions go to the tenants with jobs waiting in turn; one claim per task, so
            // each replica takes the next one in the fair order only when it can run it.
            config = config.with_fair_share(settings.fair_share.weights.clone());
            config.claim_batch = 1;
        }
        RedisQueue::<JobTask>::from_redis(&redis, config)
    };
    let queues = Queues {
        submit: queue(TaskKind::Submit, &settings.queues.submit)?,
        poll: queue(TaskKind::Poll, &settings.queues.poll)?,
        transfer: queue(TaskKind::Transfer, &settings.queues.transfer)?,
        notify: queue(TaskKind::Notify, &settings.queues.notify)?,
    };
    let limits = Limits::new(
        conn.clone(),
        &settings.redis.prefix,
        settings.limits.clone(),
    );
    let pipeline = Pipeline::new(PipelineParts {
        store,
        upstream,
        storage,
        download,
        queues: queues.clone(),
        poll_interval: settings.jobs.poll_interval,
        max_attempts: MaxAttempts {
            submit: settings.queues.submit.max_attempts,
            poll: settings.queues.poll.max_attempts,
            transfer: settings.queues.transfer.max_attempts,
        },
        limits,
        webhooks: settings.webhooks.clone(),
    });
    if settings.webhooks.secret.is_none() {
        tracing::warn!("webhooks.secret is not set: jobs with a callback_url will not be notified");
    }

    let stop = CancellationToken::new();
    let mut background = tokio::task::JoinSet::new();
    let listener = http::bind(settings.http.listen)
        .await
        .with_context(|| format!("binding http.listen {}", settings.http.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "probes and metrics listening");
    let epoch = EpochWatch::new(conn.clone(), &settings.redis.prefix)
        .with_unready_for(settings.redis.epoch_unready_for);
    let probes = Probes {
        redis: conn.clone(),
        metrics,
        queues: vec![
            (TaskKind::Submit, queues.submit.clone()),
            (TaskKind::Poll, queues.poll.clone()),
            (TaskKind::Transfer, queues.transfer.clone()),
            (TaskKind::Notify, queues.notify.clone()),
        ],
        store: pipeline.store().clone(),
        epoch: epoch.status(),
    };
    background.spawn(log_exit(
        "probes",
        http::serve(listener, probes, stop.clone()),
    ));
    background.spawn(epoch.run(stop.clone()));
    let reconciler_config = ReconcilerConfig {
        interval: settings.reconciler.interval,
        stale_after: settings.reconciler.stale_after,
        batch: settings.reconciler.batch,
        lock_key: format!("{}:reconciler:lock", settings.redis.prefix),
    };
    background.spawn(usage::watch_credits(
        pipeline.clone(),
        settings.limits.credits_poll,
        stop.clone(),
    ));
    background.spawn(reconciler::run(
        pipeline.clone(),
        conn.clone(),
        reconciler_config,
        stop.clone(),
    ));

    let submit_q = OwnedBackend::new(&queues.submit);
    let poll_q = OwnedBackend::new(&queues.poll);
    let transfer_q = OwnedBackend::new(&queues.transfer);
    let notify_q = OwnedBackend::new(&queues.notify);
    let leases = [
        (TaskKind::Submit, submit_q.leases()),
        (TaskKind::Poll, poll_q.leases()),
        (TaskKind::Transfer, transfer_q.leases()),
        (TaskKind::Notify, notify_q.leases()),
    ];
    background.spawn(heartbeat::run(
        WorkerRegistry::new(conn.clone(), &settings.redis.prefix),
        settings.heartbeat.interval,
        leases
            .iter()
            .map(|(kind, held)| heartbeat::Queue {
                kind: *kind,
                concurrency: match kind {
                    TaskKind::Submit => settings.queues.submit.concurrency,
                    TaskKind::Poll => settings.queues.poll.concurrency,
                    TaskKind::Transfer => settings.queues.transfer.concurrency,
                    TaskKind::Notify => settings.queues.notify.concurrency,
                },
                leases: held.clone(),
            })
            .collect(),
        stop.clone(),
    ));
    let (p4, notify_concurrency) = (pipeline.clone(), settings.queues.notify.concurrency);
    let (p1, p2, p3) = (pipeline.clone(), pipeline.clone(), pipeline.clone());
    let concurrency = (
        settings.queues.submit.concurrency,
        settings.queues.poll.concurrency,
        settings.queues.transfer.concurrency,
    );
    tracing::info!(
        submit = concurrency.0,
        poll = concurrency.1,
        transfer = concurrency.2,
        "worker started"
    );
    let monitor = Monitor::new()
        .register(move |_| {
            WorkerBuilder::new("vidq-submit")
                .backend(submit_q.take())
                .concurrency(concurrency.0)
                .data(p1.clone())
                .build(tasks::submit::submit)
        })
        .register(move |_| {
            WorkerBuilder::new("vidq-poll")
                .backend(poll_q.take())
                .concurrency(concurrency.1)
                .data(p2.clone())
                .build(tasks::poll::poll)
        })
        .register(move |_| {
            WorkerBuilder::new("vidq-transfer")
                .backend(transfer_q.take())
                .concurrency(concurrency.2)
                .data(p3.clone())
                .build(tasks::transfer::transfer)
        })
        .register(move |_| {
            WorkerBuilder::new("vidq-notify")
                .backend(notify_q.take())
                .concurrency(notify_concurrency)
                .data(p4.clone())
                .build(tasks::notify::notify)
        })
        .shutdown_timeout(settings.shutdown.grace);
    let result = monitor
        .run_with_signal(async move {
            shutdown.await;
            tracing::info!("shutting down: no new tasks; draining running ones");
            Ok(())
        })
        .await;

    // Whatever did not finish within the grace period goes back to the queues now.
    for (kind, held) in leases {
        match held.hand_back().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                queue = kind.queue_name(),
                tasks = n,
                "handed back unfinished tasks"
            ),
            Err(err) => {
                tracing::warn!(queue = kind.queue_name(), error = %err, "could not hand back tasks; their leases will expire")
            }
        }
    }
    stop.cancel();
    while background.join_next().await.is_some() {}
    result.context("running the workers")?;
    tracing::info!("stopped");
    Ok(())
}

/// The backend one worker runs on. Leases belong to the queue instance a worker runs on, so
/// the first build takes this very instance (whose [`WorkerLeases`] the daemon keeps, to hand
/// back what is left after the drain); a worker apalis restarts gets a clone.
struct OwnedBackend {
    first: std::sync::Mutex<Option<RedisQueue<JobTask>>>,
    queue: RedisQueue<JobTask>,
}

impl OwnedBackend {
    fn new(queue: &RedisQueue<JobTask>) -> Self {
        Self {
            first: std::sync::Mutex::new(Some(queue.clone())),
            queue: queue.clone(),
        }
    }

    fn leases(&self) -> WorkerLeases {
        let first = self
            .first
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        first
            .as_ref()
            .map_or_else(|| self.queue.leases(), RedisQueue::leases)
    }

    fn take(&self) -> RedisQueue<JobTask> {
        let mut first = self
            .first
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        first.take().unwrap_or_else(|| self.queue.clone())
    }
}

async fn log_exit(name: &'static str, task: impl Future<Output = std::io::Result<()>>) {
    if let Err(err) = task.await {
        tracing::error!(task = name, error = %err, "background task ended with an error");
    }
}

/// DESIGN §5: Redis must not evict vidq's keys.
async fn warn_unless_noeviction(conn: &Conn) {
    let mut conn = conn.clone();
    let reply: Result<Vec<String>, _> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query_async(&mut conn)
        .await;
    match reply {
        Ok(pair) => match pair.get(1).map(String::as_str) {
            Some("noeviction") => metrics::gauge!("vidq_redis_may_evict").set(0.0),
            Some(policy) => {
                metrics::gauge!("vidq_redis_may_evict").set(1.0);
                tracing::warn!(
                    redis.maxmemory_policy = policy,
                    "Redis may evict keys under memory pressure and lose jobs: set maxmemory-policy noeviction"
                )
            }
            None => {}
        },
        Err(err) => tracing::debug!(error = %err, "could not read maxmemory-policy"),
    }
}
