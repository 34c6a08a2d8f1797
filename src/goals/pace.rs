//! Pace: the fraction of a goal's target expected after a fraction of its window has elapsed; the
//! building block for issue 15's `pace` key, not yet used by the runtimes.

use rust_decimal::Decimal;
use thiserror::Error;
use toml::Value;

use crate::model::money::decimal_from_config_float;

/// How a goal's target accrues over its window: elapsed fraction of the window (0 to 1) to
/// expected fraction of the target (0 to 1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Pace {
    /// The target accrues evenly: the expected fraction is the elapsed fraction.
    #[default]
    Linear,
    /// Piecewise linear through `(elapsed, expected)` points, from `(0, 0)` to `(1, 1)`, elapsed
    /// strictly increasing and expected non-decreasing. Build it with [`Pace::from_points`], which
    /// checks exactly that; [`Pace::fraction`] stays total on a curve built by hand.
    Curve(Vec<(Decimal, Decimal)>),
}

/// Why a pace was not accepted.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PaceError {
    /// Neither `"linear"` nor a list of points.
    #[error("`{0}` is not a pace; allowed: \"linear\" (default) or a list of [elapsed, expected] points such as [[0.0, 0.0], [0.5, 0.3], [1.0, 1.0]]")]
    NotAPace(String),
    /// A list item that is not a pair of numbers.
    #[error("`{0}` is not a point: write [elapsed, expected], two numbers from 0 to 1")]
    NotAPoint(String),
    /// A coordinate that is not a finite number.
    #[error("`{0}` is not a number: pace coordinates are numbers from 0 to 1")]
    NotANumber(String),
    /// Fewer than two points.
    #[error("{0} point(s) given: a pace curve needs at least 2, from [0, 0] to [1, 1]")]
    TooFewPoints(usize),
    /// A coordinate outside `[0, 1]`.
    #[error("point [{elapsed}, {expected}] is outside [0, 1]: both coordinates are fractions from 0 to 1")]
    OutOfRange {
        /// The first coordinate.
        elapsed: Decimal,
        /// The second coordinate.
        expected: Decimal,
    },
    /// An elapsed fraction not above the one before.
    #[error("elapsed fraction {elapsed} after {previous}: the first coordinates must be strictly increasing")]
    NotIncreasing {
        /// The previous point's first coordinate.
        previous: Decimal,
        /// This point's first coordinate.
        elapsed: Decimal,
    },
    /// An expected fraction below the one before.
    #[error(
        "expected fraction {expected} after {previous}: the second coordinates must not decrease"
    )]
    Decreasing {
        /// The previous point's second coordinate.
        previous: Decimal,
        /// This point's second coordinate.
        expected: Decimal,
    },
    /// The curve does not start at `(0, 0)`.
    #[error("the first point is [{elapsed}, {expected}]: a pace curve starts at [0, 0]")]
    BadStart {
        /// The first point's first coordinate.
        elapsed: Decimal,
        /// The first point's second coordinate.
        expected: Decimal,
    },
    /// The curve does not end at `(1, 1)`.
    #[error("the last point is [{elapsed}, {expected}]: a pace curve ends at [1, 1]")]
    BadEnd {
        /// The last point's first coordinate.
        elapsed: Decimal,
        /// The last point's second coordinate.
        expected: Decimal,
    },
}

impl Pace {
    /// A curve through `points`, checked: at least 2 points, from `(0, 0)` to `(1, 1)`, every
    /// coordinate within `[0, 1]`, first coordinates strictly increasing, second non-decreasing.
    /// Coordinates are kept normalized (`0.50` becomes `0.5`).
    pub fn from_points(points: &[(Decimal, Decimal)]) -> Result<Pace, PaceError> {
        if points.len() < 2 {
            return Err(PaceError::TooFewPoints(points.len()));
        }
        let unit = Decimal::ZERO..=Decimal::ONE;
        let mut out: Vec<(Decimal, Decimal)> = Vec::with_capacity(points.len());
        for &(x, y) in points {
            let (x, y) = (x.normalize(), y.normalize());
            if !unit.contains(&x) || !unit.contains(&y) {
                return Err(PaceError::OutOfRange {
                    elapsed: x,
                    expected: y,
                });
            }
            if let Some(&(px, py)) = out.last() {
                if x <= px {
                    return Err(PaceError::NotIncreasing {
                        previous: px,
                        elapsed: x,
                    });
                }
                if y < py {
                    return Err(PaceError::Decreasing {
                        previous: py,
                        expected: y,
                    });
                }
            }
            out.push((x, y));
        }
        let (first, last) = (out[0], out[out.len() - 1]);
        if first != (Decimal::ZERO, Decimal::ZERO) {
            return Err(PaceError::BadStart {
                elapsed: first.0,
                expected: first.1,
            });
        }
        if last != (Decimal::ONE, Decimal::ONE) {
            return Err(PaceError::BadEnd {
                elapsed: last.0,
                expected: last.1,
            });
        }
        Ok(Pace::Curve(out))
    }

    /// Reads a goal-file value: the string `"linear"` or an array of `[elapsed, expected]` pairs
    /// of numbers (integers or floats; floats are read by their shortest text, so `0.3` is 0.3).
    pub fn from_toml_value(value: &Value) -> Result<Pace, PaceError> {
        match value {
            Value::String(s) if s == "linear" => Ok(Pace::Linear),
            Value::Array(items) => {
                let points = items
                    .iter()
                    .map(toml_point)
                    .collect::<Result<Vec<_>, _>>()?;
                Pace::from_points(&points)
            }
            other => Err(PaceError::NotAPace(other.to_string())),
        }
    }

    /// The expected fraction of the target once `elapsed` of the window has passed: piecewise
    /// linear between the points, `elapsed` clamped to `[0, 1]` first. Quotients are rounded to
    /// 28 significant digits, so the answer is the same on every machine.
    pub fn fraction(&self, elapsed: Decimal) -> Decimal {
        let e = elapsed.clamp(Decimal::ZERO, Decimal::ONE);
        let Pace::Curve(points) = self else {
            return e;
        };
        let Some(&(x0, y0)) = points.first() else {
            return e;
        };
        if e <= x0 {
            return y0;
        }
        for w in points.windows(2) {
            let ((xa, ya), (xb, yb)) = (w[0], w[1]);
            if e <= xb && xb > xa {
                return ya + (yb - ya) * (e - xa) / (xb - xa);
            }
        }
        points.last().map_or(e, |&(_, y)| y)
    }
}

/// One `[elapsed, expected]` item of a pace array.
fn toml_point(item: &Value) -> Result<(Decimal, Decimal), PaceError> {
    match item.as_array().map(Vec::as_slice) {
        Some([x, y]) => Ok((toml_number(x)?, toml_number(y)?)),
        _ => Err(PaceError::NotAPoint(item.to_string())),
    }
}

/// An integer or a finite float, exactly.
fn toml_number(v: &Value) -> Result<Decimal, PaceError> {
    let not_a_number = || PaceError::NotANumber(v.to_string());
    match v {
        Value::Integer(i) => Ok(Decimal::from(*i)),
        Value::Float(f) => decimal_from_config_float(*f).map_err(|_| not_a_number()),
        _ => Err(not_a_number()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn pts(p: &[(&str, &str)]) -> Vec<(Decimal, Decimal)> {
        p.iter().map(|&(x, y)| (d(x), d(y))).collect()
    }

    fn toml_pace(text: &str) -> Result<Pace, PaceError> {
        let table: toml::Table = format!("pace = {text}").parse().unwrap();
        Pace::from_toml_value(&table["pace"])
    }

    fn back_loaded() -> Pace {
        Pace::from_points(&pts(&[("0", "0"), ("0.5", "0.3"), ("1", "1")])).unwrap()
    }

    #[test]
    fn linear_is_the_elapsed_fraction_clamped() {
        assert_eq!(Pace::default(), Pace::Linear);
        assert_eq!(Pace::Linear.fraction(d("0.25")), d("0.25"));
        assert_eq!(Pace::Linear.fraction(d("-0.5")), Decimal::ZERO);
        assert_eq!(Pace::Linear.fraction(d("1.5")), Decimal::ONE);
    }

    #[test]
    fn curve_interpolates_between_points() {
        let p = back_loaded();
        assert_eq!(p.fraction(Decimal::ZERO), Decimal::ZERO);
        assert_eq!(p.fraction(d("0.25")), d("0.15"));
        assert_eq!(p.fraction(d("0.5")), d("0.3"));
        assert_eq!(p.fraction(d("0.75")), d("0.65"));
        assert_eq!(p.fraction(Decimal::ONE), Decimal::ONE);
        assert_eq!(p.fraction(d("-3")), Decimal::ZERO);
        assert_eq!(p.fraction(d("7")), Decimal::ONE);
    }

    #[test]
    fn flat_segments_and_thirds_are_exact_enough() {
        let p = Pace::from_points(&pts(&[
            ("0", "0"),
            ("0.3", "0.5"),
            ("0.6", "0.5"),
            ("1", "1"),
        ]))
        .unwrap();
        assert_eq!(p.fraction(d("0.45")), d("0.5"));
        assert_eq!(p.fraction(d("0.1")), d("0.5") / d("3"));
    }

    #[test]
    fn rejects_bad_curves_naming_the_value() {
        let cases: [(&[(&str, &str)], &str); 7] = [
            (
                &[("0", "0")],
                "1 point(s) given: a pace curve needs at least 2",
            ),
            (&[], "0 point(s) given"),
            (
                &[("0", "0"), ("0.5", "1.2"), ("1", "1")],
                "[0.5, 1.2] is outside [0, 1]",
            ),
            (
                &[("0", "0"), ("-0.1", "0"), ("1", "1")],
                "[-0.1, 0] is outside [0, 1]",
            ),
            (
                &[("0", "0"), ("0.5", "0.3"), ("0.5", "0.4"), ("1", "1")],
                "elapsed fraction 0.5 after 0.5: the first coordinates must be strictly increasing",
            ),
            (
                &[("0", "0"), ("0.5", "0.3"), ("0.6", "0.2"), ("1", "1")],
                "expected fraction 0.2 after 0.3: the second coordinates must not decrease",
            ),
            (
                &[("0.1", "0"), ("1", "1")],
                "the first point is [0.1, 0]: a pace curve starts at [0, 0]",
            ),
        ];
        for (points, want) in cases {
            let e = Pace::from_points(&pts(points)).unwrap_err().to_string();
            assert!(e.contains(want), "{points:?}: {e}");
        }
        let e = Pace::from_points(&pts(&[("0", "0"), ("1", "0.9")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the last point is [1, 0.9]: a pace curve ends at [1, 1]"
        );
    }

    #[test]
    fn reads_toml_values() {
        assert_eq!(toml_pace("\"linear\""), Ok(Pace::Linear));
        assert_eq!(
            toml_pace("[[0.0, 0.0], [0.5, 0.3], [1.0, 1.0]]"),
            Ok(back_loaded())
        );
        assert_eq!(toml_pace("[[0, 0], [0.5, 0.3], [1, 1]]"), Ok(back_loaded()));
        let p = toml_pace("[[0, 0], [0.1, 0.3], [1, 1]]").unwrap();
        assert_eq!(
            p,
            Pace::Curve(pts(&[("0", "0"), ("0.1", "0.3"), ("1", "1")]))
        );
    }

    #[test]
    fn rejects_bad_toml_values_naming_the_value() {
        let cases = [
            ("\"fast\"", "`\"fast\"` is not a pace; allowed: \"linear\""),
            ("1", "`1` is not a pace"),
            ("{ linear = true }", "is not a pace"),
            (
                "[[0, 0], [0.5], [1, 1]]",
                "`[0.5]` is not a point: write [elapsed, expected]",
            ),
            ("[[0, 0], 0.5, [1, 1]]", "`0.5` is not a point"),
            ("[[0, 0], [0.5, 0.3, 0.1], [1, 1]]", "is not a point"),
            (
                "[[0, 0], [\"0.5\", 0.3], [1, 1]]",
                "`\"0.5\"` is not a number",
            ),
            ("[[0, 0], [nan, 0.3], [1, 1]]", "`nan` is not a number"),
            ("[[0, 0], [0.5, inf], [1, 1]]", "`inf` is not a number"),
            ("[]", "0 point(s) given"),
            ("[[0, 0], [1, 2]]", "[1, 2] is outside [0, 1]"),
        ];
        for (text, want) in cases {
            let e = toml_pace(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn hand_built_curves_never_panic() {
        for points in [vec![], pts(&[("0.5", "0.5"), ("0.5", "0.7")])] {
            let p = Pace::Curve(points);
            for e in ["-1", "0", "0.5", "0.7", "1", "2"] {
                let f = p.fraction(d(e));
                assert!(f >= Decimal::ZERO && f <= Decimal::ONE, "{p:?} {e}: {f}");
            }
        }
    }

    /// Elapsed fractions from -1 to 2 with up to 6 decimal places.
    fn elapsed() -> impl Strategy<Value = Decimal> {
        (-1_000_000i64..=2_000_000).prop_map(|n| Decimal::new(n, 6))
    }

    /// A valid curve: 0 to 6 inner points on a grid of thousandths.
    fn curve() -> impl Strategy<Value = Pace> {
        (
            prop::collection::btree_set(1i64..1000, 0..6),
            prop::collection::vec(0i64..=1000, 6),
        )
            .prop_map(|(xs, mut ys)| {
                ys.truncate(xs.len());
                ys.sort_unstable();
                let mut points = vec![(Decimal::ZERO, Decimal::ZERO)];
                points.extend(
                    xs.into_iter()
                        .zip(ys)
                        .map(|(x, y)| (Decimal::new(x, 3), Decimal::new(y, 3))),
                );
                points.push((Decimal::ONE, Decimal::ONE));
                Pace::from_points(&points).unwrap()
            })
    }

    proptest! {
        /// `"linear"` and the identity curve `[[0, 0], [1, 1]]` agree everywhere.
        #[test]
        fn linear_equals_the_identity_curve(e in elapsed()) {
            let identity = Pace::from_points(&pts(&[("0", "0"), ("1", "1")])).unwrap();
            prop_assert_eq!(Pace::Linear.fraction(e), identity.fraction(e));
        }

        /// A valid curve is non-decreasing, stays within [0, 1] and passes through its points.
        #[test]
        fn curves_are_monotone_within_unit_and_hit_their_points(
            p in curve(),
            a in elapsed(),
            b in elapsed(),
        ) {
            let (lo, hi) = (a.min(b), a.max(b));
            let (flo, fhi) = (p.fraction(lo), p.fraction(hi));
            prop_assert!(flo <= fhi, "{:?}: f({}) = {} > f({}) = {}", p, lo, flo, hi, fhi);
            prop_assert!(flo >= Decimal::ZERO && fhi <= Decimal::ONE);
            let Pace::Curve(points) = &p else { unreachable!() };
            for &(x, y) in points {
                prop_assert_eq!(p.fraction(x), y);
            }
        }
    }
}
