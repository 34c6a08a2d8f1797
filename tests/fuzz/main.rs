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
mod support;
mod wire;

#[global_allocator]
static ALLOC: support::Counting = support::Counting;
