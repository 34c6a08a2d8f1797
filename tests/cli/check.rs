//! `goalpost check`, and how errors name their cause.

use crate::support::bin::{goalpost, run, stderr};
use crate::support::dirs::tmp_dir;
use crate::support::goals::EXAMPLE_GOALS;

#[test]
fn check_prints_the_goals() {
    let o = run(goalpost().args(["check", "--goals", EXAMPLE_GOALS]));
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    for id in [
        "region-monthly-revenue",
        "team-win-rate",
        "avg-won-deal-30d",
    ] {
        assert!(text.contains(id), "{text}");
    }
    assert!(
        text.contains("calendar quarter (Asia/Kolkata, fiscal year from April)"),
        "{text}"
    );
    assert!(text.contains("8 goal(s) OK"), "{text}");
}

#[test]
fn check_reports_every_problem_and_exits_1() {
    let path = tmp_dir().join("bad-goals.toml");
    std::fs::write(
        &path,
        r#"
[[goals]]
id = "a"
metric = "sum"
window = { calendar = "month", timezone = "Mars/Olympus" }
target = 10
colour = "red"

[[goals]]
id = "a"
metric = "count"
window = { tumbling = "7days" }
target = 5
direction = "at_most"
milestones = [0.5]
"#,
    )
    .unwrap();
    let o = run(goalpost().args(["check", "--goals", path.to_str().unwrap()]));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    for expected in [
        "goal `a`, key `field`: missing",
        "Mars/Olympus",
        "key `colour`: unknown key",
        "duplicate goal id `a`",
        "`7days` is not a duration",
        "key `milestones`: not allowed on an at_most goal",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}

/// `check --config` refuses what `run` would refuse before connecting: an empty bootstrap list,
/// progress gauges of unknown goals, an HTTP token that cannot be read, a missing goal file.
#[test]
fn check_config_refuses_what_run_would() {
    let check = |name: &str, body: &str| {
        let path = tmp_dir().join(name);
        std::fs::write(&path, body).unwrap();
        let o = run(goalpost()
            .args(["check", "--config", path.to_str().unwrap()])
            .env_remove("KAFKA_BOOTSTRAP")
            .env_remove("GOALPOST_TEST_NO_SUCH_TOKEN"));
        (
            o.status.code(),
            stderr(&o),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let base = |bootstrap: &str, goals: &str, extra: &str| {
        format!(
            "goals = \"{goals}\"\n[kafka]\nbootstrap_servers = \"{bootstrap}\"\n[input]\ntopics = [\"in\"]\n{extra}"
        )
    };
    let (code, err, _) = check("empty-bootstrap.toml", &base("", EXAMPLE_GOALS, ""));
    assert_eq!(code, Some(1));
    assert!(err.contains("kafka.bootstrap_servers is empty"), "{err}");

    let (code, err, _) = check(
        "gauges.toml",
        &base(
            "b:9092",
            EXAMPLE_GOALS,
            "[metrics]\nprogress_gauges = [\"team-win-rate\", \"no-such-goal\"]\n",
        ),
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("progress_gauges names `no-such-goal`"),
        "{err}"
    );

    let (code, err, _) = check(
        "token.toml",
        &base(
            "b:9092",
            EXAMPLE_GOALS,
            "[http]\ntoken_env = \"GOALPOST_TEST_NO_SUCH_TOKEN\"\n",
        ),
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("GOALPOST_TEST_NO_SUCH_TOKEN` is not set"),
        "{err}"
    );

    // A missing goal file fails before anything is reported as OK.
    let (code, err, out) = check(
        "no-goals.toml",
        &base("b:9092", "/nonexistent/goals.toml", ""),
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("/nonexistent/goals.toml"), "{err}");
    assert!(!out.contains("OK"), "{out}");

    let (code, err, out) = check("fine.toml", &base("b:9092", EXAMPLE_GOALS, ""));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("OK"), "{out}");

    let hook = "[[notify.webhooks]]\nname = \"crm\"\nurl = \"https://crm.example.com/h\"\n";
    let (code, err, _) = check(
        "two-hooks.toml",
        &base("b:9092", EXAMPLE_GOALS, &format!("{hook}{hook}")),
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("the name `crm` is used twice"), "{err}");
    let (code, err, _) = check(
        "hook-secret.toml",
        &base(
            "b:9092",
            EXAMPLE_GOALS,
            &format!("{hook}secret_env = \"GOALPOST_TEST_NO_SUCH_TOKEN\"\n"),
        ),
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("GOALPOST_TEST_NO_SUCH_TOKEN"), "{err}");
    let (code, err, out) = check("hook.toml", &base("b:9092", EXAMPLE_GOALS, hook));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("webhook:crm (unsigned)"), "{out}");
}

/// An error names its cause once: `{e:#}` prints the chain of sources, so no error both
/// includes its source's text and returns it as the source.
#[test]
fn errors_name_their_cause_once() {
    let missing = tmp_dir().join("missing-config.toml");
    let o = run(goalpost().args(["run", "--config", missing.to_str().unwrap()]));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("cannot read config"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");

    // The HTTP port is taken: the bind error, then its cause, once.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = tmp_dir().join("port-taken.toml");
    std::fs::write(
        &config,
        format!(
            r#"goals = "{EXAMPLE_GOALS}"
[kafka]
bootstrap_servers = "127.0.0.1:1"
[app]
application_id = "port-taken"
[input]
topics = ["in"]
[output]
topic = "out"
[http]
listen = "{}"
"#,
            taken.local_addr().unwrap()
        ),
    )
    .unwrap();
    let o = run(goalpost().args(["run", "--config", config.to_str().unwrap()]));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("cannot listen on"), "{err}");
    assert_eq!(err.matches("ddress already in use").count(), 1, "{err}");
}

/// A goal file in a fresh directory whose `[rosters.reps]` reads `reps.csv` there, holding `csv`
/// (the CRM sales teams when `None`); returns the goal file's path.
fn goals_with_roster(csv: Option<&str>) -> std::path::PathBuf {
    let dir = tmp_dir();
    let teams =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/crm/sales_teams.csv");
    match csv {
        None => std::fs::copy(teams, dir.join("reps.csv"))
            .map(drop)
            .unwrap(),
        Some(text) => std::fs::write(dir.join("reps.csv"), text).unwrap(),
    }
    let path = dir.join("goals.toml");
    std::fs::write(
        &path,
        r#"
[rosters.reps]
file = "reps.csv"
columns = { rep_id = "sales_agent" }

[[goals]]
id = "rep-quarter-wins"
metric = "count"
filter = { event_type = "deal_won" }
group_by = ["rep_id"]
window = { calendar = "quarter" }
target = 20
roster = "reps"
status = { every = "1w", tolerance = 0.1 }
"#,
    )
    .unwrap();
    path
}

#[test]
fn check_loads_the_roster_files() {
    let path = goals_with_roster(None);
    // Run from elsewhere: the roster file is found next to the goal file.
    let o = run(goalpost().current_dir(std::env::temp_dir()).args([
        "check",
        "--goals",
        path.to_str().unwrap(),
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.ends_with(
            "1 goal(s) OK; dedupe horizon 1w\nroster `reps`: 35 members from reps.csv\n"
        ),
        "{text}"
    );
    // Without rosters, nothing is added after the totals line.
    let o = run(goalpost().args(["check", "--goals", EXAMPLE_GOALS]));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.ends_with("8 goal(s) OK; dedupe horizon 1w\n"),
        "{text}"
    );
}

#[test]
fn check_names_file_and_line_of_a_bad_roster() {
    let cases = [
        (
            "agent,office\nAnna,East\n",
            "roster `reps`, file `reps.csv`, for goal `rep-quarter-wins`: roster line 1 has no \
             column `sales_agent` for group_by field `rep_id` (columns found: agent, office)",
        ),
        (
            "sales_agent,active_from\nAnna,\nBob,next tuesday\n",
            "roster `reps`, file `reps.csv`, for goal `rep-quarter-wins`: roster line 3: column \
             `active_from`: `next tuesday`",
        ),
    ];
    for (csv, want) in cases {
        let path = goals_with_roster(Some(csv));
        let o = run(goalpost().args(["check", "--goals", path.to_str().unwrap()]));
        assert_eq!(o.status.code(), Some(1));
        let err = stderr(&o);
        let want = format!("{}: {want}", path.display());
        assert!(err.starts_with(&want), "{err}\nwant\n{want}");
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn replay_needs_a_roster_file() {
    let path = goals_with_roster(None);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("file = \"reps.csv\"", "topic = \"crm.reps\""),
    )
    .unwrap();
    let o = run(goalpost().args(["check", "--goals", path.to_str().unwrap()]));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.ends_with("roster `reps`: members from topic crm.reps on Kafka\n"),
        "{out}"
    );
    let o = run(goalpost().args(["replay", "--goals", path.to_str().unwrap(), "--events", "-"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(
            "roster `reps` has no `file` (it reads topic `crm.reps` on Kafka); replay needs a file"
        ),
        "{}",
        stderr(&o)
    );
}
