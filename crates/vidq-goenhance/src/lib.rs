#![doc = include_str!("../README.md")]

mod client;
mod envelope;
mod error;
mod settings;
mod types;

pub use client::Client;
pub use error::{Error, MAX_EXCERPT, Result};
pub use settings::{ClientSettings, DEFAULT_BASE_URL};
pub use types::{
    GenerateArgs, GenerateRequest, JobDetail, JobStatus, MX_V2V, Style, StyleGroup, Submitted,
    Tokens,
};
