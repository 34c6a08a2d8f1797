//! `goalpost notify`: reads the attainment topic with its own consumer group and delivers each
//! event to the configured sinks, committing offsets only after every sink delivered or
//! dead-lettered what they caused.

mod sink;

pub use sink::{Delivery, GivenUp, Sink, StateRecord};
