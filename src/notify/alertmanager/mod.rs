//! The Alertmanager sink's pure parts: which attainment events fire and resolve alerts, their
//! labels and annotations, and the set of active alerts.

mod config;

pub use config::AlertmanagerConfig;
