//! Delivery of attainment events to where people act (`goalpost notify`): the pure parts. The
//! shell that reads the attainment topic and talks HTTP is [`crate::runtime::notify`].

pub mod alertmanager;
mod config;
pub mod retry;
pub mod webhook;

pub use config::NotifyConfig;
