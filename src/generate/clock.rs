//! Time: seconds since the epoch, and a business clock (Mon–Fri, 08:00–18:00 UTC).

pub(super) const NANOS_PER_SEC: i64 = 1_000_000_000;
pub(super) const HOUR: i64 = 3_600;
pub(super) const DAY: i64 = 86_400;
pub(super) const OPEN: i64 = 8 * HOUR;
pub(super) const BUSINESS_DAY: i64 = 10 * HOUR;
const BUSINESS_WEEK: i64 = 5 * BUSINESS_DAY;

/// Mean business seconds between two new leads (36 leads per business day).
pub(super) const LEAD_INTERARRIVAL: i64 = 1_000;

/// Business seconds elapsed since Monday 1969-12-29 08:00 UTC up to `t`; constant outside business
/// hours.
pub(super) fn to_business(t: i64) -> i64 {
    let days_since_monday = t.div_euclid(DAY) + 3; // 1970-01-01 was a Thursday
    let (weeks, weekday) = (
        days_since_monday.div_euclid(7),
        days_since_monday.rem_euclid(7),
    );
    let within = if weekday < 5 {
        (t.rem_euclid(DAY) - OPEN).clamp(0, BUSINESS_DAY)
    } else {
        0
    };
    weeks * BUSINESS_WEEK + weekday.min(5) * BUSINESS_DAY + within
}

/// The instant at business second `b` (the inverse of [`to_business`] within business hours).
pub(super) fn from_business(b: i64) -> i64 {
    let (weeks, rest) = (b.div_euclid(BUSINESS_WEEK), b.rem_euclid(BUSINESS_WEEK));
    let (weekday, within) = (rest / BUSINESS_DAY, rest % BUSINESS_DAY);
    (weeks * 7 + weekday - 3) * DAY + OPEN + within
}

/// `secs` business seconds after `t` (counting from the next opening if `t` is after hours).
pub(super) fn after_business(t: i64, secs: i64) -> i64 {
    from_business(to_business(t) + secs)
}
