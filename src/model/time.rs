//! Instants, durations and half-open windows on the event-time axis.
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

    /// The wall clock, for runtimes (the engine never reads it). A clock before 1970 reads as the
    /// epoch, one beyond the range as its end.
    pub fn now() -> Self {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Timestamp(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
            Err(_) => Timestamp(0),
        }
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
        if let Some(t) = parse_common_rfc3339(text.as_bytes()) {
            return Ok(t);
        }
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

/// The fast path of [`Timestamp::parse_rfc3339`] for the common shape
/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`. `None` for anything else (including leap seconds),
/// which then goes through chrono; where it answers, it agrees with chrono (see the tests).
fn parse_common_rfc3339(b: &[u8]) -> Option<Timestamp> {
    fn digits(b: &[u8]) -> Option<i64> {
        let mut n = 0i64;
        for &c in b {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + i64::from(c - b'0');
        }
        Some(n)
    }
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &b[19..];
    let mut nanos = 0i64;
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        nanos = digits(&rest[1..=n])? * 10i64.pow(9 - n as u32);
        rest = &rest[1 + n..];
    }
    let offset_secs = match rest {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let oh = digits(&[*h1, *h2])?;
            let om = digits(&[*m1, *m2])?;
            if oh > 23 || om > 59 {
                return None;
            }
            let secs = oh * 3600 + om * 60;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    secs.checked_mul(NANOS_PER_SEC)?
        .checked_add(nanos)
        .map(Timestamp)
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

/// Written as a string such as `"500ms"` or `"1h"` (see [`Duration::from_str`]).
impl<'de> serde::Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
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

/// A half-open window `[start, end)` of event time.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    /// First instant in the window.
    pub start: Timestamp,
    /// First instant after the window.
    pub end: Timestamp,
}

impl Window {
    /// Whether `start <= t < end`.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.start, self.end)
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
    fn fast_path_agrees_with_chrono() {
        let cases = [
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.999999999Z",
            "2000-02-29T12:00:00+05:30",
            "2016-12-31T23:59:59-14:00",
            "2017-03-01T09:30:00.1Z",
            "2100-02-28T00:00:00-00:00",
            "2261-12-31T23:59:59Z",
            "1678-01-01T00:00:00Z",
        ];
        for c in cases {
            let fast = parse_common_rfc3339(c.as_bytes());
            let slow = DateTime::parse_from_rfc3339(c)
                .unwrap()
                .timestamp_nanos_opt()
                .map(Timestamp);
            assert_eq!(fast, slow, "{c}");
        }
        for rejected_by_fast_path in [
            "2017-02-29T00:00:00Z",
            "2017-03-01T24:00:00Z",
            "2017-03-01T09:30:60Z",
            "2017-03-01t09:30:00Z",
            "2017-03-01 09:30:00Z",
            "2017-03-01T09:30:00",
            "2017-03-01T09:30:00.Z",
            "2017-03-01T09:30:00+0530",
        ] {
            assert_eq!(
                parse_common_rfc3339(rejected_by_fast_path.as_bytes()),
                None,
                "{rejected_by_fast_path}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn fast_path_matches_chrono_on_random_instants(
            secs in -9_000_000_000i64..9_000_000_000,
            nanos in 0u32..1_000_000_000,
            offset_min in -(23 * 60 + 59)..(23 * 60 + 59i32),
            digits in 0usize..10,
        ) {
            let off = chrono::FixedOffset::east_opt(offset_min * 60).unwrap();
            let dt = DateTime::from_timestamp(secs, nanos).unwrap().with_timezone(&off);
            let frac = if digits == 0 { String::new() } else { format!(".{:09}", nanos)[..=digits].to_string() };
            let text = format!("{}{}{}", dt.format("%Y-%m-%dT%H:%M:%S"), frac, dt.format("%:z"));
            let slow = DateTime::parse_from_rfc3339(&text).unwrap().timestamp_nanos_opt().map(Timestamp);
            proptest::prop_assert_eq!(parse_common_rfc3339(text.as_bytes()), slow, "{}", text);
        }
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
