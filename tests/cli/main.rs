//! The command line, end to end: check, generate, replay (JSON and protobuf), dead letters.
//! By subject: `check` (and how errors read), `replay`, `stdio` (replay's standard streams),
//! `future` (events from the far future).

mod check;
mod future;
mod replay;
mod stdio;
#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;
