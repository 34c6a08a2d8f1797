//! A group's status at one tick and the at-risk / on-track hysteresis; the building block for
//! issue 15's `status` key, not yet used by the runtimes.
//!
//! At each tick the caller evaluates the group ([`StatusRule::evaluate`]) from its value as of the
//! tick and feeds the resulting [`Condition`] to the group's [`StatusTracker`], which decides
//! whether an `at_risk` or `on_track` transition fires. Everything is exact [`Decimal`] arithmetic
//! (quotients rounded to 28 significant digits), so every runtime reaches the same answer.

use rust_decimal::Decimal;

use crate::goals::{Direction, Pace};
use crate::model::{Duration, Timestamp};

/// The value expected by now: `target × pace(elapsed)`.
pub fn expected(target: Decimal, pace: &Pace, elapsed: Decimal) -> Decimal {
    target * pace.fraction(elapsed)
}

/// The value projected at the window's end. `at_least`: `value / pace(elapsed)`, `None` while
/// the pace expects nothing yet. `at_most`: `value / elapsed` (linear extrapolation), `None` at
/// the window's start. `elapsed` is clamped to `[0, 1]`; a projection beyond [`Decimal`]'s range
/// saturates at `Decimal::MAX` (or `MIN` for a negative value).
pub fn projected(
    direction: Direction,
    value: Decimal,
    pace: &Pace,
    elapsed: Decimal,
) -> Option<Decimal> {
    let by = match direction {
        Direction::AtLeast => pace.fraction(elapsed),
        Direction::AtMost => elapsed.clamp(Decimal::ZERO, Decimal::ONE),
    };
    if by.is_zero() {
        return None;
    }
    Some(
        value
            .checked_div(by)
            .unwrap_or(if value.is_sign_negative() {
                Decimal::MIN
            } else {
                Decimal::MAX
            }),
    )
}

/// Where a group stands at one tick, relative to the two thresholds of the hysteresis.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Condition {
    /// `at_least`: value < expected × (1 − tolerance); `at_most`: projected > target.
    AtRisk,
    /// Neither threshold is crossed: a group keeps its status.
    Between,
    /// `at_least`: value ≥ expected; `at_most`: projected ≤ target.
    OnTrack,
}

/// The status settings of one goal, as used at every tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusRule {
    /// The goal's target.
    pub target: Decimal,
    /// Which side of the target is good.
    pub direction: Direction,
    /// How the target accrues over the window.
    pub pace: Pace,
    /// How far below the expected value an `at_least` group may fall before it is at risk, as a
    /// fraction of the expected value within `[0, 1]`; unused by `at_most`.
    pub tolerance: Decimal,
    /// How long (in ticks' event time) a group must stay at risk before `at_risk` fires.
    pub hold: Duration,
}

/// The evaluation of one group at one tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation {
    /// The value as of the tick.
    pub value: Decimal,
    /// See [`expected`].
    pub expected: Decimal,
    /// See [`projected`].
    pub projected: Option<Decimal>,
    /// Which side of the thresholds the group is on.
    pub condition: Condition,
}

impl StatusRule {
    /// Evaluates a group whose value as of the tick is `value`, `elapsed` of the window in.
    /// An `at_most` group without a projection (at the window's start) is [`Condition::Between`].
    pub fn evaluate(&self, value: Decimal, elapsed: Decimal) -> Evaluation {
        let expected = expected(self.target, &self.pace, elapsed);
        let projected = projected(self.direction, value, &self.pace, elapsed);
        let condition = match (self.direction, projected) {
            (Direction::AtLeast, _) => {
                if value < expected * (Decimal::ONE - self.tolerance) {
                    Condition::AtRisk
                } else if value >= expected {
                    Condition::OnTrack
                } else {
                    Condition::Between
                }
            }
            (Direction::AtMost, None) => Condition::Between,
            (Direction::AtMost, Some(p)) if p > self.target => Condition::AtRisk,
            (Direction::AtMost, Some(_)) => Condition::OnTrack,
        };
        Evaluation {
            value,
            expected,
            projected,
            condition,
        }
    }
}

/// A group's status between ticks.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum StatusState {
    /// No `at_risk` outstanding, and the last tick was not at risk.
    #[default]
    OnTrack,
    /// At risk at every tick since `since`, but not yet for the rule's `hold`.
    Pending {
        /// The first tick of the current at-risk run.
        since: Timestamp,
    },
    /// `at_risk` has fired and `on_track` has not fired since.
    AtRisk,
}

/// A status change to report.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Transition {
    /// The group has been at risk for the rule's `hold`.
    AtRisk,
    /// The group, after `at_risk`, has reached the on-track threshold again.
    OnTrack,
}

/// The status of one group in one window, fed every tick in order. Plain data, so a changelog can
/// hold it and a restored tracker behaves exactly like the original.
///
/// `at_risk` fires at the first tick `t` of an at-risk run (consecutive ticks whose condition is
/// [`Condition::AtRisk`]) that started at tick `s` with `t - s >= hold`: both ends count, so with
/// daily ticks and `hold = 2d` the group must be at risk at three consecutive ticks, and
/// `hold = 0` fires at the first at-risk tick. A tick that is not at risk ends the run. `on_track`
/// fires only after `at_risk`, at the first tick whose condition is [`Condition::OnTrack`];
/// [`Condition::Between`] changes nothing. So transitions alternate, starting with `at_risk`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct StatusTracker {
    /// The status after the last tick.
    pub state: StatusState,
    /// The last tick fed; `None` before the first.
    pub last_tick: Option<Timestamp>,
}

impl StatusTracker {
    /// Feeds the condition at `tick`, returning the transition it fires, if any. A tick at or
    /// before the last one fed is ignored, so a tick delivered again never fires twice.
    pub fn observe(
        &mut self,
        tick: Timestamp,
        condition: Condition,
        hold: Duration,
    ) -> Option<Transition> {
        if self.last_tick.is_some_and(|last| tick <= last) {
            return None;
        }
        self.last_tick = Some(tick);
        let (state, fired) = match (self.state, condition) {
            (StatusState::AtRisk, Condition::OnTrack) => {
                (StatusState::OnTrack, Some(Transition::OnTrack))
            }
            (StatusState::AtRisk, _) => (StatusState::AtRisk, None),
            (StatusState::OnTrack, Condition::AtRisk) => at_risk_since(tick, tick, hold),
            (StatusState::Pending { since }, Condition::AtRisk) => at_risk_since(since, tick, hold),
            (StatusState::OnTrack | StatusState::Pending { .. }, _) => (StatusState::OnTrack, None),
        };
        self.state = state;
        fired
    }
}

/// The state after tick `tick` of an at-risk run that started at `since`.
fn at_risk_since(
    since: Timestamp,
    tick: Timestamp,
    hold: Duration,
) -> (StatusState, Option<Transition>) {
    let run = i128::from(tick.as_nanos()) - i128::from(since.as_nanos());
    if run >= i128::from(hold.as_nanos()) {
        (StatusState::AtRisk, Some(Transition::AtRisk))
    } else {
        (StatusState::Pending { since }, None)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const DAY: i64 = 86_400_000_000_000;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    /// A curve through (0, 0), (0.5, `expected`) and (1, 1).
    fn half_way_at(expected: &str) -> Pace {
        let points = [
            (Decimal::ZERO, Decimal::ZERO),
            (d("0.5"), d(expected)),
            (Decimal::ONE, Decimal::ONE),
        ];
        Pace::from_points(&points).unwrap()
    }

    fn day(n: i64) -> Timestamp {
        Timestamp::from_nanos(n * DAY)
    }

    fn days(n: i64) -> Duration {
        Duration::from_nanos(n * DAY)
    }

    fn rule(direction: Direction, target: &str, tolerance: &str) -> StatusRule {
        StatusRule {
            target: d(target),
            direction,
            pace: Pace::Linear,
            tolerance: d(tolerance),
            hold: days(2),
        }
    }

    /// Feeds `conditions` at days 1, 2, ... and returns the transitions with their day.
    fn feed(
        tracker: &mut StatusTracker,
        conditions: &[Condition],
        hold: Duration,
    ) -> Vec<(i64, Transition)> {
        (1..)
            .zip(conditions)
            .filter_map(|(n, &c)| tracker.observe(day(n), c, hold).map(|t| (n, t)))
            .collect()
    }

    use Condition::{AtRisk as R, Between as B, OnTrack as K};

    #[test]
    fn expected_follows_the_pace() {
        let back_loaded = half_way_at("0.3");
        assert_eq!(expected(d("1000"), &Pace::Linear, d("0.25")), d("250"));
        assert_eq!(expected(d("1000"), &back_loaded, d("0.5")), d("300"));
        assert_eq!(expected(d("1000"), &back_loaded, d("2")), d("1000"));
    }

    #[test]
    fn projections() {
        let back_loaded = half_way_at("0.25");
        let at_least = |v: &str, e: &str| projected(Direction::AtLeast, d(v), &back_loaded, d(e));
        assert_eq!(at_least("100", "0.5"), Some(d("400")));
        assert_eq!(at_least("100", "0"), None);
        assert_eq!(at_least("-100", "0.5"), Some(d("-400")));
        let at_most = |v: &str, e: &str| projected(Direction::AtMost, d(v), &back_loaded, d(e));
        assert_eq!(at_most("100", "0.5"), Some(d("200")));
        assert_eq!(at_most("100", "0"), None);
        assert_eq!(at_most("100", "-1"), None);
        let tiny = Decimal::new(1, 28);
        let huge = projected(Direction::AtMost, Decimal::MAX, &Pace::Linear, tiny);
        assert_eq!(huge, Some(Decimal::MAX));
        let low = projected(Direction::AtMost, Decimal::MIN, &Pace::Linear, tiny);
        assert_eq!(low, Some(Decimal::MIN));
    }

    #[test]
    fn thresholds() {
        use Direction::{AtLeast, AtMost};
        // Target 1000, tolerance 0.1, linear pace. Half-way an at_least goal expects 500 and is at
        // risk below 450; a quarter through, an at_most value of 250 projects to the target.
        let cases = [
            (AtLeast, "0.5", "449.99", R),
            (AtLeast, "0.5", "450", B),
            (AtLeast, "0.5", "499.99", B),
            (AtLeast, "0.5", "500", K),
            (AtLeast, "0", "0", K),
            (AtMost, "0.25", "250", K),
            (AtMost, "0.25", "250.01", R),
            (AtMost, "0", "5", B),
        ];
        for (direction, elapsed, value, want) in cases {
            let got = rule(direction, "1000", "0.1").evaluate(d(value), d(elapsed));
            assert_eq!(
                got.condition, want,
                "{direction:?} {elapsed} {value}: {got:?}"
            );
        }
        let e = rule(AtLeast, "1000", "0.1").evaluate(d("400"), d("0.5"));
        let want = Evaluation {
            value: d("400"),
            expected: d("500"),
            projected: Some(d("800")),
            condition: R,
        };
        assert_eq!(e, want);
        assert_eq!(
            rule(AtMost, "1000", "0").evaluate(d("5"), d("0")).projected,
            None
        );
        // No tolerance: no zone between the thresholds.
        let strict = rule(AtLeast, "1000", "0");
        assert_eq!(strict.evaluate(d("499.99"), d("0.5")).condition, R);
        assert_eq!(strict.evaluate(d("500"), d("0.5")).condition, K);
    }

    #[test]
    fn at_risk_waits_for_hold_counting_both_ends() {
        let mut t = StatusTracker::default();
        assert_eq!(
            feed(&mut t, &[K, R, R, R, R], days(2)),
            vec![(4, Transition::AtRisk)]
        );
        assert_eq!(t.state, StatusState::AtRisk);
        let mut t = StatusTracker::default();
        assert_eq!(
            feed(&mut t, &[R], Duration::ZERO),
            vec![(1, Transition::AtRisk)]
        );
    }

    #[test]
    fn a_tick_not_at_risk_restarts_the_run() {
        let mut t = StatusTracker::default();
        assert_eq!(feed(&mut t, &[R, R, B, R, R, K, R], days(2)), vec![]);
        assert_eq!(t.state, StatusState::Pending { since: day(7) });
        assert_eq!(t.last_tick, Some(day(7)));
    }

    #[test]
    fn hysteresis_and_each_transition_once() {
        let mut t = StatusTracker::default();
        let got = feed(&mut t, &[R, R, R, B, R, B, B, K, K, B, R], days(1));
        assert_eq!(got, vec![(2, Transition::AtRisk), (8, Transition::OnTrack)]);
        assert_eq!(t.state, StatusState::Pending { since: day(11) });
    }

    #[test]
    fn a_tick_fed_again_is_ignored() {
        let mut t = StatusTracker::default();
        assert_eq!(
            t.observe(day(1), R, Duration::ZERO),
            Some(Transition::AtRisk)
        );
        let after = t;
        assert_eq!(t.observe(day(1), R, Duration::ZERO), None);
        assert_eq!(t.observe(day(0), K, Duration::ZERO), None);
        assert_eq!(t, after);
        assert_eq!(
            t.observe(day(2), K, Duration::ZERO),
            Some(Transition::OnTrack)
        );
    }

    fn condition() -> impl Strategy<Value = Condition> {
        prop::sample::select(vec![R, B, K])
    }

    /// Ticks 1 to 3 days apart, each with a condition.
    fn ticks() -> impl Strategy<Value = Vec<(Timestamp, Condition)>> {
        prop::collection::vec((1i64..=3, condition()), 0..40).prop_map(|steps| {
            let mut at = 0;
            steps
                .into_iter()
                .map(|(gap, c)| {
                    at += gap;
                    (day(at), c)
                })
                .collect()
        })
    }

    fn state() -> impl Strategy<Value = StatusState> {
        prop_oneof![
            Just(StatusState::OnTrack),
            Just(StatusState::AtRisk),
            Just(StatusState::Pending { since: day(0) }),
        ]
    }

    proptest! {
        /// Transitions alternate, starting with `at_risk`: no two equal ones in a row.
        #[test]
        fn transitions_alternate(ticks in ticks(), hold in 0i64..5) {
            let mut t = StatusTracker::default();
            let fired: Vec<Transition> = ticks
                .iter()
                .filter_map(|&(at, c)| t.observe(at, c, days(hold)))
                .collect();
            prop_assert!(fired.first().is_none_or(|f| *f == Transition::AtRisk), "{:?}", fired);
            prop_assert!(fired.windows(2).all(|w| w[0] != w[1]), "{:?}", fired);
        }

        /// `at_risk` fires exactly when the current at-risk run has lasted `hold` and none is
        /// outstanding, so never before `hold` has elapsed; `on_track` exactly when one is.
        #[test]
        fn at_risk_fires_exactly_after_hold(ticks in ticks(), hold in 0i64..5) {
            let hold = days(hold);
            let mut t = StatusTracker::default();
            let (mut run_start, mut outstanding) = (None, false);
            for (at, c) in ticks {
                run_start = if c == R { run_start.or(Some(at)) } else { None };
                let long_enough = run_start.is_some_and(|s: Timestamp| {
                    at.as_nanos() - s.as_nanos() >= hold.as_nanos()
                });
                let want = if !outstanding && long_enough {
                    Some(Transition::AtRisk)
                } else if outstanding && c == K {
                    Some(Transition::OnTrack)
                } else {
                    None
                };
                prop_assert_eq!(t.observe(at, c, hold), want, "at {}", at);
                outstanding = match want {
                    Some(Transition::AtRisk) => true,
                    Some(Transition::OnTrack) => false,
                    None => outstanding,
                };
            }
        }

        /// An at_least value that moves anywhere between the two thresholds fires nothing, and an
        /// outstanding `at_risk` (or its absence) stays as it was.
        #[test]
        fn oscillating_between_thresholds_fires_nothing(
            start in state(),
            target in 1i64..1_000_000,
            tolerance in 1i64..=100,
            steps in prop::collection::vec((1i64..=1000, 0i64..=1000), 1..30),
        ) {
            let rule = StatusRule {
                target: Decimal::from(target),
                direction: Direction::AtLeast,
                pace: Pace::Linear,
                tolerance: Decimal::new(tolerance, 2),
                hold: Duration::ZERO,
            };
            let mut t = StatusTracker { state: start, last_tick: Some(day(0)) };
            for (n, (elapsed, below)) in (1..).zip(steps) {
                let elapsed = Decimal::new(elapsed, 3);
                let expected = expected(rule.target, &rule.pace, elapsed);
                // From just below expected down to the at-risk threshold itself.
                let value = expected - expected * rule.tolerance * Decimal::new(below.max(1), 3);
                let e = rule.evaluate(value, elapsed);
                prop_assert_eq!(e.condition, B, "{:?}", e);
                prop_assert_eq!(t.observe(day(n), e.condition, rule.hold), None);
            }
            let kept = if start == StatusState::AtRisk { start } else { StatusState::OnTrack };
            prop_assert_eq!(t.state, kept);
        }
    }
}
