#![doc = include_str!("../README.md")]

mod daemon;
mod http;
mod pipeline;
mod reconciler;
mod settings;
mod tasks;

pub use daemon::run;
pub use pipeline::{MaxAttempts, Pipeline, PipelineParts, Queues};
pub use reconciler::ReconcilerConfig;
pub use settings::{
    DEFAULTS, HttpSettings, JobSettings, QueueSettings, QueuesSettings, ReconcilerSettings,
    RedisSettings, ShutdownSettings, WorkerSettings,
};
