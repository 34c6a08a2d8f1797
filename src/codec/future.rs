//! The plausibility bound on event time: an event whose `occurred_at` lies too far ahead is
//! rejected as `future_timestamp`, so that one bad clock cannot become stream time, close every
//! open window at once and make every later event late.
//!
//! Pure: the runtime reads the wall clock and passes it in.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use super::{DecodeError, RejectReason};
use crate::model::{Duration, Timestamp};

/// How far ahead an event may be: a duration, or `off` (no bound).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct MaxFuture(pub Option<Duration>);

impl MaxFuture {
    /// The default: 1 hour, as Kafka 4 brokers' default for record timestamps
    /// (`message.timestamp.after.max.ms`).
    pub const DEFAULT: MaxFuture = MaxFuture(Some(Duration::from_secs(3_600)));
}

impl Default for MaxFuture {
    fn default() -> Self {
        MaxFuture::DEFAULT
    }
}

/// Why a `max_future` setting could not be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("`{0}` is not a max_future: write a duration such as \"1h\" (a non-negative integer followed by ms, s, m, h, d or w), or \"off\"")]
pub struct MaxFutureError(pub String);

impl FromStr for MaxFuture {
    type Err = MaxFutureError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim() == "off" {
            return Ok(MaxFuture(None));
        }
        text.parse()
            .map(|d| MaxFuture(Some(d)))
            .map_err(|_| MaxFutureError(text.to_string()))
    }
}

impl fmt::Display for MaxFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(d) => d.fmt(f),
            None => f.write_str("off"),
        }
    }
}

/// What `occurred_at` is measured against.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum FutureFrom {
    /// The wall clock.
    #[default]
    Wall,
    /// Stream time: the latest `occurred_at` accepted so far (for historical input). The first
    /// event, before any was accepted, is measured against the wall clock.
    Stream,
}

/// Rejects events more than `max_future` ahead of the wall clock or of stream time.
#[derive(Clone, Debug)]
pub struct FutureBound {
    max_future: Duration,
    from: FutureFrom,
    /// `Wall`: the latest clock reading. `Stream`: stream time. `None` before the first.
    reference: Option<Timestamp>,
}

impl FutureBound {
    /// A bound of `max_future`, measured as `from` says; `None` when the setting is `off`.
    pub fn new(max_future: MaxFuture, from: FutureFrom) -> Option<Self> {
        max_future.0.map(|max_future| FutureBound {
            max_future,
            from,
            reference: None,
        })
    }

    /// Checks an event's `occurred_at`: more than `max_future` ahead is `future_timestamp`.
    /// `clock` reads the wall clock; it is called only when the answer depends on it, at most once:
    /// an earlier reading is a stricter bound, so an event within it needs no new one.
    pub fn check(
        &mut self,
        occurred_at: Timestamp,
        clock: impl FnOnce() -> Timestamp,
    ) -> Result<(), DecodeError> {
        let within = |r: Timestamp| occurred_at <= r.saturating_add(self.max_future);
        match (self.from, self.reference) {
            (FutureFrom::Stream, Some(stream)) if within(stream) => Ok(()),
            (FutureFrom::Stream, Some(stream)) => {
                Err(self.reject(occurred_at, "stream time", stream))
            }
            (FutureFrom::Wall, Some(earlier)) if within(earlier) => Ok(()),
            (from, _) => {
                let now = clock();
                if from == FutureFrom::Wall {
                    self.reference = Some(now);
                }
                if within(now) {
                    Ok(())
                } else {
                    Err(self.reject(occurred_at, "the wall clock", now))
                }
            }
        }
    }

    /// Notes an accepted event: with [`FutureFrom::Stream`], stream time advances to it.
    pub fn accepted(&mut self, occurred_at: Timestamp) {
        if self.from == FutureFrom::Stream {
            self.reference = Some(self.reference.map_or(occurred_at, |r| r.max(occurred_at)));
        }
    }

    fn reject(&self, occurred_at: Timestamp, what: &str, reference: Timestamp) -> DecodeError {
        DecodeError::new(
            RejectReason::FutureTimestamp,
            format!(
                "occurred_at `{occurred_at}` is more than max_future = {} ahead of {what} ({reference})",
                self.max_future
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    fn no_clock() -> Timestamp {
        panic!("the clock was read")
    }

    #[test]
    fn max_future_parses_durations_and_off() {
        assert_eq!("1h".parse(), Ok(MaxFuture::DEFAULT));
        assert_eq!(MaxFuture::default().to_string(), "1h");
        assert_eq!("off".parse(), Ok(MaxFuture(None)));
        assert_eq!(MaxFuture(None).to_string(), "off");
        assert_eq!(
            "0s".parse(),
            Ok(MaxFuture(Some(Duration::ZERO))),
            "0s: nothing ahead of the clock"
        );
        for bad in ["", "1", "soon", "-1h", "none"] {
            let e = bad.parse::<MaxFuture>().unwrap_err();
            assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
        }
        assert!(FutureBound::new(MaxFuture(None), FutureFrom::Wall).is_none());
    }

    #[test]
    fn wall_clock_bound_accepts_exactly_max_future_ahead_and_rejects_one_ms_more() {
        let now = t("2026-12-04T18:00:00Z");
        let mut bound = FutureBound::new(MaxFuture::DEFAULT, FutureFrom::Wall).unwrap();
        assert_eq!(bound.check(t("2026-12-04T19:00:00Z"), || now), Ok(()));
        // The reading is kept: an event within it needs no new one.
        assert_eq!(bound.check(t("2026-12-04T18:30:00Z"), no_clock), Ok(()));
        let e = bound
            .check(t("2026-12-04T19:00:00.001Z"), || now)
            .unwrap_err();
        assert_eq!(e.reason, RejectReason::FutureTimestamp);
        assert_eq!(
            e.detail,
            "occurred_at `2026-12-04T19:00:00.001Z` is more than max_future = 1h ahead of the \
             wall clock (2026-12-04T18:00:00Z)"
        );
        // Past events are fine, however old.
        assert_eq!(bound.check(t("1999-01-01T00:00:00Z"), no_clock), Ok(()));
    }

    #[test]
    fn a_suspect_event_reads_the_clock_again() {
        let mut bound = FutureBound::new(MaxFuture::DEFAULT, FutureFrom::Wall).unwrap();
        assert_eq!(
            bound.check(t("2026-12-04T10:00:00Z"), || t("2026-12-04T10:00:00Z")),
            Ok(())
        );
        // Two hours later on the clock: 11:30 is no longer in the future.
        assert_eq!(
            bound.check(t("2026-12-04T12:30:00Z"), || t("2026-12-04T12:00:00Z")),
            Ok(())
        );
        assert_eq!(bound.check(t("2026-12-04T13:00:00Z"), no_clock), Ok(()));
    }

    #[test]
    fn stream_bound_measures_against_the_latest_accepted_event() {
        let wall = t("2026-12-04T18:00:00Z");
        let mut bound = FutureBound::new(MaxFuture::DEFAULT, FutureFrom::Stream).unwrap();
        // The first event has no stream time to be measured against: the wall clock serves.
        let e = bound.check(t("2199-01-01T00:00:00Z"), || wall).unwrap_err();
        assert_eq!(e.reason, RejectReason::FutureTimestamp);
        assert!(e.detail.contains("the wall clock"), "{}", e.detail);
        assert_eq!(bound.check(t("2017-03-01T09:00:00Z"), || wall), Ok(()));
        bound.accepted(t("2017-03-01T09:00:00Z"));
        // From then on, stream time: exactly 1h ahead passes, 1 ms more does not.
        assert_eq!(bound.check(t("2017-03-01T10:00:00Z"), no_clock), Ok(()));
        let e = bound
            .check(t("2017-03-01T10:00:00.001Z"), no_clock)
            .unwrap_err();
        assert_eq!(e.reason, RejectReason::FutureTimestamp);
        assert_eq!(
            e.detail,
            "occurred_at `2017-03-01T10:00:00.001Z` is more than max_future = 1h ahead of stream \
             time (2017-03-01T09:00:00Z)"
        );
        // Stream time only moves forward: a late event does not pull it back.
        bound.accepted(t("2017-03-01T09:45:00Z"));
        bound.accepted(t("2017-03-01T09:15:00Z"));
        assert_eq!(bound.check(t("2017-03-01T10:45:00Z"), no_clock), Ok(()));
        assert!(bound
            .check(t("2017-03-01T10:45:00.001Z"), no_clock)
            .is_err());
    }

    #[test]
    fn wall_bound_ignores_accepted_events() {
        let now = t("2026-12-04T18:00:00Z");
        let mut bound = FutureBound::new(MaxFuture::DEFAULT, FutureFrom::Wall).unwrap();
        bound.accepted(t("2017-03-01T09:00:00Z"));
        assert_eq!(bound.check(t("2026-12-04T18:30:00Z"), || now), Ok(()));
    }
}
