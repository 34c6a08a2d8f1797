//! Roster windows, computed independently: every agent of `sales_teams.csv` gets every quarter the
//! log spans, with or without deals, and one final per quarter and goal.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::expected::*;
use crate::goals::*;
use crate::output::Attainment;
use crate::support::crm_data::read_csv;

/// The agents of the roster file, in file order.
pub(crate) fn roster_agents() -> Vec<String> {
    read_csv(
        "sales_teams.csv",
        &["sales_agent", "manager", "regional_office"],
    )
    .into_iter()
    .map(|cells| cells[0].clone())
    .collect()
}

/// A window as (start, end).
pub(crate) type Span = (DateTime<Utc>, DateTime<Utc>);

/// The windows of `spec` the log spans: every window ending after the earliest event of the log
/// (of any type) and starting at or before its latest event.
pub(crate) fn windows_spanned(
    spec: &Spec,
    earliest: DateTime<Utc>,
    latest: DateTime<Utc>,
) -> Vec<Span> {
    let mut out = Vec::new();
    let mut window = spec.window(earliest);
    while window.0 <= latest {
        out.push(window);
        window = spec.window(window.1);
    }
    out
}

/// The deals `spec` reads of one agent in one window, by (agent, window start).
pub(crate) type DealsOf<'a> = BTreeMap<(String, DateTime<Utc>), Vec<&'a Deal>>;

pub(crate) fn deals_of<'a>(spec: &Spec, deals: &'a [Deal]) -> DealsOf<'a> {
    let mut out = DealsOf::new();
    for d in deals.iter().filter(|d| spec.picks(d)) {
        let (start, _) = spec.window(d.at);
        out.entry((d.rep.clone(), start)).or_default().push(d);
    }
    out
}

/// The metric over `deals` (a sum of amounts or a count), 0 for none.
pub(crate) fn value_of<'a>(spec: &Spec, deals: impl Iterator<Item = &'a Deal>) -> Decimal {
    match spec.metric {
        Metric::Sum => deals.map(|d| d.amount).sum(),
        Metric::Count => Decimal::from(deals.count()),
        other => panic!("no roster goal uses {other:?}"),
    }
}

/// The key of an agent's window of a goal.
pub(crate) fn key(spec: &Spec, agent: &str, (start, end): Span) -> Key {
    (
        spec.id.to_string(),
        vec![("rep_id".to_string(), agent.to_string())],
        rfc3339(start),
        rfc3339(end),
    )
}

/// One final per goal, agent and window spanned: the agent's value and whether it reached the
/// target.
pub(crate) fn roster_finals(
    looks: &[LookSpec],
    agents: &[String],
    windows: &[Span],
    deals: &[Deal],
) -> BTreeMap<Key, Expected> {
    let mut out = BTreeMap::new();
    for look in looks {
        let spec = &look.spec;
        let by_agent = deals_of(spec, deals);
        for agent in agents {
            for &window in windows {
                let mine = by_agent.get(&(agent.clone(), window.0));
                let value = value_of(spec, mine.into_iter().flatten().copied());
                let outcome = if value >= spec.target() {
                    "attained"
                } else {
                    "missed"
                };
                let expected = Expected {
                    value,
                    outcome,
                    quotient: false,
                };
                out.insert(key(spec, agent, window), expected);
            }
        }
    }
    out
}

/// Checks goalpost's finals against `expected`: one per key, each with the same value and
/// outcome, the goal's target and the window's end as event time.
pub(crate) fn check_finals(
    looks: &[LookSpec],
    reported: &[&Attainment],
    expected: &BTreeMap<Key, Expected>,
) {
    let mut finals: BTreeMap<Key, &Attainment> = BTreeMap::new();
    let (mut mismatches, mut extra) = (Vec::new(), Vec::new());
    for a in reported {
        let look = looks.iter().find(|l| l.spec.id == a.goal_id).unwrap();
        assert_eq!(a.target, look.spec.target(), "{}", a.line);
        assert_eq!(a.event_time, a.window_end, "{}", a.line);
        let key = a.key();
        let Some(exp) = expected.get(&key) else {
            extra.push(a.line.as_str());
            continue;
        };
        if a.value != Some(exp.value) || a.outcome.as_deref() != Some(exp.outcome) {
            mismatches.push(format!(
                "{}\n    expected value {} outcome {}",
                a.line, exp.value, exp.outcome
            ));
        }
        assert!(finals.insert(key, a).is_none(), "two finals: {}", a.line);
    }
    let missing: Vec<&Key> = expected
        .keys()
        .filter(|k| !finals.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "roster finals differ: {} expected but not reported, first: {:?}\n{} reported but not \
         expected, first: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)],
        extra.len(),
        &extra[..extra.len().min(10)]
    );
    assert!(
        mismatches.is_empty(),
        "{} roster finals differ from the independent computation:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// Checks that the milestone events (the default milestone, 1.0) are those of the windows whose
/// final is attained: the values only grow, so the final decides.
pub(crate) fn check_milestones(milestones: &[&Attainment], finals: &BTreeMap<Key, Expected>) {
    let reported: BTreeSet<Key> = milestones.iter().map(|a| a.key()).collect();
    assert_eq!(
        reported.len(),
        milestones.len(),
        "a window reached 1.0 twice"
    );
    let attained: BTreeSet<Key> = finals
        .iter()
        .filter(|(_, e)| e.outcome == "attained")
        .map(|(k, _)| k.clone())
        .collect();
    let differ: Vec<&Key> = reported.symmetric_difference(&attained).take(10).collect();
    assert!(
        differ.is_empty(),
        "milestones differ from the attained finals, first: {differ:?}"
    );
}
