#![doc = include_str!("../README.md")]

mod producer;
mod settings;

pub use producer::{CancelOutcome, Producer, ProducerError};
pub use settings::{DEFAULTS, ProducerSettings};
