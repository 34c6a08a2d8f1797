//! What follows a failed delivery attempt, for every sink: the HTTP statuses retried,
//! `Retry-After`, and the backoff schedule (exponential, full jitter).

use std::time::Duration;

use chrono::DateTime;

/// How a sink retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, at most.
    pub max_attempts: u32,
    /// No attempt starts later than this after the first.
    pub max_age: Duration,
    /// The first retry's longest wait.
    pub backoff_initial: Duration,
    /// The longest wait the schedule draws.
    pub backoff_max: Duration,
}

/// A failed attempt, as far as retrying goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// A refusal no retry changes (a 4xx other than 408, 425, 429).
    Permanent,
    /// Worth retrying after the backoff (5xx, timeouts, connection errors).
    Transient,
    /// Worth retrying, not before this (429 or 503 with `Retry-After`).
    After(Duration),
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Wait this long, then try again.
    Wait(Duration),
    /// Dead-letter the events.
    GiveUp,
}

/// A response's status as a failure (`None`: delivered). `retry_after` is the header's value;
/// `now_unix` the current time in unix seconds, for a `Retry-After` given as an HTTP date.
pub fn classify_status(status: u16, retry_after: Option<&str>, now_unix: i64) -> Option<Failure> {
    match status {
        200..=299 => None,
        429 | 503 => Some(
            retry_after
                .and_then(|v| parse_retry_after(v, now_unix))
                .map_or(Failure::Transient, Failure::After),
        ),
        408 | 425 | 500..=599 => Some(Failure::Transient),
        _ => Some(Failure::Permanent),
    }
}

/// A `Retry-After` value: delay seconds, or an HTTP date (a date in the past is no wait).
pub fn parse_retry_after(value: &str, now_unix: i64) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?.timestamp();
    Some(Duration::from_secs(
        at.saturating_sub(now_unix).max(0) as u64
    ))
}

/// The wait before attempt `attempt + 1` after `attempt` failed (1-based): uniform in
/// `[0, min(backoff_max, backoff_initial × 2^(attempt-1))]` ("full jitter"), drawn from `random`.
pub fn backoff(policy: &RetryPolicy, attempt: u32, random: u64) -> Duration {
    let factor = 1u128 << attempt.saturating_sub(1).min(64);
    let cap = (policy.backoff_initial.as_millis().saturating_mul(factor))
        .min(policy.backoff_max.as_millis());
    let cap = u64::try_from(cap).unwrap_or(u64::MAX);
    Duration::from_millis(random % cap.saturating_add(1))
}

/// What follows the failure of attempt `attempt` (1-based), `elapsed` after the first attempt
/// started: a permanent failure, the last attempt, or a wait that would end beyond `max_age`
/// gives up.
pub fn next_step(
    policy: &RetryPolicy,
    attempt: u32,
    elapsed: Duration,
    failure: Failure,
    random: u64,
) -> Step {
    let wait = match failure {
        Failure::Permanent => return Step::GiveUp,
        Failure::Transient => backoff(policy, attempt, random),
        Failure::After(d) => d,
    };
    if attempt >= policy.max_attempts || elapsed + wait > policy.max_age {
        return Step::GiveUp;
    }
    Step::Wait(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        max_age: Duration::from_secs(60),
        backoff_initial: Duration::from_millis(500),
        backoff_max: Duration::from_secs(4),
    };

    #[test]
    fn backoff_doubles_up_to_the_cap_with_full_jitter() {
        assert_eq!(backoff(&P, 1, 500), Duration::from_millis(500));
        assert_eq!(backoff(&P, 1, 501), Duration::ZERO);
        assert_eq!(backoff(&P, 2, 1000), Duration::from_millis(1000));
        assert_eq!(backoff(&P, 3, 2000), Duration::from_millis(2000));
        assert_eq!(backoff(&P, 4, 4000), Duration::from_millis(4000));
        assert_eq!(backoff(&P, 5, 4000), Duration::from_millis(4000));
        assert_eq!(backoff(&P, 5, 8000), Duration::from_millis(8000 % 4001));
        assert_eq!(backoff(&P, 200, 4000), Duration::from_millis(4000));
        for r in [0, 7, 12345, u64::MAX] {
            assert!(backoff(&P, 3, r) <= Duration::from_secs(2));
        }
    }

    #[test]
    fn statuses() {
        assert_eq!(classify_status(204, None, 0), None);
        assert_eq!(classify_status(500, None, 0), Some(Failure::Transient));
        assert_eq!(classify_status(408, None, 0), Some(Failure::Transient));
        assert_eq!(classify_status(404, None, 0), Some(Failure::Permanent));
        assert_eq!(classify_status(400, Some("1"), 0), Some(Failure::Permanent));
        assert_eq!(
            classify_status(429, Some("3"), 0),
            Some(Failure::After(Duration::from_secs(3)))
        );
        assert_eq!(classify_status(429, None, 0), Some(Failure::Transient));
        assert_eq!(
            classify_status(503, Some("soon"), 0),
            Some(Failure::Transient)
        );
    }

    #[test]
    fn retry_after_as_seconds_or_http_date() {
        assert_eq!(
            parse_retry_after(" 120 ", 0),
            Some(Duration::from_secs(120))
        );
        // Sun, 06 Nov 1994 08:49:37 GMT = 784111777
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(
            parse_retry_after(date, 784_111_777 - 30),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after(date, 784_111_777 + 30),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-1", 0), None);
    }

    #[test]
    fn gives_up_on_refusal_attempts_or_age() {
        let s = |attempt, elapsed, failure| {
            next_step(&P, attempt, Duration::from_secs(elapsed), failure, 100)
        };
        assert_eq!(s(1, 0, Failure::Permanent), Step::GiveUp);
        assert_eq!(
            s(1, 0, Failure::Transient),
            Step::Wait(Duration::from_millis(100))
        );
        assert_eq!(s(5, 0, Failure::Transient), Step::GiveUp);
        let after = Failure::After(Duration::from_secs(10));
        assert_eq!(s(2, 0, after), Step::Wait(Duration::from_secs(10)));
        assert_eq!(s(2, 55, after), Step::GiveUp);
    }
}
