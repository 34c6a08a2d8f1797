//! `goalpost notify`: reads the attainment topic with its own consumer group and delivers each
//! event to the configured sinks, committing offsets only after every sink delivered or
//! dead-lettered what they caused.

mod alertmanager;
mod sink;

pub use alertmanager::{state_topic_name as alertmanager_state_topic, AlertmanagerSink};
pub use sink::{Delivery, GivenUp, Sink, StateRecord};
