//! Unit tests of the internal record formats, by format.

mod batch;
mod dedupe;
mod keys;
mod pacing;
mod partition;
mod state;
