//! `goalpost run`: the engine on Apache Kafka, exactly once.
//!
//! One consumer (in the application's consumer group) and one transactional producer per
//! instance. Input partitions feed Routers; their contributions travel through the repartition
//! topic, partitioned by (goal, group), to the Owner of each repartition partition. Every
//! `commit_interval`, one transaction carries the repartition batches, the changelog records,
//! attainment events, dead letters and the consumed offsets. The README's "Running on Kafka" section
//! describes the model and its guarantees.

pub mod admin;
pub mod config;
mod error;
mod preflight;
mod restore;
mod warn_limit;
pub mod wire;
mod worker;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub use config::RunConfig;
pub use error::{ClientError, ErrorClass, RunError, SetupError};
pub use worker::{run, RunOptions, RunReport, Serving};

/// A flag set by SIGTERM and SIGINT.
pub fn shutdown_flag() -> std::io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, flag.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, flag.clone())?;
    Ok(flag)
}
