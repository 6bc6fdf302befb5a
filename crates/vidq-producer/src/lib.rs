#![doc = include_str!("../README.md")]

mod api;
mod limits;
mod producer;
mod reuse;
mod settings;

pub use api::{Api, openapi};
pub use limits::{QuotaSettings, ServerLimits, TenantQuota};
pub use producer::{
    CancelOutcome, EnqueueOptions, EnqueueOutcome, Enqueued, Producer, ProducerError,
};
pub use settings::{ApiSettings, ApiToken, DEFAULTS, ProducerSettings, Scope};
