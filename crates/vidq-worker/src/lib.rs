#![doc = include_str!("../README.md")]

mod daemon;
mod heartbeat;
mod http;
mod limits;
mod pipeline;
mod reconciler;
mod settings;
mod tasks;
mod telemetry;
mod usage;
mod webhook;

pub use daemon::run;
pub use heartbeat::HeartbeatSettings;
pub use limits::LimitSettings;
pub use reconciler::ReconcilerConfig;
pub use settings::{
    DEFAULTS, HttpSettings, JobSettings, QueueSettings, QueuesSettings, ReconcilerSettings,
    RedisSettings, ShutdownSettings, WebhookSettings, WorkerSettings,
};
