//! Records of the internal topics: repartition batches and changelog keys and values.
//!
//! By format: `batch` (repartition batches), `dedupe` (dedupe batches), `state` (window states,
//! with `pacing` for their look-ahead status), `keys` (changelog keys), with the owner partition
//! hash from `engine::partition`; `proto` holds the hand-written protobuf encoding and reading
//! they share.

use thiserror::Error;

mod batch;
mod dedupe;
mod keys;
mod pacing;
mod proto;
mod state;
#[cfg(test)]
mod tests;

pub use crate::engine::partition::{fnv1a, goal_hash, owner_partition_after};
pub use batch::{read_batch_each, BatchHeader, BatchWriter, ContributionView};
pub use dedupe::dedupe_batches_to_bytes;
pub use keys::ChangelogKey;
pub use state::{window_state_from_records, window_state_records, window_state_to_bytes};

/// Generated internal types.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/goalpost.v1.internal.rs"));
}

/// A record on an internal topic could not be read.
#[derive(Debug, Error)]
pub enum WireError {
    /// Protobuf decoding failed.
    #[error("cannot decode {what}: {cause}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The protobuf error.
        cause: prost::DecodeError,
    },
    /// The record decoded but its content is impossible.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What was being decoded.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
}

fn invalid(what: &'static str, detail: impl Into<String>) -> WireError {
    WireError::Invalid {
        what,
        detail: detail.into(),
    }
}
