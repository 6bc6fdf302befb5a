#![doc = include_str!("../README.md")]

mod actions;
mod backend;
mod console;
mod filters;
mod html;
mod job_page;
mod live;
mod overview;
mod pages;
mod session;

pub use backend::{Backend, BackendError, Canceled, Live, LiveStream, Principal};
pub use console::{ConsoleSettings, router};
