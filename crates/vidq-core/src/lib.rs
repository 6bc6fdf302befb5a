#![doc = include_str!("../README.md")]

pub mod settings;
pub mod telemetry;

pub use settings::{SettingsError, load_settings};
pub use telemetry::{LogFormat, LogSettings, TelemetryError};
