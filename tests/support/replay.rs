//! `goalpost replay` and its attainment events, and the comparison of another run's with them.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;

use goalpost::model::SalesEvent;

use super::bin::goalpost;
use super::dirs::TempDir;
use super::events::json_lines;
use super::goals::monotone_goals;

/// One decoded attainment event, decimals kept as their exact text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attainment {
    pub attainment_id: String,
    pub goal_id: String,
    pub kind: String,
    pub value: String,
    pub outcome: String,
    /// At risk and on track only (empty otherwise): the expected and projected values, the tick.
    pub expected: String,
    pub projected: String,
    pub tick: String,
    pub raw: String,
}

impl Attainment {
    /// Whether it is a look-ahead status event (`at_risk` or `on_track`).
    pub fn is_look_ahead(&self) -> bool {
        self.kind == "at_risk" || self.kind == "on_track"
    }
}

pub fn parse_attainment(line: &str) -> Attainment {
    use serde_json::value::RawValue;
    let m: std::collections::HashMap<String, Box<RawValue>> =
        serde_json::from_str(line).expect("attainment JSON");
    let s = |k: &str| -> String {
        m.get(k)
            .map(|v| v.get().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    Attainment {
        attainment_id: s("attainment_id"),
        goal_id: s("goal_id"),
        kind: s("kind"),
        value: s("value"),
        outcome: s("outcome"),
        expected: s("expected"),
        projected: s("projected"),
        tick: s("tick"),
        raw: line.to_string(),
    }
}

/// `goalpost replay ARGS --goals GOALS --events EVENTS` of goal text and JSON-lines bytes; it
/// must succeed.
pub fn replay_output(goals_toml: &str, input_bytes: &[u8], args: &[&str]) -> Output {
    let dir = TempDir::new();
    let goals = dir.join("goals.toml");
    std::fs::write(&goals, goals_toml).unwrap();
    let input = dir.join("events.jsonl");
    std::fs::write(&input, input_bytes).unwrap();
    let out = goalpost()
        .arg("replay")
        .args(args)
        .arg("--goals")
        .arg(&goals)
        .arg("--events")
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The attainment events on the stdout of `out`.
pub fn attainments(out: &Output) -> Vec<Attainment> {
    std::str::from_utf8(&out.stdout)
        .unwrap()
        .lines()
        .map(parse_attainment)
        .collect()
}

pub fn replay(goals_toml: &str, events: &[SalesEvent]) -> Vec<Attainment> {
    replay_bytes(goals_toml, &json_lines(events))
}

/// Replays JSON-lines bytes.
pub fn replay_bytes(goals_toml: &str, input_bytes: &[u8]) -> Vec<Attainment> {
    attainments(&replay_output(goals_toml, input_bytes, &[]))
}

/// Every attainment event appears once.
pub fn assert_exactly_once(live: &[Attainment]) {
    let mut seen = BTreeSet::new();
    for a in live {
        assert!(
            seen.insert(a.attainment_id.clone()),
            "attainment {} emitted twice",
            a.attainment_id
        );
    }
}

pub fn assert_same_results(goals_toml: &str, replayed: &[Attainment], live: &[Attainment]) {
    let raw_of: BTreeMap<&str, &str> = replayed
        .iter()
        .chain(live)
        .map(|a| (a.attainment_id.as_str(), a.raw.as_str()))
        .collect();
    let finals = |v: &[Attainment]| -> BTreeMap<String, (String, String)> {
        v.iter()
            .filter(|a| a.kind == "final")
            .map(|a| {
                (
                    a.attainment_id.clone(),
                    (a.value.clone(), a.outcome.clone()),
                )
            })
            .collect()
    };
    let (r, l) = (finals(replayed), finals(live));
    assert!(!r.is_empty());
    let only = |a: &BTreeMap<String, (String, String)>, b: &BTreeMap<String, (String, String)>| {
        a.iter()
            .filter(|(id, _)| !b.contains_key(*id))
            .take(10)
            .map(|(id, _)| raw_of[id.as_str()].to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        r.len(),
        l.len(),
        "number of finals; only in replay: {:?}; only live: {:?}",
        only(&r, &l),
        only(&l, &r)
    );
    assert_eq!(r, l, "finals (value, outcome) by attainment id");

    let monotone = monotone_goals(goals_toml);
    let crossings = |v: &[Attainment]| -> BTreeSet<String> {
        v.iter()
            .filter(|a| a.kind != "final" && !a.is_look_ahead() && monotone.contains(&a.goal_id))
            .map(|a| a.attainment_id.clone())
            .collect()
    };
    let (rc, lc) = (crossings(replayed), crossings(live));
    assert!(!rc.is_empty());
    assert_eq!(rc, lc, "milestones and breaches of monotone goals");
    assert_eq!(
        look_ahead(replayed),
        look_ahead(live),
        "at_risk and on_track (value, expected, projected) by attainment id"
    );
}

/// The look-ahead status events of every goal by id: they are decided from the events before
/// their tick only, so they must match whatever the order of the input.
fn look_ahead(v: &[Attainment]) -> BTreeMap<&str, (&str, &str, &str)> {
    v.iter()
        .filter(|a| a.is_look_ahead())
        .map(|a| {
            let fields = (a.value.as_str(), a.expected.as_str(), a.projected.as_str());
            (a.attainment_id.as_str(), fields)
        })
        .collect()
}
