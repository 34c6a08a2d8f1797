use std::collections::BTreeMap;

use proptest::prelude::*;

use super::csv::{write_line, Records};
use super::*;

const SALES_TEAMS: &str = include_str!("../../../tests/data/crm/sales_teams.csv");

fn ts(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap()
}

fn window(start: &str, end: &str) -> Window {
    Window {
        start: ts(start),
        end: ts(end),
    }
}

fn names<'r>(members: impl Iterator<Item = &'r Member>) -> Vec<&'r str> {
    members.map(|m| m.values[0].as_str()).collect()
}

fn csv_rows(text: &str) -> Vec<(usize, Vec<String>)> {
    Records::new(text)
        .map(|r| {
            let (line, fields) = r.unwrap();
            (line, fields.into_iter().map(|f| f.into_owned()).collect())
        })
        .collect()
}

#[test]
fn the_crm_sales_teams_load_with_a_column_mapping() {
    let roster = Roster::from_csv(SALES_TEAMS, &["rep_id"], &[("rep_id", "sales_agent")]).unwrap();
    assert_eq!(roster.len(), 35);
    assert_eq!(roster.fields(), ["rep_id"]);
    let anna = roster.get(&["Anna Snelling".to_string()]).unwrap();
    assert_eq!((anna.active_from, anna.active_until), (None, None));
    let all = names(roster.iter());
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "members come in the order of their values");
    let quarter = window("2017-01-01T00:00:00Z", "2017-04-01T00:00:00Z");
    assert_eq!(roster.expected_in(&quarter).count(), 35);
}

#[test]
fn the_crm_sales_teams_map_onto_several_fields() {
    let mapping = [
        ("rep_id", "sales_agent"),
        ("team_id", "manager"),
        ("region", "regional_office"),
    ];
    let roster = Roster::from_csv(SALES_TEAMS, &["region", "team_id", "rep_id"], &mapping).unwrap();
    assert_eq!(roster.len(), 35);
    let first = roster.iter().next().unwrap();
    assert_eq!(first.values.len(), 3);
    assert!(["Central", "East", "West"].contains(&first.values[0].as_str()));
    let regions: std::collections::BTreeSet<_> = roster.iter().map(|m| &m.values[0]).collect();
    assert_eq!(regions.len(), 3);
}

#[test]
fn a_missing_column_names_the_columns_found() {
    let err = Roster::from_csv(SALES_TEAMS, &["rep_id"], &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "roster line 1 has no column `rep_id` for group_by field `rep_id` \
         (columns found: sales_agent, manager, regional_office)"
    );
}

#[test]
fn column_mappings_must_name_group_by_fields_once() {
    let err = Roster::new(&["rep_id"], &[("team_id", "manager")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "roster column mapping names `team_id`, which is not a group_by field (group_by: rep_id)"
    );
    let twice = [("rep_id", "a"), ("rep_id", "b")];
    assert_eq!(
        Roster::new(&["rep_id"], &twice),
        Err(RosterError::FieldMappedTwice("rep_id".into()))
    );
    assert_eq!(Roster::new(&[], &[]), Err(RosterError::NoGroupBy));
    assert!(matches!(
        Roster::new(&["rep_id"], &[("rep_id", "active_until")]),
        Err(RosterError::PeriodColumnAsField { .. })
    ));
}

#[test]
fn csv_quoting_follows_rfc_4180() {
    let text = "a,b,c\r\n\"x, y\",\"say \"\"hi\"\"\",\"two\nlines\"\r\n\n,\"\",plain\n";
    assert_eq!(
        csv_rows(text),
        [
            (1, vec!["a".into(), "b".into(), "c".into()]),
            (
                2,
                vec!["x, y".into(), "say \"hi\"".into(), "two\nlines".into()]
            ),
            (5, vec![String::new(), String::new(), "plain".into()]),
        ]
    );
    assert_eq!(
        csv_rows("\u{feff}a\nb"),
        [(1, vec!["a".into()]), (2, vec!["b".into()])]
    );
    assert_eq!(csv_rows("a,\n"), [(1, vec!["a".into(), String::new()])]);
}

#[test]
fn csv_errors_name_the_line() {
    let cases = [
        ("rep_id\n\"open\n", 2, CsvProblem::UnterminatedQuote),
        ("rep_id\nab\"c\n", 2, CsvProblem::QuoteInUnquotedField),
        ("rep_id\nok\n\"ab\"c\n", 3, CsvProblem::TextAfterQuote),
    ];
    for (text, line, problem) in cases {
        let err = Roster::from_csv(text, &["rep_id"], &[]).unwrap_err();
        assert_eq!(
            err,
            RosterError::Csv {
                at: RosterPlace::Line(line),
                problem
            },
            "{text:?}"
        );
    }
    let err = Roster::from_csv("rep_id\n\"ab\"c\n", &["rep_id"], &[]).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("roster line 2: text after the closing quote"));
}

#[test]
fn quoted_values_become_members() {
    let text = "rep_id,note\n\"Snelling, Anna\",\"a \"\"star\"\"\"\n\"multi\nline\",x\nlast,y\n";
    let roster = Roster::from_csv(text, &["rep_id"], &[]).unwrap();
    assert_eq!(
        names(roster.iter()),
        ["Snelling, Anna", "last", "multi\nline"]
    );
    let twice = Roster::from_csv("rep_id\n\"a\nb\"\n\"a\nb\"\n", &["rep_id"], &[]).unwrap();
    assert_eq!((twice.len(), twice.rows()), (1, 2));
    assert_eq!(names(twice.iter()), ["a\nb"]);
}

#[test]
fn row_errors_name_line_and_column() {
    let empty = Roster::from_csv("rep_id,region\nanna,\n", &["rep_id", "region"], &[]);
    assert_eq!(
        empty.unwrap_err().to_string(),
        "roster line 2: column `region` is empty; every member needs a non-empty value for each \
         group_by field"
    );
    let short = Roster::from_csv("rep_id,region\nanna\n", &["rep_id"], &[]);
    assert_eq!(
        short.unwrap_err().to_string(),
        "roster line 2 has 1 field(s), but the header names 2 column(s)"
    );
    let dup = Roster::from_csv("rep_id,x,rep_id\na,b,c\n", &["rep_id"], &[]);
    assert!(matches!(dup, Err(RosterError::ColumnTwice { .. })));
    assert_eq!(
        Roster::from_csv("", &["rep_id"], &[]),
        Err(RosterError::NoHeader)
    );
    let header_only = Roster::from_csv("rep_id\n", &["rep_id"], &[]).unwrap();
    assert!(header_only.is_empty());
}

#[test]
fn values_over_the_limit_are_refused() {
    let limit = Limits::DEFAULT.value_bytes;
    let at_limit = format!("rep_id\n{}\n", "a".repeat(limit));
    assert_eq!(
        Roster::from_csv(&at_limit, &["rep_id"], &[]).unwrap().len(),
        1
    );
    let over = format!("rep_id\n{}\n", "a".repeat(limit + 1));
    assert_eq!(
        Roster::from_csv(&over, &["rep_id"], &[]),
        Err(RosterError::ValueTooLong {
            at: RosterPlace::Line(2),
            column: "rep_id".into(),
            len: limit + 1,
            limit
        })
    );
}

#[test]
fn periods_are_read_and_checked() {
    let text = "rep_id,active_from,active_until\n\
                a,,\n\
                b,2017-01-01T00:00:00Z,\n\
                c,,2017-02-01T00:00:00+01:00\n";
    let roster = Roster::from_csv(text, &["rep_id"], &[]).unwrap();
    let b = roster.get(&["b".into()]).unwrap();
    assert_eq!(b.active_from, Some(ts("2017-01-01T00:00:00Z")));
    let c = roster.get(&["c".into()]).unwrap();
    assert_eq!(c.active_until, Some(ts("2017-01-31T23:00:00Z")));

    let backwards =
        "rep_id,active_from,active_until\na,2017-02-01T00:00:00Z,2017-02-01T00:00:00Z\n";
    assert_eq!(
        Roster::from_csv(backwards, &["rep_id"], &[])
            .unwrap_err()
            .to_string(),
        "roster line 2: active_until (2017-02-01T00:00:00Z) must be after active_from \
         (2017-02-01T00:00:00Z)"
    );
    let bad = "rep_id,active_until\na,2017-02-01\n";
    let err = Roster::from_csv(bad, &["rep_id"], &[]).unwrap_err();
    assert!(matches!(err, RosterError::Timestamp { ref column, .. } if column == "active_until"));
    assert!(err
        .to_string()
        .starts_with("roster line 2: column `active_until`: `2017-02-01`"));
}

#[test]
fn expected_members_overlap_the_window_at_its_edges() {
    let text = "rep_id,active_from,active_until\n\
                always,,\n\
                ended_at_start,,2017-04-01T00:00:00Z\n\
                ended_inside,,2017-04-01T00:00:00.000000001Z\n\
                starts_at_end,2017-07-01T00:00:00Z,\n\
                starts_inside,2017-06-30T23:59:59.999999999Z,\n\
                inside,2017-05-01T00:00:00Z,2017-05-02T00:00:00Z\n\
                around,2017-01-01T00:00:00Z,2018-01-01T00:00:00Z\n";
    let roster = Roster::from_csv(text, &["rep_id"], &[]).unwrap();
    let q2 = window("2017-04-01T00:00:00Z", "2017-07-01T00:00:00Z");
    assert_eq!(
        names(roster.expected_in(&q2)),
        [
            "always",
            "around",
            "ended_inside",
            "inside",
            "starts_inside"
        ]
    );
    let q1 = window("2017-01-01T00:00:00Z", "2017-04-01T00:00:00Z");
    assert_eq!(
        names(roster.expected_in(&q1)),
        ["always", "around", "ended_at_start", "ended_inside"]
    );
}

#[test]
fn json_lines_read_like_csv() {
    let text =
        "\u{feff}{\"agent\": \"Anna\", \"active_from\": \"2017-01-01T00:00:00Z\", \"x\": 1}\n\
                \n\
                {\"agent\": \"Bob\", \"active_until\": null}\n";
    let roster = Roster::from_json_lines(text, &["rep_id"], &[("rep_id", "agent")]).unwrap();
    assert_eq!(names(roster.iter()), ["Anna", "Bob"]);
    assert_eq!(roster.get(&["Bob".into()]).unwrap().active_until, None);

    let err = |text: &str| {
        Roster::from_json_lines(text, &["rep_id"], &[])
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err("{\"rep\": \"a\", \"b\": 2}"),
        "roster line 1 has no column `rep_id` for group_by field `rep_id` (columns found: b, rep)"
    );
    assert_eq!(
        err("{\"rep_id\": \"a\"}\n{\"rep_id\": 7}"),
        "roster line 2: column `rep_id` must be a string, found a number"
    );
    assert_eq!(
        err("{\"rep_id\": null}"),
        "roster line 1: column `rep_id` is empty; every member needs a non-empty value for each \
         group_by field"
    );
    assert_eq!(
        err("[1]"),
        "roster line 1 is not a JSON object of column values: found [1]"
    );
    assert!(err("{\"rep_id\": \"a\"}\n\n{oops").starts_with("roster line 3 is not a JSON object"));
    let twice = "{\"rep_id\": \"a\"}\n{\"rep_id\": \"a\"}";
    let roster = Roster::from_json_lines(twice, &["rep_id"], &[]).unwrap();
    assert_eq!((roster.len(), roster.rows()), (1, 2));
}

#[test]
fn records_upsert_and_tombstones_remove() {
    let mut roster = Roster::new(&["rep_id"], &[("rep_id", "agent")]).unwrap();
    let put = |r: &mut Roster, key: &str, value: &str| {
        r.apply_record(key.as_bytes(), Some(value.as_bytes()))
    };
    assert_eq!(
        put(&mut roster, "k1", r#"{"agent":"Anna"}"#),
        Ok(RecordChange::Added)
    );
    assert_eq!(
        put(&mut roster, "k2", r#"{"agent":"Bob"}"#),
        Ok(RecordChange::Added)
    );
    assert_eq!(
        put(&mut roster, "k1", r#"{"agent":"Anna"}"#),
        Ok(RecordChange::Unchanged)
    );
    let later = r#"{"agent":"Anna","active_from":"2017-03-01T00:00:00Z"}"#;
    assert_eq!(put(&mut roster, "k1", later), Ok(RecordChange::Replaced));
    assert_eq!(
        roster.get(&["Anna".into()]).unwrap().active_from,
        Some(ts("2017-03-01T00:00:00Z"))
    );
    assert_eq!(
        put(&mut roster, "k2", r#"{"agent":"Bill"}"#),
        Ok(RecordChange::Replaced)
    );
    assert_eq!(names(roster.iter()), ["Anna", "Bill"]);

    assert_eq!(roster.apply_record(b"k2", None), Ok(RecordChange::Removed));
    assert_eq!(
        roster.apply_record(b"k2", None),
        Ok(RecordChange::Unchanged)
    );
    assert_eq!(
        roster.apply_record(b"nobody", None),
        Ok(RecordChange::Unchanged)
    );
    assert_eq!(names(roster.iter()), ["Anna"]);
    let jan = window("2017-01-01T00:00:00Z", "2017-02-01T00:00:00Z");
    assert_eq!(roster.expected_in(&jan).count(), 0);
}

#[test]
fn bad_records_are_typed_errors_and_change_nothing() {
    let mut roster = Roster::new(&["rep_id"], &[]).unwrap();
    roster
        .apply_record(b"k1", Some(br#"{"rep_id":"Anna"}"#))
        .unwrap();
    let before = roster.clone();
    let cases: [(&[u8], Option<&[u8]>); 5] = [
        (b"", Some(br#"{"rep_id":"x"}"#)),
        (b"k2", Some(b"not json")),
        (b"k2", Some(br#"{"rep_id":""}"#)),
        (b"k1", Some(br#"{"rep_id":"x","active_from":"soon"}"#)),
        (b"k1", Some(&[0xff, 0xfe])),
    ];
    for (key, value) in cases {
        assert!(
            roster.apply_record(key, value).is_err(),
            "{key:?} {value:?}"
        );
        assert_eq!(roster, before);
    }
    assert_eq!(
        roster
            .apply_record(b"k1", Some(b"not json"))
            .unwrap_err()
            .to_string(),
        "roster record with key \"k1\" is not a JSON object of column values: expected ident at \
         line 1 column 2"
    );
    assert_eq!(roster.apply_record(b"", None), Err(RosterError::EmptyKey));
}

#[test]
fn records_and_file_lines_may_give_the_same_group() {
    let mut roster = Roster::from_csv("rep_id\nAnna\n", &["rep_id"], &[]).unwrap();
    let anna = br#"{"rep_id":"Anna","active_from":"2017-03-01T00:00:00Z"}"#;
    assert_eq!(
        roster.apply_record(b"k", Some(anna)),
        Ok(RecordChange::Added)
    );
    assert_eq!(
        roster.apply_record(b"k", Some(anna)),
        Ok(RecordChange::Unchanged)
    );
    assert_eq!((roster.len(), roster.rows()), (1, 2));
    assert_eq!(roster.apply_record(b"k", None), Ok(RecordChange::Removed));
    assert_eq!((roster.len(), roster.rows()), (1, 1));
    assert!(roster.contains(&["Anna"]));
}

#[test]
fn rows_are_projected_onto_the_goal_s_group_by() {
    let mapping = [("region", "regional_office")];
    let roster = Roster::from_csv(SALES_TEAMS, &["region"], &mapping).unwrap();
    assert_eq!((roster.len(), roster.rows()), (3, 35));
    assert_eq!(names(roster.iter()), ["Central", "East", "West"]);
    let quarter = window("2017-01-01T00:00:00Z", "2017-04-01T00:00:00Z");
    assert_eq!(
        names(roster.expected_in(&quarter)),
        ["Central", "East", "West"]
    );
    assert!(roster.contains(&["East"]));
    assert!(!roster.contains(&["North"]));
    assert!(!roster.contains(&["East", "extra"]));
}

#[test]
fn a_group_is_expected_when_any_of_its_rows_is_active() {
    let text = "agent,office,active_from,active_until\n\
                a,East,,2017-02-01T00:00:00Z\n\
                b,East,2017-03-01T00:00:00Z,\n\
                c,West,2017-05-01T00:00:00Z,\n";
    let roster = Roster::from_csv(text, &["region"], &[("region", "office")]).unwrap();
    let month = |start: &str, end: &str| window(start, end);
    let jan = month("2017-01-01T00:00:00Z", "2017-02-01T00:00:00Z");
    let feb = month("2017-02-01T00:00:00Z", "2017-03-01T00:00:00Z");
    let mar = month("2017-03-01T00:00:00Z", "2017-04-01T00:00:00Z");
    assert_eq!(names(roster.expected_in(&jan)), ["East"]);
    assert_eq!(roster.expected_in(&feb).count(), 0);
    let east = roster.expected_in(&mar).next().unwrap();
    assert_eq!(east.active_from, Some(ts("2017-03-01T00:00:00Z")));
    assert!(roster.contains(&["West"]), "listed, though not yet active");
}

#[test]
fn a_tombstone_removes_only_its_row() {
    let mut roster = Roster::new(&["region"], &[]).unwrap();
    let east = br#"{"region":"East"}"#;
    for key in [b"k1", b"k2"] {
        assert_eq!(
            roster.apply_record(key, Some(east)),
            Ok(RecordChange::Added)
        );
    }
    assert_eq!((roster.len(), roster.rows()), (1, 2));
    assert_eq!(roster.apply_record(b"k1", None), Ok(RecordChange::Removed));
    assert!(roster.contains(&["East"]));
    assert_eq!(
        roster.apply_record(b"k2", Some(br#"{"region":"West"}"#)),
        Ok(RecordChange::Replaced)
    );
    assert_eq!(names(roster.iter()), ["West"]);
    assert_eq!(roster.apply_record(b"k2", None), Ok(RecordChange::Removed));
    assert!(roster.is_empty() && !roster.contains(&["East"]));
}

fn any_value() -> impl Strategy<Value = String> {
    "[a-z ,\"\r\n\u{e9}]{1,8}"
}

proptest! {
    #[test]
    fn csv_round_trips_any_values(rows in prop::collection::btree_set((any_value(), any_value()), 0..20)) {
        let mut text = write_line(&["rep_id", "note"]);
        text.push_str("\r\n");
        for (rep, note) in &rows {
            text.push_str(&write_line(&[rep, note]));
            text.push('\n');
        }
        let reps: std::collections::BTreeSet<&String> = rows.iter().map(|(r, _)| r).collect();
        let roster = Roster::from_csv(&text, &["rep_id"], &[]).unwrap();
        prop_assert_eq!(roster.rows(), rows.len());
        let read: Vec<&String> = roster.iter().map(|m| &m.values[0]).collect();
        prop_assert_eq!(read, reps.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn expected_in_is_overlap_of_half_open_intervals(
        from in prop::option::of(0i64..20),
        len in 1i64..20,
        bounded in any::<bool>(),
        start in 0i64..20,
        wlen in 1i64..20,
    ) {
        let until = bounded.then(|| from.unwrap_or(0) + len);
        let member = Member {
            values: vec!["m".into()],
            active_from: from.map(Timestamp::from_nanos),
            active_until: until.map(Timestamp::from_nanos),
        };
        let w = Window { start: Timestamp::from_nanos(start), end: Timestamp::from_nanos(start + wlen) };
        let active = |t: i64| from.is_none_or(|f| f <= t) && until.is_none_or(|u| t < u);
        let brute = (start..start + wlen).any(active);
        prop_assert_eq!(member.is_active_in(&w), brute);
    }

    #[test]
    fn a_compacted_topic_ends_as_its_last_record_per_key(
        records in prop::collection::vec((0u8..6, prop::option::of(0i64..3)), 0..40),
    ) {
        // Each key holds its own member name; the period varies, and None is a tombstone.
        let mut roster = Roster::new(&["rep_id"], &[]).unwrap();
        let mut last: BTreeMap<u8, Option<i64>> = BTreeMap::new();
        for (key, from) in &records {
            let value = from.map(|f| {
                let at = Timestamp::from_nanos(f * 1_000_000_000).to_rfc3339();
                format!(r#"{{"rep_id":"rep{key}","active_from":"{at}"}}"#)
            });
            roster.apply_record(&[b'k', b'0' + key], value.as_deref().map(str::as_bytes)).unwrap();
            last.insert(*key, *from);
        }
        let expected: Vec<(String, Option<Timestamp>)> = last
            .iter()
            .filter_map(|(k, f)| f.map(|f| (format!("rep{k}"), Some(Timestamp::from_nanos(f * 1_000_000_000)))))
            .collect();
        let got: Vec<(String, Option<Timestamp>)> =
            roster.iter().map(|m| (m.values[0].clone(), m.active_from)).collect();
        prop_assert_eq!(got, expected);
    }
}
