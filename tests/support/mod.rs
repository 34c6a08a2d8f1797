//! What the test crates share: a real Alertmanager, temporary directories, the goalpost binary,
//! the example goals, generated events, replay and its attainment events, Kafka topics, the CRM
//! dataset and the fuzz tests' allocator and mutations.
//!
//! Each crate declares it as `#[allow(dead_code)] mod support;` (a crate in a folder adds
//! `#[path = "../support/mod.rs"]`) and uses the part it needs.

pub mod alertmanager;
pub mod bin;
pub mod crm_data;
pub mod dirs;
pub mod events;
pub mod fuzz;
pub mod goals;
pub mod kafka;
pub mod replay;
