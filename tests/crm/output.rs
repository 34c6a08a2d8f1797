//! goalpost's output: its attainment events read exactly, its summary, and the replay itself.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::Output;

use rust_decimal::Decimal;
use serde_json::value::RawValue;

use crate::expected::Key;
use crate::support::bin::goalpost;

/// One attainment event, with every number read exactly from its JSON text.
#[derive(Debug)]
pub(crate) struct Attainment {
    pub(crate) line: String,
    pub(crate) fields: BTreeSet<String>,
    pub(crate) attainment_id: String,
    pub(crate) goal_id: String,
    pub(crate) kind: String,
    pub(crate) group: Vec<(String, String)>,
    pub(crate) window_start: String,
    pub(crate) window_end: String,
    pub(crate) value: Option<Decimal>,
    pub(crate) target: Decimal,
    pub(crate) progress: Option<Decimal>,
    pub(crate) milestone: Option<Decimal>,
    pub(crate) outcome: Option<String>,
    pub(crate) triggered_by: Option<String>,
    pub(crate) event_time: String,
    /// At risk and on track: the value expected at the tick.
    pub(crate) expected: Option<Decimal>,
    /// At risk and on track: the value projected at the window's end (`None` when absent or null).
    pub(crate) projected: Option<Decimal>,
    /// At risk and on track: the tick, as RFC 3339 text.
    pub(crate) tick: Option<String>,
}

impl Attainment {
    /// The goal, group and window it belongs to.
    pub(crate) fn key(&self) -> Key {
        (
            self.goal_id.clone(),
            self.group.clone(),
            self.window_start.clone(),
            self.window_end.clone(),
        )
    }
}

/// A JSON number, exactly: the raw text parsed as a decimal (`None` for `null`).
pub(crate) fn number(raw: &RawValue, line: &str) -> Option<Decimal> {
    let text = raw.get();
    if text == "null" {
        return None;
    }
    let d = if text.contains(['e', 'E']) {
        Decimal::from_scientific(text)
    } else {
        Decimal::from_str_exact(text)
    };
    Some(d.unwrap_or_else(|e| panic!("`{text}` is not an exact decimal ({e}) in {line}")))
}

pub(crate) fn parse_attainment(line: &str) -> Attainment {
    let map: HashMap<String, Box<RawValue>> =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}"));
    let raw = |k: &str| map.get(k).map(|r| &**r);
    let text = |k: &str| {
        raw(k).map(|r| {
            serde_json::from_str::<String>(r.get())
                .unwrap_or_else(|e| panic!("`{k}` is not a string ({e}): {line}"))
        })
    };
    let need = |k: &str| text(k).unwrap_or_else(|| panic!("no `{k}`: {line}"));
    let num = |k: &str| raw(k).and_then(|r| number(r, line));
    let group: BTreeMap<String, String> = serde_json::from_str(
        raw("group")
            .unwrap_or_else(|| panic!("no `group`: {line}"))
            .get(),
    )
    .unwrap_or_else(|e| panic!("`group` is not an object of strings ({e}): {line}"));
    Attainment {
        line: line.to_string(),
        fields: map.keys().cloned().collect(),
        attainment_id: need("attainment_id"),
        goal_id: need("goal_id"),
        kind: need("kind"),
        group: group.into_iter().collect(),
        window_start: need("window_start"),
        window_end: need("window_end"),
        value: num("value"),
        target: num("target").unwrap_or_else(|| panic!("no `target`: {line}")),
        progress: num("progress"),
        milestone: num("milestone"),
        outcome: text("outcome"),
        triggered_by: text("triggered_by"),
        event_time: need("event_time"),
        expected: num("expected"),
        projected: num("projected"),
        tick: text("tick"),
    }
}

/// The counters of the summary goalpost prints on stderr.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    pub(crate) counts: HashMap<String, u64>,
    /// goal id -> (late, skipped)
    pub(crate) goals: BTreeMap<String, (u64, u64)>,
}

/// Reads `word N` pairs from the summary: `read 15166  accepted ...`, `  goal ID: late 0
/// skipped 0`, `windows closed N`, `attainment events: milestone N  breached N  final N`.
pub(crate) fn parse_summary(stderr: &str) -> Summary {
    let mut s = Summary::default();
    for line in stderr.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("goal ") {
            let (goal, rest) = rest
                .split_once(": ")
                .unwrap_or_else(|| panic!("summary line `{line}`"));
            let pairs = word_numbers(rest);
            s.goals
                .insert(goal.to_string(), (pairs["late"], pairs["skipped"]));
        } else {
            s.counts.extend(word_numbers(line));
        }
    }
    s
}

pub(crate) fn word_numbers(text: &str) -> HashMap<String, u64> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .filter_map(|w| Some((w[0].trim_end_matches(':').to_string(), w[1].parse().ok()?)))
        .collect()
}

pub(crate) fn replay(goals: &Path, events: &Path, dead_letters: &Path) -> Output {
    let out = goalpost()
        .arg("replay")
        .arg("--goals")
        .arg(goals)
        .arg("--events")
        .arg(events)
        .arg("--dead-letter")
        .arg(dead_letters)
        .output()
        .expect("run goalpost");
    assert!(
        out.status.success(),
        "goalpost replay failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
