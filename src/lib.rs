//! goalpost: an event-sourced KPI stream processor.
//!
//! Sales events in, goal attainment out. The [`engine`] is a pure fold; [`runtime`] drives it
//! from files or Kafka.

#![warn(missing_docs)]

pub mod aggregate;
pub mod codec;
pub mod engine;
pub mod generate;
pub mod goals;
pub mod limits;
pub mod model;
pub mod notify;
pub mod runtime;
pub mod serve;
pub mod window;
