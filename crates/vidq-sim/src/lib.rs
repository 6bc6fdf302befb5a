#![doc = include_str!("../README.md")]

mod api;
mod config;
mod content;
mod control;
mod envelope;
mod files;
mod front;
mod server;
mod state;
mod stats;
mod validate;

pub use config::{Faults, SimConfig};
pub use content::result_bytes_sha256;
pub use server::SimServer;
pub use stats::{FaultCounts, JobStats, Rejections, Stats};
