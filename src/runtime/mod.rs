//! Runtimes: the imperative shells that drive the engine.

pub mod counts;
pub mod demo;
pub mod kafka;
pub mod notify;
pub mod progress;
pub mod replay;
pub mod rosters;
