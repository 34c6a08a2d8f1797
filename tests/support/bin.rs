//! The goalpost binary built for the tests.

use std::process::{Command, Output};

/// `goalpost` with no arguments yet.
pub fn goalpost() -> Command {
    Command::new(env!("CARGO_BIN_EXE_goalpost"))
}

/// Runs `cmd` to its end and returns its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run goalpost")
}

/// The stderr of `o` as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
