//! Property-based fuzzing of everything goalpost decodes from outside: JSON and protobuf events
//! (and length-delimited protobuf files), goal files, and the records of the internal Kafka topics.
//!
//! Every property feeds structured inputs (valid records and files, then mutated: truncated, bytes
//! flipped, huge lengths, deep nesting, odd unicode, numbers at the edges) and raw bytes, and checks
//! that the decoder neither panics nor allocates more than a linear allowance of its input, and
//! that it either decodes the input or rejects it with a reason. Where an encoder exists, encoding
//! then decoding gives the same value.
//!
//! `PROPTEST_CASES` sets the number of cases per property (by default a bounded number, so this
//! file runs in seconds); `scripts/fuzz` runs a long release-mode run.

mod events;
mod goals;
#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;
mod wire;

use support::fuzz::{allowed_bytes, peak_bytes, within_allowance};

#[global_allocator]
static ALLOC: support::fuzz::Counting = support::fuzz::Counting;

/// The allocation counting itself: an allocation beyond the allowance is seen and fails the check.
#[test]
fn the_allowance_check_sees_an_allocation_beyond_it() {
    let input = [0u8; 16];
    let (_, peak) = peak_bytes(|| vec![1u8; allowed_bytes(input.len()) + 1]);
    assert!(peak > allowed_bytes(input.len()));
    let caught = std::panic::catch_unwind(|| {
        within_allowance(input.len(), || {
            vec![1u8; allowed_bytes(input.len()) + 1].len()
        })
    });
    assert!(caught.is_err());
    let (_, peak) = peak_bytes(|| input.to_vec());
    assert!(peak >= input.len() && peak < 1024);
}
