//! Roster topics without a broker: who reads which topic, the master copy and the owners' copies,
//! refused records and their dead letters across commits and aborts.

use super::*;
use crate::engine::{Owner, Progress};
use crate::model::{Attainment, Outcome, Timestamp};

const DAY: i64 = 24 * 3_600_000_000_000;

const GOALS: &str = r#"
[[goals]]
id = "rep-wins"
metric = "count"
filter = { event_type = "deal_won" }
group_by = ["rep_id"]
window = { tumbling = "10d" }
target = 3

[[goals]]
id = "region-wins"
metric = "count"
filter = { event_type = "deal_won" }
group_by = ["region"]
window = { tumbling = "10d" }
target = 5

[[goals]]
id = "file-wins"
metric = "count"
filter = { event_type = "deal_won" }
group_by = ["rep_id"]
window = { tumbling = "10d" }
target = 1

[[goals]]
id = "no-roster"
metric = "count"
group_by = ["rep_id"]
window = { tumbling = "10d" }
target = 1
"#;

fn decl(name: &str, topic: Option<&str>, columns: &[(&str, &str)]) -> RosterDecl {
    RosterDecl {
        name: name.into(),
        file: topic
            .is_none()
            .then(|| ("reps.csv".to_string(), crate::goals::RosterFormat::Csv)),
        topic: topic.map(String::from),
        columns: columns
            .iter()
            .map(|(f, c)| (f.to_string(), c.to_string()))
            .collect(),
        strict: false,
    }
}

/// Goals 0 and 1 list roster `agents` (topic `crm-agents`, rep_id from `agent`, region from
/// `office`); goal 2 lists roster `file-reps` (a file); goal 3 has none.
fn goal_set() -> Arc<GoalSet> {
    let mut set = GoalSet::from_toml(GOALS).unwrap_or_else(|e| panic!("{e}"));
    set.rosters = vec![
        decl(
            "agents",
            Some("crm-agents"),
            &[("rep_id", "agent"), ("region", "office")],
        ),
        decl("file-reps", None, &[]),
    ];
    set.goals[0].roster = Some(0);
    set.goals[1].roster = Some(0);
    set.goals[2].roster = Some(1);
    Arc::new(set)
}

fn file_rosters(set: &GoalSet) -> Vec<Option<Roster>> {
    let file = Roster::from_csv("rep_id\nAnna\n", &["rep_id"], &[]).unwrap();
    vec![None, None, Some(file), None]
        .into_iter()
        .take(set.goals.len())
        .collect()
}

fn table() -> RosterTable {
    let set = goal_set();
    let loaded = file_rosters(&set);
    RosterTable::new(set, loaded).unwrap()
}

fn names(roster: &Option<Roster>) -> Vec<String> {
    let roster = roster.as_ref().expect("a roster");
    roster.iter().map(|m| m.values.join("/")).collect()
}

/// Applies a record of `crm-agents` to `t` alone.
fn put(t: &mut RosterTable, key: &[u8], value: Option<&[u8]>) -> Result<bool, RosterTopicError> {
    t.apply("crm-agents", (key, value), [], &mut Vec::new())
}

fn agent(name: &str, office: &str) -> String {
    format!(r#"{{"agent":"{name}","office":"{office}","manager":"M"}}"#)
}

#[test]
fn topics_list_the_goals_whose_roster_reads_them() {
    let topics = roster_topics(&goal_set());
    assert_eq!(topics.len(), 1);
    assert_eq!(
        topics["crm-agents"],
        TopicReaders {
            rosters: vec!["agents".into()],
            goals: vec![0, 1]
        }
    );
    assert!(roster_topics(&GoalSet::from_toml(GOALS).unwrap()).is_empty());
}

#[test]
fn topic_rosters_start_empty_and_file_rosters_stay() {
    let t = table();
    let rosters = t.rosters();
    assert_eq!(rosters.len(), 4);
    assert!(rosters[0].as_ref().unwrap().is_empty());
    assert_eq!(rosters[1].as_ref().unwrap().fields(), ["region"]);
    assert_eq!(names(&rosters[2]), ["Anna"]);
    assert!(rosters[3].is_none());
}

#[test]
fn records_reach_the_master_and_every_owner_per_goal() {
    let mut t = table();
    let mut owners: Vec<Owner> = (0..2)
        .map(|i| {
            let mut o = Owner::new(t.goals.clone(), 1);
            o.set_rosters(t.rosters().to_vec(), (i, 2));
            o
        })
        .collect();
    let put = |t: &mut RosterTable, owners: &mut Vec<Owner>, key: &str, value: Option<String>| {
        let value = value.as_deref().map(str::as_bytes);
        t.apply(
            "crm-agents",
            (key.as_bytes(), value),
            owners.iter_mut(),
            &mut Vec::new(),
        )
    };
    assert_eq!(
        put(&mut t, &mut owners, "a1", Some(agent("Anna", "East"))),
        Ok(true)
    );
    assert_eq!(
        put(&mut t, &mut owners, "a2", Some(agent("Bob", "West"))),
        Ok(true)
    );
    assert_eq!(
        put(&mut t, &mut owners, "a2", Some(agent("Bob", "West"))),
        Ok(false)
    );
    assert_eq!(names(&t.rosters()[0]), ["Anna", "Bob"]);
    assert_eq!(names(&t.rosters()[1]), ["East", "West"]);
    assert_eq!(put(&mut t, &mut owners, "a1", None), Ok(true));
    assert_eq!(names(&t.rosters()[0]), ["Bob"]);
    // Another topic, and the file roster, are left alone.
    assert_eq!(
        t.apply(
            "other",
            (b"a3", Some(agent("Cy", "N").as_bytes())),
            [],
            &mut Vec::new()
        ),
        Ok(false)
    );
    assert_eq!(names(&t.rosters()[2]), ["Anna"]);
    for o in &owners {
        assert_eq!(o.rosters(), t.rosters());
    }
}

#[test]
fn a_refused_record_names_roster_goal_and_cause_and_changes_nothing() {
    let mut t = table();
    let anna = agent("Anna", "East");
    put(&mut t, b"a1", Some(anna.as_bytes())).unwrap();
    let before = t.rosters().to_vec();
    let err = put(&mut t, b"a2", Some(b"not json")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("roster `agents` of goal `rep-wins`: roster record with key \"a2\" is not a JSON object"),
        "{err}"
    );
    // Another key giving the same agent is another row of the same group, not a refusal.
    put(&mut t, b"a9", Some(agent("Anna", "West").as_bytes())).unwrap();
    assert_eq!(names(&t.rosters()[0]), ["Anna"]);
    put(&mut t, b"a9", None).unwrap();
    let late = br#"{"agent":"Cy","office":"North","active_from":"soon"}"#;
    let err = put(&mut t, b"a3", Some(late)).unwrap_err();
    assert!(err.to_string().contains("column `active_from`"), "{err}");
    assert_eq!(t.rosters()[0], before[0]);
}

#[test]
fn a_record_one_goal_refuses_still_reaches_the_others() {
    let mut t = table();
    // No `office`: fine for the goal grouped by rep_id, a missing column for the one by region.
    let result = put(&mut t, b"a1", Some(br#"{"agent":"Anna"}"#));
    let err = result.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("roster `agents` of goal `region-wins`: roster record with key \"a1\" has no column `office`"),
        "{err}"
    );
    assert_eq!(names(&t.rosters()[0]), ["Anna"]);
    assert!(t.rosters()[1].as_ref().unwrap().is_empty());
}

fn progress(o: &mut Owner, day: i64, out: &mut Vec<Attainment>) {
    let p = Progress {
        partition: 0,
        stream_time: Timestamp::from_nanos(day * DAY),
        earliest: Timestamp::from_nanos(0),
    };
    o.progress(p, out);
}

#[test]
fn a_member_added_while_running_gets_the_open_window_and_the_later_ones() {
    let mut t = table();
    let mut owners = [Owner::new(t.goals.clone(), 1)];
    owners[0].set_rosters(t.rosters().to_vec(), (0, 1));
    let mut out = Vec::new();
    progress(&mut owners[0], 3, &mut out);
    let anna = agent("Anna", "East");
    let record = (&b"a1"[..], Some(anna.as_bytes()));
    t.apply("crm-agents", record, owners.iter_mut(), &mut out)
        .unwrap();
    progress(&mut owners[0], 25, &mut out);
    let finals: Vec<(&str, &str, i64)> = out
        .iter()
        .filter(|a| a.outcome.is_some())
        .map(|a| {
            let start = a.window.start.as_nanos() / DAY;
            (&*a.goal_id, a.group[0].1.as_str(), start)
        })
        .collect();
    assert!(finals.contains(&("rep-wins", "Anna", 0)), "{finals:?}");
    assert!(finals.contains(&("rep-wins", "Anna", 10)), "{finals:?}");
    assert!(finals.contains(&("region-wins", "East", 0)), "{finals:?}");
    let missed = out
        .iter()
        .filter(|a| a.outcome == Some(Outcome::Missed))
        .count();
    assert_eq!(missed, finals.len());
}

#[test]
fn dead_letters_are_sent_again_after_an_abort() {
    let bad = |offset| BadRecord {
        topic: "t".into(),
        partition: 0,
        offset,
        key: b"k".to_vec(),
        value: Vec::new(),
        detail: "d".into(),
    };
    let sent = |r: &mut Rejected| {
        let mut offsets = Vec::new();
        r.send_pending(|b| offsets.push(b.offset));
        offsets
    };
    let mut r = Rejected::default();
    assert!(!r.has_pending());
    r.push(bad(1));
    r.push(bad(2));
    assert_eq!(sent(&mut r), [1, 2]);
    r.push(bad(3));
    r.aborted();
    assert_eq!(sent(&mut r), [1, 2, 3]);
    r.committed();
    r.aborted();
    assert!(!r.has_pending());
    assert_eq!(r, Rejected::default());
}

#[test]
fn the_roster_consumer_never_commits_and_reads_committed() {
    let cfg = reader_config(&ClientConfig::new(), "app-rosters");
    assert_eq!(cfg.get("enable.auto.commit"), Some("false"));
    assert_eq!(cfg.get("isolation.level"), Some("read_committed"));
    assert_eq!(cfg.get("auto.offset.reset"), Some("earliest"));
    assert_eq!(cfg.get("group.id"), Some("app-rosters"));
}

#[test]
fn a_missing_topic_names_the_roster() {
    let e = RosterTopicError::Missing {
        roster: "agents".into(),
        topic: "crm-agents".into(),
    };
    assert!(e
        .to_string()
        .starts_with("roster `agents` reads topic `crm-agents`, which does not exist"));
}
