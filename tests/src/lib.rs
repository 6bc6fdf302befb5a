//! Helpers for vidq's end-to-end tests: they start the real binaries (`vidq-sim`,
//! `vidq-worker`, `vidq`) against the real Redis and S3-compatible server that `scripts/test`
//! provides (`VIDQ_TEST_REDIS_URL`, `VIDQ_TEST_S3_*`), each test under its own key prefix,
//! bucket and ports.

mod env;
pub mod failover;
pub mod incident;
mod jobs;
mod process;
mod redis_rigs;
mod redis_server;
pub mod rigs;
mod shape;
mod verify;
mod wait;

pub use env::{S3Endpoint, TestEnv, redis_url, unique};
pub use jobs::{count_states, enqueue_jobs, wait_all_finished};
pub use process::{Sim, Worker, bin_path, rss_peak_kib};
pub use redis_server::{Persistence, PrivateRedis, free_port};
pub use shape::{RedisShape, vidq_slot};
pub use verify::{leftover_keys, verify_outcomes};
pub use wait::wait_until;
