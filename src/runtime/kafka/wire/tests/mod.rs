//! Unit tests of the internal record formats, by format.

mod batch;
mod dedupe;
mod keys;
mod partition;
mod state;
