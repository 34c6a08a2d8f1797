use rust_decimal::Decimal;

use super::parse_goal_file;
use crate::goals::{Direction, FieldRef, GoalFileError, Measure, Problem};
use crate::model::Duration;

fn problems(text: &str) -> Vec<Problem> {
    match parse_goal_file(text) {
        Err(GoalFileError::Invalid(p)) => p,
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn defaults_are_applied() {
    let set = parse_goal_file(
        r#"
[[goals]]
id = "g"
metric = "count"
filter = { event_type = ["deal_won", "deal_lost"], "attributes.segment" = "smb" }
window = { calendar = "quarter" }
target = 3
"#,
    )
    .unwrap();
    let g = &set.goals[0];
    assert_eq!(set.dedupe_horizon, Duration::from_secs(7 * 86_400));
    assert_eq!(g.direction, Direction::AtLeast);
    assert_eq!(g.milestones, vec![Decimal::ONE]);
    assert_eq!(g.thresholds, vec![Decimal::from(3)]);
    assert_eq!(g.grace, Duration::ZERO);
    assert_eq!(g.judge_threshold(), 0);
    assert_eq!((g.max_groups, g.max_distinct), (100_000, 1_000_000));
    let Measure::Simple { filter, .. } = &g.measure else {
        panic!("simple measure expected")
    };
    assert_eq!(filter.clauses().len(), 2);
    assert_eq!(filter.clauses()[1].0, FieldRef::Attribute("segment".into()));
}

#[test]
fn window_problems_name_their_key() {
    let p = problems(
        r#"
[[goals]]
id = "g"
metric = "count"
window = { calendar = "week", week_start = "funday", timezone = "Nowhere/City" }
target = 1
"#,
    );
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert!(
        keys.contains(&"window.week_start") || keys.contains(&"window.timezone"),
        "{p:?}"
    );
    let p = problems(
        r#"
[[goals]]
id = "g"
metric = "count"
window = { hopping = "1d", every = "2d" }
target = 1
"#,
    );
    assert_eq!(p[0].key, "window.every");
    assert!(p[0].message.contains("2d"), "{}", p[0]);
}

#[test]
fn huge_targets_are_a_problem_not_a_panic() {
    let p = problems(
        "[[goals]]\nid = \"g\"\nmetric = \"count\"\nwindow = { tumbling = \"1d\" }\ntarget = \"79228162514264337593543950335\"\nmilestones = [2]\n",
    );
    assert_eq!(p[0].key, "target");
}

#[test]
fn structural_problems() {
    assert_eq!(problems("")[0].key, "goals");
    let p = problems("[dedupe]\nhorizon = \"soon\"\n[[goals]]\nid = \"g\"\nmetric = \"count\"\nwindow = { tumbling = \"1d\" }\ntarget = 1\nfield = \"amount\"\n");
    let text: Vec<String> = p.iter().map(|p| p.to_string()).collect();
    assert!(
        text.iter()
            .any(|t| t.contains("`dedupe.horizon`") && t.contains("soon")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|t| t.contains("reads no field")),
        "{text:?}"
    );
    let p = problems(
        "[[goals]]\nid = \"r\"\nmetric = \"ratio\"\nnumerator = { event_type = \"a\" }\ndenominator = { }\nmin_denominator = -1\nwindow = { tumbling = \"1d\" }\ntarget = 0.5\nmilestones = [1.0, 0.5]\n",
    );
    let text: Vec<String> = p.iter().map(|p| p.to_string()).collect();
    assert!(
        text.iter()
            .any(|t| t.contains("min_denominator") && t.contains("-1")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|t| t.contains("strictly ascending")),
        "{text:?}"
    );
}

#[test]
fn caps_are_checked_against_their_range() {
    let goal = |extra: &str| {
        format!(
            "[[goals]]\nid = \"g\"\nmetric = \"count_distinct\"\nfield = \"rep_id\"\nwindow = {{ tumbling = \"1d\" }}\ntarget = 1\n{extra}\n"
        )
    };
    let set = parse_goal_file(&goal("max_groups = 7\nmax_distinct = 100000000")).unwrap();
    assert_eq!(
        (set.goals[0].max_groups, set.goals[0].max_distinct),
        (7, 100_000_000)
    );
    for (extra, key, text) in [
        (
            "max_groups = 0",
            "max_groups",
            "from 1 to 10000000 (default 100000), found 0",
        ),
        ("max_groups = 10000001", "max_groups", "found 10000001"),
        ("max_groups = \"many\"", "max_groups", "found a string"),
        (
            "max_distinct = -5",
            "max_distinct",
            "from 1 to 100000000 (default 1000000), found -5",
        ),
        ("max_distinct = 1.5", "max_distinct", "found a float"),
    ] {
        let p = problems(&goal(extra));
        assert_eq!(p.len(), 1, "{extra}: {p:?}");
        assert_eq!(p[0].key, key, "{extra}");
        assert!(p[0].message.contains(text), "{extra}: {}", p[0]);
    }
    let p = problems(
        "[[goals]]\nid = \"g\"\nmetric = \"count\"\nwindow = { tumbling = \"1d\" }\ntarget = 1\nmax_distinct = 10\n",
    );
    assert_eq!(p[0].key, "max_distinct");
    assert!(p[0].message.contains("count_distinct"), "{}", p[0]);
}
