//! Mergeable aggregates: count, sum, avg, min, max, count_distinct and ratio.
//!
//! Every aggregate is a commutative monoid: [`Aggregate::merge`] is associative and commutative,
//! and [`Aggregate::empty`] is its identity. Applying a [`Delta`] is the same as merging the
//! aggregate of that one event. This is what lets the Kafka runtime fold partials per input
//! partition and combine them at the owner of a goal and group.

use std::borrow::Cow;
use std::collections::HashSet;

use rust_decimal::Decimal;

use crate::goals::Metric;

/// One event's contribution to an aggregate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delta<'a> {
    /// One more event (count).
    Count,
    /// A numeric field value (sum, avg, min, max).
    Number(Decimal),
    /// A text value (count_distinct).
    Text(Cow<'a, str>),
    /// Whether the event counts above and below the line (ratio); at least one is true.
    Ratio {
        /// Matches the numerator filter.
        num: bool,
        /// Matches the denominator filter.
        den: bool,
    },
}

impl Delta<'_> {
    /// A copy that owns its text.
    pub fn into_owned(self) -> Delta<'static> {
        match self {
            Delta::Count => Delta::Count,
            Delta::Number(d) => Delta::Number(d),
            Delta::Text(t) => Delta::Text(Cow::Owned(t.into_owned())),
            Delta::Ratio { num, den } => Delta::Ratio { num, den },
        }
    }
}

/// The running state of one metric in one window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Aggregate {
    /// Number of events.
    Count(u64),
    /// Exact sum.
    Sum(Decimal),
    /// Exact sum and count; the value is their quotient.
    Avg {
        /// Sum of values.
        sum: Decimal,
        /// Number of values.
        count: u64,
    },
    /// Smallest value seen.
    Min(Option<Decimal>),
    /// Largest value seen.
    Max(Option<Decimal>),
    /// The distinct values seen.
    Distinct(HashSet<Box<str>>),
    /// Numerator and denominator counts.
    Ratio {
        /// Events matching the numerator filter.
        num: u64,
        /// Events matching the denominator filter.
        den: u64,
    },
}

/// Exact addition that saturates instead of overflowing (beyond ~7.9 x 10^28, out of reach of
/// inputs limited to |amount| < 10^18).
fn add(a: Decimal, b: Decimal) -> Decimal {
    a.checked_add(b).unwrap_or(if b.is_sign_negative() {
        Decimal::MIN
    } else {
        Decimal::MAX
    })
}

impl Aggregate {
    /// The identity for a metric.
    pub fn empty(metric: Metric) -> Aggregate {
        match metric {
            Metric::Count => Aggregate::Count(0),
            Metric::Sum => Aggregate::Sum(Decimal::ZERO),
            Metric::Avg => Aggregate::Avg {
                sum: Decimal::ZERO,
                count: 0,
            },
            Metric::Min => Aggregate::Min(None),
            Metric::Max => Aggregate::Max(None),
            Metric::CountDistinct => Aggregate::Distinct(HashSet::new()),
            Metric::Ratio => Aggregate::Ratio { num: 0, den: 0 },
        }
    }

    /// Folds one event in. A delta of the wrong shape for this aggregate is ignored (the router
    /// never produces one).
    #[inline]
    pub fn apply(&mut self, delta: &Delta<'_>) {
        self.apply_within(delta, usize::MAX);
    }

    /// Folds one event in, unless it is a new distinct value and `max_distinct` values are held
    /// already: then nothing changes and the answer is `false`.
    #[inline]
    pub fn apply_within(&mut self, delta: &Delta<'_>, max_distinct: usize) -> bool {
        match (self, delta) {
            (Aggregate::Count(c), Delta::Count) => *c += 1,
            (Aggregate::Sum(s), Delta::Number(d)) => *s = add(*s, *d),
            (Aggregate::Avg { sum, count }, Delta::Number(d)) => {
                *sum = add(*sum, *d);
                *count += 1;
            }
            (Aggregate::Min(m), Delta::Number(d)) if m.is_none_or(|cur| *d < cur) => {
                *m = Some(*d);
            }
            (Aggregate::Max(m), Delta::Number(d)) if m.is_none_or(|cur| *d > cur) => {
                *m = Some(*d);
            }
            (Aggregate::Distinct(set), Delta::Text(t)) if !set.contains(t.as_ref()) => {
                if set.len() >= max_distinct {
                    return false;
                }
                set.insert(Box::from(t.as_ref()));
            }
            (Aggregate::Ratio { num, den }, Delta::Ratio { num: n, den: d }) => {
                *num += u64::from(*n);
                *den += u64::from(*d);
            }
            _ => {}
        }
        true
    }

    /// Combines another partial of the same metric into this one.
    pub fn merge(&mut self, other: &Aggregate) {
        match (self, other) {
            (Aggregate::Count(a), Aggregate::Count(b)) => *a += b,
            (Aggregate::Sum(a), Aggregate::Sum(b)) => *a = add(*a, *b),
            (Aggregate::Avg { sum, count }, Aggregate::Avg { sum: s, count: c }) => {
                *sum = add(*sum, *s);
                *count += c;
            }
            (Aggregate::Min(a), Aggregate::Min(b)) => {
                *a = match (*a, *b) {
                    (Some(x), Some(y)) => Some(x.min(y)),
                    (x, y) => x.or(y),
                }
            }
            (Aggregate::Max(a), Aggregate::Max(b)) => {
                *a = match (*a, *b) {
                    (Some(x), Some(y)) => Some(x.max(y)),
                    (x, y) => x.or(y),
                }
            }
            (Aggregate::Distinct(a), Aggregate::Distinct(b)) => {
                a.extend(b.iter().cloned());
            }
            (Aggregate::Ratio { num, den }, Aggregate::Ratio { num: n, den: d }) => {
                *num += n;
                *den += d;
            }
            _ => {}
        }
    }

    /// The KPI value: exact for count, sum, min, max and count_distinct; quotients rounded to 28
    /// significant digits. `None` for avg without values, min/max without values, and ratio with a
    /// zero denominator.
    pub fn value(&self) -> Option<Decimal> {
        match self {
            Aggregate::Count(c) => Some(Decimal::from(*c)),
            Aggregate::Sum(s) => Some(*s),
            Aggregate::Avg { sum, count } => {
                (*count > 0).then(|| sum.checked_div(Decimal::from(*count)))?
            }
            Aggregate::Min(m) | Aggregate::Max(m) => *m,
            Aggregate::Distinct(set) => Some(Decimal::from(set.len() as u64)),
            Aggregate::Ratio { num, den } => {
                (*den > 0).then(|| Decimal::from(*num).checked_div(Decimal::from(*den)))?
            }
        }
    }

    /// The denominator count of a ratio (0 for other metrics).
    pub fn denominator(&self) -> u64 {
        match self {
            Aggregate::Ratio { den, .. } => *den,
            _ => 0,
        }
    }

    /// A rough size in bytes, for state-size reporting.
    pub fn size_estimate(&self) -> usize {
        let base = std::mem::size_of::<Aggregate>();
        match self {
            Aggregate::Distinct(set) => base + set.iter().map(|s| s.len() + 24).sum::<usize>(),
            _ => base,
        }
    }
}

#[cfg(test)]
mod tests;
