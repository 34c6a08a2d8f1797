//! The Alertmanager sink's pure parts: which attainment events fire and resolve alerts, their
//! labels and annotations, the set of active alerts, and their state-topic records.

mod alert;
mod book;
mod config;
pub mod labels;
mod rules;
pub mod state;

pub use alert::{postable_json, Alert, AlertKey, AlertKind};
pub use book::{AlertBook, Change};
pub use config::{AlertmanagerConfig, AlertmanagerConfigError, Alertnames};
pub use rules::Rules;

#[cfg(test)]
mod tests;
