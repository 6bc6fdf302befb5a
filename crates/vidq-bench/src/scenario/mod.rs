//! One file per scenario of issue 7; each returns its [`Section`](crate::report::Section).

pub(crate) mod console;
pub(crate) mod end_to_end;
pub(crate) mod in_flight;
pub(crate) mod memory;
pub(crate) mod poll_step;
pub(crate) mod queue;
pub(crate) mod scheduled;
pub(crate) mod transfer;
