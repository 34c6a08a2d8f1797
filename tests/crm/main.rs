//! End-to-end replay of a real dataset.
//!
//! The public "CRM + Sales + Opportunities" sample in `tests/data/crm/` (see its README) is turned
//! into goalpost JSON events, replayed through the `goalpost` binary against a goal file of eight
//! goals (every metric, four time zones, weeks from Sunday, fiscal quarters and years, groups and
//! no group), and every `final` attainment event is checked against values computed here,
//! independently, from the CSV rows with chrono, chrono-tz and rust_decimal: no goalpost code.
//!
//! The event stream is made a little hostile on purpose: events are spread over each local day at
//! offset -05:00, some neighbours are swapped (out of order by up to a day, which the goals' 2-day
//! grace absorbs), and about 1% of the events are sent twice (dedupe must drop the copies).
//!
//! A second replay of the same events runs a goal file of look-ahead goals on a roster (issue 15):
//! every agent of `sales_teams.csv` gets a final in every quarter the log spans, and the at-risk /
//! on-track transitions at weekly ticks are checked against their own independent computation.
//!
//! `goals` holds both goal files and the same goals described for the computation, `input` the
//! events file, `expected` the independent computation of finals, `roster` and `status` that of
//! roster windows and look-ahead status, `output` the reading of goalpost's output.

mod expected;
mod goals;
mod input;
mod output;
mod roster;
mod status;
#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::time::Instant;

use rust_decimal::Decimal;

use expected::*;
use goals::*;
use input::*;
use output::*;
use support::crm_data::*;
use support::dirs::TempDir;

fn show(keys: &[&Key]) -> String {
    keys.iter()
        .take(10)
        .map(|k| format!("\n  {k:?}"))
        .collect::<String>()
}

#[test]
fn crm_dataset_replay_matches_independent_computation() {
    let started = Instant::now();
    let (opportunities, teams) = load();
    let specs = specs();

    // ---- events file ----
    let tmp = TempDir::new();
    let goals_path = tmp.join("goals.toml");
    let events_path = tmp.join("events.jsonl");
    let dl_path = tmp.join("dead-letters.jsonl");
    fs::write(&goals_path, GOALS_TOML).unwrap();
    let EventsFile {
        events,
        lines,
        copies,
        shuffled,
    } = write_events(&opportunities, &teams, &events_path);
    assert!(
        shuffled.inversions > 300 && shuffled.across_months > 0,
        "the disorder should put many events out of order: {shuffled:?}"
    );
    assert!(copies > 100);
    let event_ids: HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(event_ids.len(), events.len(), "event ids are unique");
    let event_at: HashMap<&str, String> = events
        .iter()
        .map(|e| (e.id.as_str(), rfc3339(e.at)))
        .collect();

    // ---- replay ----
    let out = replay(&goals_path, &events_path, &dl_path);
    let stdout = String::from_utf8(out.stdout.clone()).expect("UTF-8 output");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let dead = fs::read_to_string(&dl_path).unwrap_or_default();
    assert!(dead.is_empty(), "no dead letters expected, got:\n{dead}");

    // ---- summary ----
    let summary = parse_summary(&stderr);
    let count = |k: &str| {
        *summary
            .counts
            .get(k)
            .unwrap_or_else(|| panic!("no `{k}` in summary:\n{stderr}"))
    };
    assert_eq!(count("read"), lines as u64, "{stderr}");
    assert_eq!(count("accepted"), events.len() as u64, "{stderr}");
    assert_eq!(count("duplicates"), copies, "{stderr}");
    assert_eq!(count("rejected"), 0, "{stderr}");
    assert_eq!(summary.goals.len(), specs.len(), "{stderr}");
    for spec in &specs {
        let (late, skipped) = summary
            .goals
            .get(spec.id)
            .copied()
            .unwrap_or_else(|| panic!("goal {} missing from summary:\n{stderr}", spec.id));
        assert_eq!(late, 0, "goal {}: late events\n{stderr}", spec.id);
        assert_eq!(skipped, 0, "goal {}: skipped events\n{stderr}", spec.id);
    }

    // ---- attainment events ----
    let attainments: Vec<Attainment> = stdout.lines().map(parse_attainment).collect();
    let mut ids = HashSet::new();
    for a in &attainments {
        assert!(
            ids.insert(a.attainment_id.as_str()),
            "attainment_id twice: {}",
            a.line
        );
    }
    let of_kind = |k: &str| attainments.iter().filter(|a| a.kind == k).count() as u64;
    assert_eq!(count("milestone"), of_kind("milestone"), "{stderr}");
    assert_eq!(count("breached"), of_kind("breached"), "{stderr}");
    assert_eq!(count("final"), of_kind("final"), "{stderr}");
    assert_eq!(
        count("closed"),
        of_kind("final"),
        "windows closed\n{stderr}"
    );
    assert_eq!(
        attainments.len() as u64,
        of_kind("milestone") + of_kind("breached") + of_kind("final"),
        "unknown kinds"
    );

    let deals = deals(&opportunities, &teams);
    let deal_by_id: HashMap<&str, &Deal> = deals.iter().map(|d| (d.event_id.as_str(), d)).collect();
    let expected = expected_finals(&specs, &deals);
    let spec_of = |id: &str| {
        specs
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("unknown goal {id}"))
    };
    let key_of = Attainment::key;
    let base_fields = [
        "attainment_id",
        "goal_id",
        "kind",
        "group",
        "window_start",
        "window_end",
        "value",
        "target",
        "progress",
        "event_time",
    ];

    // ---- finals: the same windows, values and outcomes ----
    let mut finals: BTreeMap<Key, &Attainment> = BTreeMap::new();
    let mut mismatches = Vec::new();
    for a in attainments.iter().filter(|a| a.kind == "final") {
        let spec = spec_of(&a.goal_id);
        let mut want: BTreeSet<&str> = base_fields.into();
        want.insert("outcome");
        assert_eq!(
            a.fields.iter().map(String::as_str).collect::<BTreeSet<_>>(),
            want,
            "{}",
            a.line
        );
        assert_eq!(a.target, spec.target(), "{}", a.line);
        assert_eq!(
            a.event_time, a.window_end,
            "a final's event_time is the window end: {}",
            a.line
        );
        assert!(
            finals.insert(key_of(a), a).is_none(),
            "two finals for one window: {}",
            a.line
        );
        let Some(exp) = expected.get(&key_of(a)) else {
            continue;
        };
        let value = a
            .value
            .unwrap_or_else(|| panic!("final without a value: {}", a.line));
        let value_ok = if exp.quotient {
            close_enough(value, exp.value)
        } else {
            value == exp.value
        };
        if !value_ok || a.outcome.as_deref() != Some(exp.outcome) {
            mismatches.push(format!(
                "{}\n    expected value {} outcome {}",
                a.line, exp.value, exp.outcome
            ));
        }
        let progress = a
            .progress
            .unwrap_or_else(|| panic!("no progress: {}", a.line));
        assert!(close_enough(progress, value / a.target), "{}", a.line);
    }
    let missing: Vec<&Key> = expected
        .keys()
        .filter(|k| !finals.contains_key(*k))
        .collect();
    let extra: Vec<&Key> = finals
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "windows differ: {} expected but not reported:{}\n{} reported but not expected:{}",
        missing.len(),
        show(&missing),
        extra.len(),
        show(&extra)
    );
    assert!(
        mismatches.is_empty(),
        "{} finals differ from the independent computation:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );

    // ---- milestones and breaches ----
    let mut reported: BTreeSet<(Key, String)> = BTreeSet::new();
    for a in attainments.iter().filter(|a| a.kind != "final") {
        let spec = spec_of(&a.goal_id);
        let mut want: BTreeSet<&str> = base_fields.into();
        want.insert("triggered_by");
        if a.kind == "milestone" {
            want.insert("milestone");
        }
        assert_eq!(
            a.fields.iter().map(String::as_str).collect::<BTreeSet<_>>(),
            want,
            "{}",
            a.line
        );
        let by = a.triggered_by.as_deref().unwrap();
        assert!(
            event_ids.contains(by),
            "triggered_by is not an event id: {}",
            a.line
        );
        assert_eq!(
            a.event_time, event_at[by],
            "event_time is the triggering event's: {}",
            a.line
        );
        // The triggering event is a deal this goal reads, of this group and window.
        let deal = deal_by_id
            .get(by)
            .unwrap_or_else(|| panic!("triggered by a non-deal event: {}", a.line));
        assert!(spec.picks(deal), "{}", a.line);
        assert_eq!(spec.group(deal), a.group, "{}", a.line);
        let (start, end) = spec.window(deal.at);
        assert_eq!(
            (rfc3339(start), rfc3339(end)),
            (a.window_start.clone(), a.window_end.clone()),
            "{}",
            a.line
        );
        assert!(finals.contains_key(&key_of(a)), "no final for: {}", a.line);
        let value = a.value.unwrap();
        let target = spec.target();
        match a.kind.as_str() {
            "milestone" => {
                assert!(!spec.at_most, "{}", a.line);
                let m = a.milestone.unwrap();
                assert!(
                    spec.milestones
                        .iter()
                        .any(|s| Decimal::from_str_exact(s).unwrap() == m),
                    "{}",
                    a.line
                );
                assert!(value >= m * target, "{}", a.line);
                reported.insert((key_of(a), m.normalize().to_string()));
            }
            "breached" => {
                assert!(spec.at_most, "{}", a.line);
                assert!(value > target, "{}", a.line);
                reported.insert((key_of(a), "breach".to_string()));
            }
            other => panic!("unknown kind {other}: {}", a.line),
        }
    }
    // For values that only grow, milestones and breaches follow from the final value: reported
    // exactly for the thresholds it reached, whatever the arrival order.
    for (key, exp) in &expected {
        let spec = spec_of(&key.0);
        let target = spec.target();
        if spec.at_most {
            let breached = reported.contains(&(key.clone(), "breach".to_string()));
            if spec.metric.monotone() || exp.value > target {
                // (min only falls: above the target at the end means above it from the start)
                assert_eq!(breached, exp.value > target, "breach of {key:?}");
            }
        } else if spec.metric.monotone() {
            for m in spec.milestones {
                let m = Decimal::from_str_exact(m).unwrap();
                let hit = reported.contains(&(key.clone(), m.normalize().to_string()));
                assert_eq!(hit, exp.value >= m * target, "milestone {m} of {key:?}");
            }
        }
    }

    // ---- a second run prints the same bytes ----
    let again = replay(&goals_path, &events_path, &dl_path);
    assert!(
        again.stdout == out.stdout,
        "a second replay printed different output"
    );

    // ---- without grace, the disorder does make events late ----
    let strict_path = tmp.join("goals-no-grace.toml");
    fs::write(
        &strict_path,
        GOALS_TOML.replace("grace = \"2d\"", "grace = \"0s\""),
    )
    .unwrap();
    let strict = replay(&strict_path, &events_path, &dl_path);
    let strict_summary = parse_summary(&String::from_utf8_lossy(&strict.stderr));
    let strict_late: u64 = strict_summary.goals.values().map(|(late, _)| late).sum();
    assert!(
        strict_late > 0,
        "with grace 0s some events should be late: {:?}",
        strict_summary.goals
    );

    // ---- what was covered ----
    eprintln!(
        "{} events ({:?}; late without grace: {strict_late}), {} duplicates, {} lines; \
         {} attainment events ({} milestone, {} breached, {} final); {:.1?}",
        events.len(),
        shuffled,
        copies,
        lines,
        attainments.len(),
        of_kind("milestone"),
        of_kind("breached"),
        of_kind("final"),
        started.elapsed()
    );
    for spec in &specs {
        let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, exp) in expected
            .range(
                (
                    spec.id.to_string(),
                    Vec::new(),
                    String::new(),
                    String::new(),
                )..,
            )
            .take_while(|(k, _)| k.0 == spec.id)
        {
            *outcomes.entry(exp.outcome).or_default() += 1;
        }
        let n: usize = outcomes.values().sum();
        eprintln!("  {}: {n} finals checked {outcomes:?}", spec.id);
        assert!(n > 0, "goal {} has no windows", spec.id);
    }
}

/// The look-ahead goal file on the same events: every agent of the roster gets a final in every
/// quarter the log spans, and the at-risk / on-track transitions at the weekly ticks are those
/// computed here from the CSV rows (see `status` and `roster` for the semantics).
#[test]
fn crm_lookahead_status_and_roster_finals_match_independent_computation() {
    let started = Instant::now();
    let (opportunities, teams) = load();
    let looks = lookahead_specs();
    let agents = roster::roster_agents();
    assert_eq!(agents.len(), 35, "agents in sales_teams.csv");
    let unlisted: BTreeSet<&str> = opportunities
        .iter()
        .map(|o| o.agent.as_str())
        .filter(|a| !agents.iter().any(|r| r == a))
        .collect();
    assert!(
        unlisted.is_empty(),
        "agents not on the roster: {unlisted:?}"
    );

    let tmp = TempDir::new();
    let goals_path = tmp.join("lookahead.toml");
    let events_path = tmp.join("events.jsonl");
    let dl_path = tmp.join("dead-letters.jsonl");
    fs::write(&goals_path, LOOKAHEAD_TOML).unwrap();
    fs::copy(
        data_dir().join("sales_teams.csv"),
        tmp.join("sales_teams.csv"),
    )
    .unwrap();
    let input = write_events(&opportunities, &teams, &events_path);

    // ---- the independent computation ----
    let earliest = input.events.iter().map(|e| e.at).min().unwrap();
    let latest = input.events.iter().map(|e| e.at).max().unwrap();
    let windows = roster::windows_spanned(&looks[0].spec, earliest, latest);
    let deals = deals(&opportunities, &teams);
    let want_finals = roster::roster_finals(&looks, &agents, &windows, &deals);
    let want_changes = status::all_transitions(&looks, &agents, &windows, &deals, earliest);
    assert_eq!(want_finals.len(), 35 * windows.len() * looks.len());
    assert_lookahead_coverage(&want_finals, &want_changes);
    let of_kind = |k: &str| want_changes.iter().filter(|t| t.kind == k).count();
    eprintln!(
        "independently: {} quarters x {} agents x {} goals: {} finals, {} at_risk, {} on_track; {:.1?}",
        windows.len(),
        agents.len(),
        looks.len(),
        want_finals.len(),
        of_kind("at_risk"),
        of_kind("on_track"),
        started.elapsed()
    );

    // ---- replay ----
    let out = replay(&goals_path, &events_path, &dl_path);
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let dead = fs::read_to_string(&dl_path).unwrap_or_default();
    assert!(dead.is_empty(), "no dead letters expected, got:\n{dead}");
    let attainments: Vec<Attainment> = stdout.lines().map(parse_attainment).collect();
    check_lookahead_summary(&stderr, &input, &looks, &attainments);
    let [finals, milestones, changes] = by_kind(&attainments);
    let changes: Vec<status::Transition> = changes.into_iter().map(status::reported).collect();

    roster::check_finals(&looks, &finals, &want_finals);
    roster::check_milestones(&milestones, &want_finals);
    status::check_transitions(&changes, &want_changes);
}

/// The finals, milestones and status changes of a run, checking that no attainment_id repeats
/// and that there is no other kind.
fn by_kind(attainments: &[Attainment]) -> [Vec<&Attainment>; 3] {
    let ids: HashSet<&str> = attainments
        .iter()
        .map(|a| a.attainment_id.as_str())
        .collect();
    assert_eq!(ids.len(), attainments.len(), "an attainment_id twice");
    let of = |kinds: &[&str]| -> Vec<&Attainment> {
        let picked = attainments
            .iter()
            .filter(|a| kinds.contains(&a.kind.as_str()));
        picked.collect()
    };
    let (finals, milestones) = (of(&["final"]), of(&["milestone"]));
    let changes = of(&["at_risk", "on_track"]);
    let known = finals.len() + milestones.len() + changes.len();
    assert_eq!(
        known,
        attainments.len(),
        "kinds other than final, milestone, at_risk, on_track"
    );
    [finals, milestones, changes]
}

/// The replay's summary: every line read, the copies dropped, no goal late or skipping events,
/// and the transitions counted if the summary counts them.
fn check_lookahead_summary(
    stderr: &str,
    input: &EventsFile,
    looks: &[goals::LookSpec],
    attainments: &[Attainment],
) {
    let summary = parse_summary(stderr);
    let count = |k: &str| summary.counts.get(k).copied();
    assert_eq!(count("read"), Some(input.lines as u64), "{stderr}");
    assert_eq!(
        count("accepted"),
        Some(input.events.len() as u64),
        "{stderr}"
    );
    assert_eq!(count("duplicates"), Some(input.copies), "{stderr}");
    for look in looks {
        let counts = summary.goals.get(look.spec.id);
        assert_eq!(
            counts,
            Some(&(0, 0)),
            "late, skipped of {}\n{stderr}",
            look.spec.id
        );
    }
    for kind in ["milestone", "final", "at_risk", "on_track"] {
        let n = attainments.iter().filter(|a| a.kind == kind).count() as u64;
        if let Some(counted) = count(kind) {
            assert_eq!(counted, n, "{kind} events counted\n{stderr}");
        }
    }
}

/// The data exercises every case: attained and missed finals, missed ones of agents without a
/// win in the quarter, and both transitions of both goals.
fn assert_lookahead_coverage(finals: &BTreeMap<Key, Expected>, changes: &[status::Transition]) {
    let outcomes = |goal: &str, zero: bool| -> BTreeSet<&str> {
        finals
            .iter()
            .filter(|(k, e)| k.0 == goal && (!zero || e.value.is_zero()))
            .map(|(_, e)| e.outcome)
            .collect()
    };
    for goal in ["agent-quarter-revenue", "agent-quarter-wins"] {
        assert_eq!(
            outcomes(goal, false),
            BTreeSet::from(["attained", "missed"]),
            "{goal}"
        );
        assert_eq!(outcomes(goal, true), BTreeSet::from(["missed"]), "{goal}");
        for kind in ["at_risk", "on_track"] {
            let n = changes
                .iter()
                .filter(|t| t.key.0 == goal && t.kind == kind)
                .count();
            assert!(n > 0, "no {kind} of {goal} in the independent computation");
        }
    }
}
