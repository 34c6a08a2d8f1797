//! The retry loop every sink runs around one request: attempts until delivered or the
//! [`RetryPolicy`] gives up, sleeping the schedule's waits, counting retries.

use std::hash::{BuildHasher, Hasher};
use std::time::Instant;

use super::telemetry::SinkMetrics;
use crate::notify::retry::{next_step, Failure, RetryPolicy, Step};

/// Runs `attempt` until it returns `Ok` or `policy` gives up: `Err((attempts, last error))`.
/// Each retry is counted in `metrics.retries` and logged at debug level with `sink` and `what`
/// (the request, for the log).
pub fn with_retries(
    policy: &RetryPolicy,
    metrics: &SinkMetrics,
    sink: &str,
    what: &str,
    mut attempt: impl FnMut() -> Result<(), (Failure, String)>,
) -> Result<(), (u32, String)> {
    let started = Instant::now();
    let mut n = 1;
    loop {
        let (failure, error) = match attempt() {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        match next_step(policy, n, started.elapsed(), failure, random()) {
            Step::GiveUp => return Err((n, error)),
            Step::Wait(wait) => {
                tracing::debug!(sink, request = what, attempt = n, error = %error, wait_ms = wait.as_millis() as u64, "delivery attempt failed; retrying");
                std::thread::sleep(wait);
                metrics.retries.increment(1);
                n += 1;
            }
        }
    }
}

/// A random number for the backoff's jitter (std's per-process random hash keys, fresh each
/// call).
fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}
