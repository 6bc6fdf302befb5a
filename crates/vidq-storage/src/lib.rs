#![doc = include_str!("../README.md")]

mod buffer;
mod error;
mod otel;
mod resume;
mod settings;
mod source;
mod storage;
mod streamed;
mod upload;

pub use error::{BoxError, Error, Result};
pub use resume::{Checkpoint, Journal, StoredPart};
pub use settings::StorageSettings;
pub use storage::{ObjectInfo, Storage};
pub use upload::Uploaded;
