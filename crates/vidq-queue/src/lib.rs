#![doc = include_str!("../README.md")]

mod backend;
mod background;
mod config;
mod error;
mod fair;
mod keys;
mod leases;
mod middleware;
mod queue;
mod scripts;
mod sink;
mod store;

pub use config::{FairShare, QueueConfig, RetryPolicy};
pub use error::{QueueError, TaskError};
pub use fair::{MAX_GROUP, Place, Priority};
pub use leases::{Delivery, Lease, Reschedule, WorkerLeases};
pub use middleware::{AckLayer, AckService};
pub use queue::{DeadTask, Depth, Pushed, RedisQueue, RunAfter, TaskState};
