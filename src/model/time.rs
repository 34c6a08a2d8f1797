//! Instants and durations on the event-time axis.
//!
//! Event time is kept as signed nanoseconds since the Unix epoch (UTC), which covers the years
//! 1677 to 2262 and makes every comparison and window computation an integer operation.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use thiserror::Error;

const NANOS_PER_MS: i64 = 1_000_000;
const NANOS_PER_SEC: i64 = 1_000_000_000;

/// An instant in event time: nanoseconds since 1970-01-01T00:00:00Z.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Why a timestamp could not be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TimestampError {
    /// The text is not RFC 3339 or lacks its offset.
    #[error(
        "`{0}` is not an RFC 3339 timestamp with an offset or `Z` (e.g. 2017-03-01T09:30:00Z)"
    )]
    Invalid(String),
    /// The instant lies outside the representable range.
    #[error("`{0}` is outside the supported range (years 1678 to 2261)")]
    OutOfRange(String),
}

impl Timestamp {
    /// The earliest representable instant.
    pub const MIN: Timestamp = Timestamp(i64::MIN);
    /// The latest representable instant.
    pub const MAX: Timestamp = Timestamp(i64::MAX);

    /// From nanoseconds since the epoch.
    pub const fn from_nanos(nanos: i64) -> Self {
        Timestamp(nanos)
    }

    /// From milliseconds since the epoch (saturating).
    pub const fn from_millis(millis: i64) -> Self {
        Timestamp(millis.saturating_mul(NANOS_PER_MS))
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// Milliseconds since the epoch, rounded towards negative infinity.
    pub const fn as_millis(self) -> i64 {
        self.0.div_euclid(NANOS_PER_MS)
    }

    /// Parses RFC 3339 text; an offset (or `Z`) is required.
    pub fn parse_rfc3339(text: &str) -> Result<Self, TimestampError> {
        let dt = DateTime::parse_from_rfc3339(text)
            .map_err(|_| TimestampError::Invalid(text.to_string()))?;
        dt.timestamp_nanos_opt()
            .map(Timestamp)
            .ok_or_else(|| TimestampError::OutOfRange(text.to_string()))
    }

    /// As a chrono UTC date-time.
    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_nanos(self.0)
    }

    /// From a chrono date-time; `None` outside the representable range.
    pub fn from_datetime<Tz: chrono::TimeZone>(dt: &DateTime<Tz>) -> Option<Self> {
        dt.timestamp_nanos_opt().map(Timestamp)
    }

    /// RFC 3339 in UTC with `Z`, with as many fractional digits as needed (none for whole seconds).
    pub fn to_rfc3339(self) -> String {
        self.to_datetime()
            .to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    /// `self + d`, saturating at the ends of the range.
    pub const fn saturating_add(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(d.0))
    }

    /// `self - d`, saturating at the ends of the range.
    pub const fn saturating_sub(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_sub(d.0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// A non-negative span of event time, written as an integer and a unit: `ms`, `s`, `m`, `h`, `d`
/// (24 hours) or `w` (7 days), e.g. `"7d"`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(i64);

/// Why a duration could not be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("`{0}` is not a duration: write a non-negative integer followed by ms, s, m, h, d or w (e.g. \"2d\")")]
pub struct DurationError(pub String);

impl Duration {
    /// The empty span.
    pub const ZERO: Duration = Duration(0);

    /// From nanoseconds.
    pub const fn from_nanos(n: i64) -> Self {
        Duration(n)
    }

    /// From milliseconds.
    pub const fn from_millis(ms: i64) -> Self {
        Duration(ms * NANOS_PER_MS)
    }

    /// From seconds.
    pub const fn from_secs(s: i64) -> Self {
        Duration(s * NANOS_PER_SEC)
    }

    /// Length in nanoseconds.
    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// Whether the span is empty.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || DurationError(text.to_string());
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        let (digits, unit) = t.split_at(split);
        if digits.is_empty() {
            return Err(err());
        }
        let n: i64 = digits.parse().map_err(|_| err())?;
        let unit_nanos: i64 = match unit {
            "ms" => NANOS_PER_MS,
            "s" => NANOS_PER_SEC,
            "m" => 60 * NANOS_PER_SEC,
            "h" => 3_600 * NANOS_PER_SEC,
            "d" => 86_400 * NANOS_PER_SEC,
            "w" => 7 * 86_400 * NANOS_PER_SEC,
            _ => return Err(err()),
        };
        n.checked_mul(unit_nanos).map(Duration).ok_or_else(err)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units: [(&str, i64); 6] = [
            ("w", 7 * 86_400 * NANOS_PER_SEC),
            ("d", 86_400 * NANOS_PER_SEC),
            ("h", 3_600 * NANOS_PER_SEC),
            ("m", 60 * NANOS_PER_SEC),
            ("s", NANOS_PER_SEC),
            ("ms", NANOS_PER_MS),
        ];
        for (name, size) in units {
            if self.0 != 0 && self.0 % size == 0 {
                return write!(f, "{}{}", self.0 / size, name);
            }
        }
        if self.0 == 0 {
            f.write_str("0s")
        } else {
            write!(f, "{}ns", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339_with_offsets() {
        let a = Timestamp::parse_rfc3339("2017-03-01T09:30:00Z").unwrap();
        let b = Timestamp::parse_rfc3339("2017-03-01T04:30:00-05:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_rfc3339(), "2017-03-01T09:30:00Z");
        let frac = Timestamp::parse_rfc3339("2017-03-01T09:30:00.250+00:00").unwrap();
        assert_eq!(frac.to_rfc3339(), "2017-03-01T09:30:00.250Z");
    }

    #[test]
    fn rejects_offsetless_and_garbage() {
        assert!(matches!(
            Timestamp::parse_rfc3339("2017-03-01T09:30:00"),
            Err(TimestampError::Invalid(_))
        ));
        assert!(Timestamp::parse_rfc3339("2017-03-01").is_err());
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(
            "7d".parse::<Duration>().unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!("1w".parse::<Duration>().unwrap(), "7d".parse().unwrap());
        assert_eq!(
            "250ms".parse::<Duration>().unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!("0s".parse::<Duration>().unwrap(), Duration::ZERO);
        for bad in ["", "d", "7", "7days", "-1d", "1.5h", "7 d x"] {
            assert!(bad.parse::<Duration>().is_err(), "{bad}");
        }
        assert_eq!(Duration::from_secs(172_800).to_string(), "2d");
        assert_eq!(Duration::from_millis(1500).to_string(), "1500ms");
    }
}
