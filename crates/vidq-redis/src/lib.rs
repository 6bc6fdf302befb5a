#![doc = include_str!("../README.md")]

mod client;
mod conn;
mod error;
mod sentinel;
mod settings;
mod slot;
mod subscribe;

pub use client::{Redis, WaitOutcome};
pub use conn::{Conn, RETRY_FOR};
pub use error::RedisError;
pub use settings::{Mode, RedisSettings, mask_url};
pub use slot::slot;
pub use subscribe::{Delivery, Subscription};
