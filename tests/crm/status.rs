//! Look-ahead status, computed independently: each agent's value at every weekly tick of every
//! quarter, its condition against the pace, and the at-risk / on-track transitions of the
//! hysteresis.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Days, NaiveTime, TimeDelta, TimeZone, Utc};
use rust_decimal::Decimal;

use crate::expected::*;
use crate::goals::*;
use crate::output::Attainment;
use crate::roster::{deals_of, key, value_of, Span};

/// One `at_risk` or `on_track` event.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Transition {
    pub(crate) key: Key,
    pub(crate) tick: String,
    pub(crate) kind: &'static str,
    pub(crate) value: Decimal,
    pub(crate) expected: Decimal,
    pub(crate) projected: Option<Decimal>,
}

/// Where a group stands at a tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Condition {
    AtRisk,
    Between,
    OnTrack,
}

/// The status state between ticks.
#[derive(Clone, Copy, Debug)]
enum State {
    OnTrack,
    Pending(DateTime<Utc>),
    AtRisk,
}

/// The ticks of `window`: local midnights `anchor + k * every` (k >= 1) strictly inside it, where
/// `anchor` is the Monday starting the week of the window's first local date. (New York's DST
/// changes are at 02:00, so every local midnight exists and is unique.)
pub(crate) fn ticks(look: &LookSpec, (start, end): Span) -> Vec<DateTime<Utc>> {
    let tz = look.spec.tz;
    let first = start.with_timezone(&tz).date_naive();
    let anchor = first - Days::new(u64::from(first.weekday().num_days_from_monday()));
    (1..)
        .map(|k| {
            let day = anchor + Days::new(k * look.every_days);
            tz.from_local_datetime(&day.and_time(NaiveTime::MIN))
                .single()
                .expect("New York midnights are unambiguous")
                .with_timezone(&Utc)
        })
        .skip_while(|t| *t <= start)
        .take_while(|t| *t < end)
        .collect()
}

/// The fraction of the target expected when `elapsed` of the window has passed: piecewise linear
/// through the pace points, or `elapsed` itself for a linear pace.
pub(crate) fn pace(look: &LookSpec, elapsed: Decimal) -> Decimal {
    let points: Vec<(Decimal, Decimal)> = look.pace.iter().map(|(x, y)| (dec(x), dec(y))).collect();
    let Some(segment) = points
        .windows(2)
        .find(|s| s[0].0 <= elapsed && elapsed <= s[1].0)
    else {
        return elapsed;
    };
    let ((x0, y0), (x1, y1)) = (segment[0], segment[1]);
    y0 + (elapsed - x0) * (y1 - y0) / (x1 - x0)
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str_exact(text).unwrap()
}

/// (tick - start) / (end - start), exactly as far as a decimal goes.
fn elapsed((start, end): Span, tick: DateTime<Utc>) -> Decimal {
    Decimal::from((tick - start).num_seconds()) / Decimal::from((end - start).num_seconds())
}

/// The transitions of one agent's window. A tick is evaluated once the log has started by then
/// (its earliest event is before the tick); `deals` are the agent's deals in the window.
pub(crate) fn transitions(
    look: &LookSpec,
    agent: &str,
    window: Span,
    deals: &[&Deal],
    earliest: DateTime<Utc>,
) -> Vec<Transition> {
    let spec = &look.spec;
    let (target, tolerance) = (spec.target(), dec(look.tolerance));
    let hold = TimeDelta::days(look.hold_days);
    let mut state = State::OnTrack;
    let mut out = Vec::new();
    for tick in ticks(look, window) {
        let before_tick = deals.iter().filter(|d| d.at < tick);
        if earliest >= tick && before_tick.clone().next().is_none() {
            continue;
        }
        let value = value_of(spec, before_tick.copied());
        let paced = pace(look, elapsed(window, tick));
        let expected = target * paced;
        let floor = expected * (Decimal::ONE - tolerance);
        if !terminates(window, tick) {
            assert_no_tie(value, &[floor, expected], agent, tick);
        }
        let condition = if value < floor {
            Condition::AtRisk
        } else if value >= expected {
            Condition::OnTrack
        } else {
            Condition::Between
        };
        let (next, fired) = step(state, condition, tick, hold);
        state = next;
        if let Some(kind) = fired {
            out.push(Transition {
                key: key(spec, agent, window),
                tick: rfc3339(tick),
                kind,
                value,
                expected,
                projected: (!paced.is_zero()).then(|| value / paced),
            });
        }
    }
    out
}

/// The hysteresis: the state after a tick and the transition it fires.
fn step(
    state: State,
    condition: Condition,
    tick: DateTime<Utc>,
    hold: TimeDelta,
) -> (State, Option<&'static str>) {
    let at_risk_since = |since: DateTime<Utc>| {
        if tick - since >= hold {
            (State::AtRisk, Some("at_risk"))
        } else {
            (State::Pending(since), None)
        }
    };
    match (state, condition) {
        (State::AtRisk, Condition::OnTrack) => (State::OnTrack, Some("on_track")),
        (State::AtRisk, _) => (State::AtRisk, None),
        (State::OnTrack, Condition::AtRisk) => at_risk_since(tick),
        (State::Pending(since), Condition::AtRisk) => at_risk_since(since),
        (State::OnTrack | State::Pending(_), _) => (State::OnTrack, None),
    }
}

/// Whether the elapsed fraction at `tick` is a terminating decimal (its reduced denominator has no
/// prime factor but 2 and 5): then it, the pace and the thresholds are exact.
fn terminates((start, end): Span, tick: DateTime<Utc>) -> bool {
    let (done, length) = ((tick - start).num_seconds(), (end - start).num_seconds());
    let gcd = |mut a: i64, mut b: i64| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let mut denominator = length / gcd(done, length);
    for p in [2, 5] {
        while denominator % p == 0 {
            denominator /= p;
        }
    }
    denominator == 1
}

/// Otherwise the thresholds are rationals a decimal only approximates: a value this close to one
/// would make the condition depend on rounding, so the data must have none.
fn assert_no_tie(value: Decimal, thresholds: &[Decimal], agent: &str, tick: DateTime<Utc>) {
    for &t in thresholds {
        assert!(
            (value - t).abs() > t.abs() * Decimal::new(1, 18),
            "{agent} at {tick}: value {value} is within rounding of the threshold {t}"
        );
    }
}

/// Whether two decimals computed along different roundings agree: |a - b| <= 1e-20 * |b|.
pub(crate) fn same_decimal(a: Decimal, b: Decimal) -> bool {
    (a - b).abs() <= b.abs() * Decimal::new(1, 20)
}

/// The transitions of every agent's every window of every goal, in key order.
pub(crate) fn all_transitions(
    looks: &[LookSpec],
    agents: &[String],
    windows: &[Span],
    deals: &[Deal],
    earliest: DateTime<Utc>,
) -> Vec<Transition> {
    let mut out = Vec::new();
    for look in looks {
        let by_agent = deals_of(&look.spec, deals);
        for agent in agents {
            for &window in windows {
                let mine = by_agent
                    .get(&(agent.clone(), window.0))
                    .map_or(&[][..], Vec::as_slice);
                out.extend(transitions(look, agent, window, mine, earliest));
            }
        }
    }
    out.sort();
    out
}

/// An at-risk or on-track event of goalpost's as a [`Transition`], checking that its event time
/// is its tick.
pub(crate) fn reported(a: &Attainment) -> Transition {
    let tick = a
        .tick
        .clone()
        .unwrap_or_else(|| panic!("no tick: {}", a.line));
    assert_eq!(a.event_time, tick, "event_time is the tick: {}", a.line);
    Transition {
        key: a.key(),
        tick,
        kind: if a.kind == "at_risk" {
            "at_risk"
        } else {
            "on_track"
        },
        value: a.value.unwrap_or_else(|| panic!("no value: {}", a.line)),
        expected: a
            .expected
            .unwrap_or_else(|| panic!("no expected: {}", a.line)),
        projected: a.projected,
    }
}

/// Checks that goalpost reported exactly the `expected` transitions: the same (goal, group,
/// window, tick, kind, value), and for each the same expected and projected values up to
/// rounding. Prints the first differences.
pub(crate) fn check_transitions(reported: &[Transition], expected: &[Transition]) {
    type Id<'a> = (&'a Key, &'a str, &'static str, Decimal);
    fn id(t: &Transition) -> Id<'_> {
        (&t.key, t.tick.as_str(), t.kind, t.value)
    }
    let mine: BTreeMap<Id, &Transition> = expected.iter().map(|t| (id(t), t)).collect();
    let theirs: BTreeMap<Id, &Transition> = reported.iter().map(|t| (id(t), t)).collect();
    assert_eq!(theirs.len(), reported.len(), "a transition reported twice");
    let only = |a: &BTreeMap<Id, &Transition>, b: &BTreeMap<Id, &Transition>| -> Vec<String> {
        a.iter()
            .filter(|(k, _)| !b.contains_key(*k))
            .map(|(_, t)| format!("\n  {t:?}"))
            .collect()
    };
    let (missing, extra) = (only(&mine, &theirs), only(&theirs, &mine));
    assert!(
        missing.is_empty() && extra.is_empty(),
        "transitions differ: {} expected but not reported, first:{}\n{} reported but not \
         expected, first:{}",
        missing.len(),
        missing.iter().take(10).cloned().collect::<String>(),
        extra.len(),
        extra.iter().take(10).cloned().collect::<String>()
    );
    let differ: Vec<String> = mine
        .iter()
        .filter(|(k, want)| {
            let got = theirs[*k];
            let projected_ok = match (got.projected, want.projected) {
                (Some(g), Some(w)) => same_decimal(g, w),
                (g, w) => g == w,
            };
            !same_decimal(got.expected, want.expected) || !projected_ok
        })
        .map(|(k, want)| format!("\n  got {:?}\n  want {want:?}", theirs[k]))
        .collect();
    assert!(
        differ.is_empty(),
        "{} transitions differ in expected or projected, first:{}",
        differ.len(),
        differ.iter().take(10).cloned().collect::<String>()
    );
}
