use rust_decimal::Decimal;

use super::parse_goal_file;
use crate::goals::{
    Direction, FieldRef, GoalFileError, Measure, Pace, Problem, RosterFormat, StatusSpec,
};
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

/// A count goal grouped by `rep_id` with `extra` keys, after `top` (top-level tables).
fn lookahead_file(top: &str, extra: &str) -> String {
    format!(
        "{top}\n[[goals]]\nid = \"g\"\nmetric = \"count\"\ngroup_by = [\"rep_id\"]\nwindow = {{ calendar = \"quarter\" }}\ntarget = 10\n{extra}\n"
    )
}

const REPS: &str = "[rosters.reps]\nfile = \"teams.csv\"\ncolumns = { rep_id = \"sales_agent\" }\n";

/// The one problem of `text`, as `check` prints it.
fn only_problem(text: &str) -> String {
    let p = problems(text);
    assert_eq!(p.len(), 1, "{p:?}");
    p[0].to_string()
}

#[test]
fn lookahead_keys_are_read() {
    let set = parse_goal_file(&lookahead_file(
        &format!("{REPS}[rosters.leads]\ntopic = \"crm.leads\"\nstrict = true\n"),
        "roster = \"reps\"\npace = [[0.0, 0.0], [0.5, 0.3], [1.0, 1.0]]\nstatus = { every = \"1d\", tolerance = 0.1, for = \"2d\" }",
    ))
    .unwrap();
    let names: Vec<&str> = set.rosters.iter().map(|r| &*r.name).collect();
    assert_eq!(names, ["leads", "reps"]);
    assert_eq!(
        set.rosters[1].file,
        Some(("teams.csv".into(), RosterFormat::Csv))
    );
    assert_eq!(
        set.rosters[1].columns,
        [("rep_id".to_string(), "sales_agent".to_string())]
    );
    assert_eq!(set.rosters[0].topic.as_deref(), Some("crm.leads"));
    assert!(set.rosters[0].strict && !set.rosters[1].strict);
    let g = &set.goals[0];
    assert_eq!(g.roster, Some(1));
    assert!(matches!(g.pace, Pace::Curve(_)));
    assert_eq!(
        g.status,
        Some(StatusSpec {
            every: Duration::from_secs(86_400),
            tolerance: Decimal::new(1, 1),
            hold: Duration::from_secs(2 * 86_400),
        })
    );
    let plain = parse_goal_file(&lookahead_file("", "status = { every = \"1w\" }")).unwrap();
    let g = &plain.goals[0];
    assert_eq!((g.pace.clone(), g.roster), (Pace::Linear, None));
    let status = g.status.as_ref().unwrap();
    assert_eq!(
        (status.tolerance, status.hold),
        (Decimal::ZERO, Duration::ZERO)
    );
    assert!(plain.rosters.is_empty());
}

#[test]
fn pace_problems_name_the_goal_and_key() {
    assert_eq!(
        only_problem(&lookahead_file("", "pace = \"fast\"")),
        "goal `g`, key `pace`: `\"fast\"` is not a pace; allowed: \"linear\" (default) or a list of \
         [elapsed, expected] points such as [[0.0, 0.0], [0.5, 0.3], [1.0, 1.0]]"
    );
    let bad_end = only_problem(&lookahead_file("", "pace = [[0, 0], [1, 0.9]]"));
    assert!(
        bad_end.starts_with("goal `g`, key `pace`: the last point is [1, 0.9]"),
        "{bad_end}"
    );
}

#[test]
fn status_problems_name_the_goal_and_key() {
    let cases = [
        (
            "status = \"daily\"",
            "goal `g`, key `status`: expected a table such as { every = \"1d\", tolerance = 0.1, \
             for = \"2d\" }, found a string",
        ),
        (
            "status = { tolerance = 0.1 }",
            "goal `g`, key `status.every`: missing: give the interval between status \
             evaluations, e.g. every = \"1d\"",
        ),
        (
            "status = { every = \"1d\", often = true }",
            "goal `g`, key `status.often`: unknown key; allowed keys are: every, tolerance, for",
        ),
        (
            "status = { every = \"0s\" }",
            "goal `g`, key `status.every`: status `every` must be greater than zero (got 0s)",
        ),
        (
            "status = { every = \"90d\" }",
            "goal `g`, key `status.every`: status `every` (90d) must not exceed 89d, the \
             wall-clock length of the shortest calendar quarter",
        ),
        (
            "status = { every = \"10m\" }",
            "goal `g`, key `status.every`: status `every` (10m) gives up to 13799 ticks per \
             window, over the limit of 10000: use a longer `every`",
        ),
        (
            "status = { every = \"1d\", tolerance = 1.5 }",
            "goal `g`, key `status.tolerance`: 1.5 is outside [0, 1]: the tolerance is a \
             fraction of the expected value (default 0)",
        ),
        (
            "status = { every = \"1d\", tolerance = true }",
            "goal `g`, key `status.tolerance`: expected a number, found a boolean",
        ),
        (
            "status = { every = \"1d\", for = \"-2d\" }",
            "goal `g`, key `status.for`: `-2d` is not a duration",
        ),
    ];
    for (extra, want) in cases {
        let got = only_problem(&lookahead_file("", extra));
        assert!(got.starts_with(want), "{extra}:\n{got}\nwant\n{want}");
    }
}

#[test]
fn status_needs_an_accruing_metric_and_a_bounded_tick_count() {
    let p = problems(
        "[[goals]]\nid = \"a\"\nmetric = \"avg\"\nfield = \"amount\"\nwindow = { tumbling = \"1d\" }\ntarget = 5\nstatus = { every = \"1h\" }\n",
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(
        p[0].to_string(),
        "goal `a`, key `status`: `status` needs a metric that accrues over the window (count, \
         sum, count_distinct), not `avg`"
    );
    let tumbling = |every: &str| {
        format!("[[goals]]\nid = \"t\"\nmetric = \"sum\"\nfield = \"amount\"\nwindow = {{ tumbling = \"10000s\" }}\ntarget = 5\nstatus = {{ every = \"{every}\" }}\n")
    };
    assert!(parse_goal_file(&tumbling("1s")).is_ok());
    let p = problems(&tumbling("999ms"));
    assert!(p[0].message.contains("up to 10010 ticks"), "{p:?}");
}

#[test]
fn roster_references_are_checked() {
    assert_eq!(
        only_problem(&lookahead_file(
            "[rosters.reps]\nfile = \"teams.csv\"\n",
            "roster = \"agents\""
        )),
        "goal `g`, key `roster`: `agents` names no [rosters.agents] table; declared rosters: reps"
    );
    assert_eq!(
        only_problem(&lookahead_file("", "roster = \"agents\"")),
        "goal `g`, key `roster`: `agents` names no [rosters.agents] table; the file declares no \
         rosters"
    );
    let ungrouped = "[rosters.reps]\nfile = \"teams.csv\"\n[[goals]]\nid = \"u\"\nmetric = \"count\"\nwindow = { tumbling = \"1d\" }\ntarget = 1\nroster = \"reps\"\n";
    assert_eq!(
        only_problem(ungrouped),
        "goal `u`, key `roster`: a roster lists groups: give the goal a group_by"
    );
}

#[test]
fn roster_tables_are_checked() {
    let cases = [
        (
            "[rosters.reps]\nfile = \"teams.txt\"\n",
            "`rosters.reps.file`: cannot tell the format of `teams.txt` from its extension \
             (.csv, .jsonl or .ndjson): give format = \"csv\" or \"jsonl\"",
        ),
        (
            "[rosters.reps]\nfile = \"teams.txt\"\nformat = \"xml\"\n",
            "`rosters.reps.format`: `xml` is not a roster format; allowed: csv, jsonl",
        ),
        (
            "[rosters.reps]\ntopic = \"t\"\nformat = \"csv\"\n",
            "`rosters.reps.format`: only allowed with `file`: it is the format of the member file",
        ),
        (
            "[rosters.reps]\nfile = \"\"\n",
            "`rosters.reps.file`: empty: give the path of the member file, relative to the goal file",
        ),
        (
            "[rosters.reps]\ntopic = \"sales teams\"\n",
            "`rosters.reps.topic`: `sales teams` is not a Kafka topic name: use 1 to 249 \
             characters from A-Z, a-z, 0-9, `.`, `_` and `-` (not `.` or `..` alone)",
        ),
        (
            "[rosters.reps]\ntopic = \"t\"\nstrict = \"yes\"\n",
            "`rosters.reps.strict`: expected true or false (default false), found a string",
        ),
        (
            "[rosters.reps]\ntopic = \"t\"\nowner = \"me\"\n",
            "`rosters.reps.owner`: unknown key; allowed keys are: file, format, topic, columns, strict",
        ),
        (
            "[rosters.reps]\nstrict = true\n",
            "`rosters.reps`: give `file` (a CSV or JSON lines file of members), `topic` (a \
             compacted Kafka topic of members) or both",
        ),
        (
            "[rosters.reps]\ntopic = \"t\"\ncolumns = \"rep_id\"\n",
            "`rosters.reps.columns`: expected a table of group_by field = column name, e.g. { \
             rep_id = \"sales_agent\" }, found a string",
        ),
        (
            "[rosters.reps]\ntopic = \"t\"\ncolumns = { rep_id = 3 }\n",
            "`rosters.reps.columns.rep_id`: expected a column name (a string), found an integer",
        ),
        (
            "[rosters.reps]\ntopic = \"t\"\ncolumns = { rep_id = \"\" }\n",
            "`rosters.reps.columns.rep_id`: empty: give the name of the column holding this group_by field",
        ),
        (
            "[rosters.reps]\ntopic = \"t\"\ncolumns = { team_id = \"manager\" }\n",
            "`rosters.reps.columns.team_id`: `team_id` is not a group_by entry of any goal with \
             roster = \"reps\" (group_by entries of its goals: rep_id)",
        ),
        (
            "[rosters]\nreps = \"teams.csv\"\n",
            "`rosters.reps`: expected a table such as [rosters.reps] file = \"reps.csv\", found a string",
        ),
    ];
    for (top, want) in cases {
        let got = only_problem(&lookahead_file(top, "roster = \"reps\""));
        assert_eq!(got, want, "{top}");
    }
    let unreferenced = [
        (
            "rosters = 3\n",
            "`rosters`: expected tables such as [rosters.reps] file = \"reps.csv\", found an integer",
        ),
        (
            "[rosters.\"\"]\ntopic = \"t\"\n",
            "`rosters`: `` is not a roster name: give each roster a non-empty name",
        ),
    ];
    for (top, want) in unreferenced {
        assert_eq!(only_problem(&lookahead_file(top, "")), want, "{top}");
    }
    let formats = [
        ("a.csv", RosterFormat::Csv),
        ("a.JSONL", RosterFormat::JsonLines),
        ("dir/a.ndjson", RosterFormat::JsonLines),
    ];
    for (file, format) in formats {
        let set = parse_goal_file(&lookahead_file(
            &format!("[rosters.reps]\nfile = \"{file}\"\n"),
            "roster = \"reps\"",
        ))
        .unwrap();
        assert_eq!(set.rosters[0].file, Some((file.to_string(), format)));
    }
    let unused = problems(&lookahead_file(
        "[rosters.spare]\ntopic = \"t\"\ncolumns = { rep_id = \"agent\" }\n",
        "",
    ));
    assert!(
        unused[0]
            .message
            .ends_with("(no goal with a group_by lists this roster)"),
        "{unused:?}"
    );
}
