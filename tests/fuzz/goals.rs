//! Goal files: the TOML parser and validator.

use std::sync::Arc;

use goalpost::codec::{json, proto};
use goalpost::engine::Pipeline;
use goalpost::goals::{GoalFileError, GoalSet};
use goalpost::model::{Decimal, SalesEvent, StringField, Timestamp};
use proptest::prelude::*;

use crate::support::fuzz::{config, mutate, mutations, within_allowance};

/// Parses `text`, checking the properties every goal file must have: no panic, bounded
/// allocation, a rejection that says why; and an accepted file's windows can be computed at the
/// ends of time.
fn parse(text: &str) -> Result<GoalSet, GoalFileError> {
    let result = within_allowance(text.len(), || GoalSet::from_toml(text));
    match &result {
        Ok(set) => {
            assert!(!set.goals.is_empty());
            let mut out = Vec::new();
            for goal in &set.goals {
                assert!(!goal.id.trim().is_empty());
                let _ = goal.window.describe();
                for t in [i64::MIN, -1, 0, 1_767_225_600_000_000_000, i64::MAX] {
                    out.clear();
                    goal.window.windows_for(Timestamp::from_nanos(t), &mut out);
                    assert!(!out.is_empty(), "no window at {t} for {}", goal.id);
                    assert!(out.len() <= goal.window.max_windows_per_instant());
                }
            }
        }
        Err(GoalFileError::Invalid(problems)) => {
            assert!(!problems.is_empty());
            for p in problems {
                assert!(!p.message.trim().is_empty(), "{p:?}");
            }
        }
        Err(GoalFileError::Toml(message)) => assert!(!message.trim().is_empty()),
        Err(e @ GoalFileError::Io { .. }) => panic!("no I/O in from_toml: {e}"),
    }
    result
}

// The generators below return `BoxedStrategy`: unboxed, the nested strategy types of a goal file
// build value trees large enough to overflow a test thread's stack in debug builds.

/// A TOML string literal of `s`: JSON's escapes are TOML's, plus DEL, which TOML wants escaped.
fn quoted(s: &str) -> String {
    serde_json::to_string(s)
        .expect("a string serializes")
        .replace('\u{7f}', "\\u007f")
}

/// Durations: mostly well-formed; at the ends of i64 nanoseconds, negative, malformed.
fn duration() -> BoxedStrategy<String> {
    let n = prop_oneof![
        12 => 1..100i64,
        1 => Just(0),
        1 => Just(i64::MAX),
        1 => Just(106_751),
        1 => Just(106_752),
        1 => Just(9_223_372_036_854),
        1 => any::<i64>(),
    ];
    let unit = prop_oneof![
        8 => prop::sample::select(&["ms", "s", "m", "h", "d", "w"]),
        1 => prop::sample::select(&["", "y", "D", " d", "µs"]),
    ];
    prop_oneof![
        12 => (n, unit).prop_map(|(n, u)| quoted(&format!("{n}{u}"))),
        1 => prop::sample::select(&["\"\"", "\"d\"", "\"-1d\"", "\"+1d\"", "\"1.5d\"", "7", "\"١d\""])
            .prop_map(str::to_string),
    ]
    .boxed()
}

/// Numbers for targets, milestones and counts: integers at the edges, floats at the edges
/// (including inf and nan), decimals as strings beyond rust_decimal's range, wrong types.
fn odd_number() -> BoxedStrategy<String> {
    prop::sample::select(&[
        "0",
        "-1",
        "9223372036854775807",
        "-9223372036854775808",
        "1e300",
        "1.7976931348623157e308",
        "5e-324",
        "-0.0",
        "inf",
        "-inf",
        "nan",
        "\"79228162514264337593543950335\"",
        "\"7.9e28\"",
        "\"1e-29\"",
        "\"abc\"",
        "\"\"",
        "true",
        "[]",
        "{}",
        "1979-05-27T07:32:00Z",
    ])
    .prop_map(str::to_string)
    .boxed()
}

/// A number: mostly a plausible one, sometimes one at the edges.
fn number() -> BoxedStrategy<String> {
    prop_oneof![
        4 => prop::sample::select(&["400000", "1", "0.5", "1.0", "\"0.1\"", "12.75", "1e3"])
            .prop_map(str::to_string),
        1 => odd_number(),
    ]
    .boxed()
}

/// A string value: mostly a known name, sometimes odd text or another type.
fn name(known: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        8 => prop::sample::select(known).prop_map(quoted),
        1 => ".{0,12}".prop_map(|s: String| quoted(&s)),
        1 => odd_number(),
    ]
    .boxed()
}

/// Metrics with a field that suits them.
const MEASURES: &[(&str, Option<&str>)] = &[
    ("count", None),
    ("sum", Some("amount")),
    ("avg", Some("attributes.score")),
    ("min", Some("amount")),
    ("max", Some("amount")),
    ("count_distinct", Some("account_id")),
    ("ratio", None),
];
const METRICS: &[&str] = &["count", "sum", "ratio", "Count", ""];
const FIELDS: &[&str] = &[
    "amount",
    "event_type",
    "rep_id",
    "region",
    "currency",
    "attributes.segment",
    "attributes.",
    "attributes",
    "attributes.a.b",
    "event_id",
    "occurred_at",
    "nope",
];
const UNITS: &[&str] = &["day", "week", "month", "quarter", "year", "hour", ""];
const ZONES: &[&str] = &[
    "UTC",
    "America/New_York",
    "Pacific/Chatham",
    "Pacific/Kiritimati",
    "Etc/GMT+12",
    "Europe/Berlin",
    "Mars/Olympus",
    "utc",
];
const WEEKDAYS: &[&str] = &["monday", "sun", "Saturday", "funday", ""];

/// A filter table: fields with values or lists of values (some empty, some of wrong types).
fn filter() -> BoxedStrategy<String> {
    let value = prop_oneof![
        4 => name(&["deal_won", "East", ""]),
        1 => prop::collection::vec(name(&["a", "b"]), 0..4)
            .prop_map(|v| format!("[{}]", v.join(","))),
    ];
    let field = prop_oneof![
        4 => prop::sample::select(&["event_type", "region", "attributes.segment"]),
        1 => prop::sample::select(FIELDS),
    ];
    prop::collection::btree_map(field, value, 0..4)
        .prop_map(|clauses| {
            let items: Vec<String> = clauses
                .iter()
                .map(|(f, v)| format!("{} = {v}", quoted(f)))
                .collect();
            format!("{{ {} }}", items.join(", "))
        })
        .boxed()
}

/// A window table: mostly one kind with the keys that fit it; sometimes none, two, or others.
fn window() -> BoxedStrategy<String> {
    let calendar = (
        name(UNITS),
        prop::option::of(name(ZONES)),
        prop::option::weighted(0.2, name(WEEKDAYS)),
        prop::option::weighted(0.2, prop_oneof![-1..14i64, any::<i64>()]),
    )
        .prop_map(|(u, z, w, m)| {
            let mut s = format!("calendar = {u}");
            if let Some(z) = z {
                s += &format!(", timezone = {z}");
            }
            if let Some(w) = w {
                s += &format!(", week_start = {w}");
            }
            if let Some(m) = m {
                s += &format!(", fiscal_year_start_month = {m}");
            }
            s
        });
    let kind = prop_oneof![
        3 => duration().prop_map(|d| format!("tumbling = {d}")),
        3 => (duration(), duration()).prop_map(|(s, e)| format!("hopping = {s}, every = {e}")),
        3 => calendar,
        1 => duration().prop_map(|s| format!("hopping = {s}")),
        1 => Just(String::new()),
        1 => Just("tumbling = \"1d\", calendar = \"day\"".to_string()),
    ];
    kind.prop_map(|k| format!("{{ {k} }}")).boxed()
}

/// Milestones: mostly a short ascending list, sometimes anything up to past the limit.
fn milestones() -> BoxedStrategy<String> {
    prop_oneof![
        3 => Just("[0.5, 1.0]".to_string()),
        1 => prop::collection::vec(number(), 0..70).prop_map(|m| format!("[{}]", m.join(", "))),
        1 => odd_number(),
    ]
    .boxed()
}

/// Stands for a goal id unique in its file.
const ID: &str = "<id>";

/// A group-by list: mostly distinct text fields; sometimes repeated or unusable ones.
fn group_by() -> BoxedStrategy<String> {
    prop_oneof![
        4 => prop::collection::btree_set(
            prop::sample::select(&["region", "rep_id", "team_id", "attributes.segment"]),
            0..4,
        )
        .prop_map(|g| format!("[{}]", g.into_iter().map(quoted).collect::<Vec<_>>().join(", "))),
        1 => prop::collection::vec(name(FIELDS), 0..4).prop_map(|g| format!("[{}]", g.join(", "))),
        1 => name(FIELDS),
    ]
    .boxed()
}

/// One `[[goals]]` table: a coherent goal, each key sometimes missing or replaced by an odd value.
fn goal() -> BoxedStrategy<String> {
    let measure = (
        prop::sample::select(MEASURES),
        prop::option::weighted(0.1, name(METRICS)),
        prop::option::weighted(0.1, prop::option::of(name(FIELDS))),
    )
        .prop_map(|((metric, field), odd_metric, odd_field)| {
            let metric = odd_metric.unwrap_or_else(|| quoted(metric));
            let field = odd_field.unwrap_or_else(|| field.map(quoted));
            (metric, field)
        });
    let keys = (
        prop::option::weighted(0.95, name(&[ID, ID, ID, ID, ID, " ", "won"])),
        measure,
        prop::option::weighted(0.3, filter()),
        prop::option::weighted(0.5, group_by()),
        prop::option::weighted(0.95, window()),
        prop::option::weighted(0.95, number()),
        prop::option::weighted(0.2, name(&["at_least", "at_most", "up"])),
        prop::option::weighted(0.3, milestones()),
        prop::option::weighted(0.3, duration()),
        (filter(), filter(), prop::option::weighted(0.3, number())),
    );
    keys.prop_map(
        |(id, (metric, field), filt, group_by, window, target, dir, milestones, grace, ratio)| {
            let is_ratio = metric == "\"ratio\"";
            let mut lines = vec!["[[goals]]".to_string()];
            let mut key = |k: &str, v: Option<String>| {
                if let Some(v) = v {
                    lines.push(format!("{k} = {v}"));
                }
            };
            key("id", id);
            key("metric", Some(metric));
            key("field", field);
            key("filter", filt);
            key("group_by", group_by);
            key("window", window);
            key("target", target);
            key("direction", dir);
            key("milestones", milestones);
            key("grace", grace);
            if is_ratio {
                let (num, den, min) = ratio;
                key("numerator", Some(num));
                key("denominator", Some(den));
                key("min_denominator", min);
            }
            lines.join("\n")
        },
    )
    .boxed()
}

/// A valid goal of any shape: metric, filters, groups, window kind, direction, milestones.
fn clean_goal() -> BoxedStrategy<String> {
    let values = prop_oneof![
        prop::sample::select(&["deal_won", "East", "x"]).prop_map(quoted),
        Just("[\"a\", \"b\"]".to_string()),
    ];
    let filter = || {
        prop::collection::btree_map(
            prop::sample::select(&["event_type", "region", "attributes.segment"]),
            values.clone(),
            0..3,
        )
        .prop_map(|c| {
            let items: Vec<String> = c
                .iter()
                .map(|(f, v)| format!("{} = {v}", quoted(f)))
                .collect();
            format!("{{ {} }}", items.join(", "))
        })
    };
    let span = || {
        (
            1..100i64,
            prop::sample::select(&["ms", "s", "m", "h", "d", "w"]),
        )
    };
    let window = prop_oneof![
        span().prop_map(|(n, u)| format!("{{ tumbling = \"{n}{u}\" }}")),
        (span(), 1..20i64).prop_map(|((n, u), k)| {
            format!("{{ hopping = \"{}{u}\", every = \"{n}{u}\" }}", n * k)
        }),
        (
            prop::sample::select(&["day", "week", "month", "quarter", "year"]),
            prop::sample::select(&ZONES[..6]),
            prop::sample::select(&["monday", "sunday"]),
            1..=12i64,
        )
            .prop_map(|(unit, zone, day, month)| match unit {
                "week" => format!(
                    "{{ calendar = \"week\", timezone = \"{zone}\", week_start = \"{day}\" }}"
                ),
                "quarter" | "year" =>
                    format!("{{ calendar = \"{unit}\", fiscal_year_start_month = {month} }}"),
                _ => format!("{{ calendar = \"{unit}\", timezone = \"{zone}\" }}"),
            }),
    ];
    (
        prop::sample::select(MEASURES),
        filter(),
        (filter(), filter(), 0..10u32),
        prop::collection::btree_set(
            prop::sample::select(&["region", "rep_id", "team_id", "attributes.segment"]),
            0..4,
        ),
        window,
        prop::sample::select(&["400000", "1", "0.5", "\"12.75\"", "1e3"]),
        any::<bool>(),
        span(),
    )
        .prop_map(
            |(
                (metric, field),
                filter,
                (num, den, min),
                group_by,
                window,
                target,
                at_most,
                (g, u),
            )| {
                let mut lines = vec![
                    "[[goals]]".to_string(),
                    format!("id = \"{ID}\""),
                    format!("metric = \"{metric}\""),
                    format!("filter = {filter}"),
                    format!(
                        "group_by = [{}]",
                        group_by
                            .into_iter()
                            .map(quoted)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    format!("window = {window}"),
                    format!("target = {target}"),
                    format!("grace = \"{g}{u}\""),
                ];
                if let Some(field) = field {
                    lines.push(format!("field = \"{field}\""));
                }
                if metric == "ratio" {
                    lines.push(format!("numerator = {num}"));
                    lines.push(format!("denominator = {den}"));
                    lines.push(format!("min_denominator = {min}"));
                }
                lines.push(if at_most {
                    "direction = \"at_most\"".to_string()
                } else {
                    "milestones = [0.25, 0.5, 1.0, 1.5]".to_string()
                });
                lines.join("\n")
            },
        )
        .boxed()
}

/// A goal file: goals, sometimes a `[dedupe]` table and an unknown key.
fn goal_file() -> BoxedStrategy<String> {
    (
        prop::collection::vec(prop_oneof![2 => clean_goal(), 1 => goal()], 1..4),
        prop::option::weighted(0.2, duration()),
        prop::bool::weighted(0.05),
    )
        .prop_map(|(goals, horizon, unknown)| {
            let mut text = String::new();
            if unknown {
                text += "extra = 1\n";
            }
            if let Some(h) = horizon {
                text += &format!("[dedupe]\nhorizon = {h}\n");
            }
            for (i, goal) in goals.iter().enumerate() {
                text += &goal.replace(ID, &format!("g{i}"));
                text += "\n\n";
            }
            text
        })
        .boxed()
}

/// Tokens of TOML to insert.
const TOML_DICT: &[&[u8]] = &[
    b"[[goals]]\n",
    b"[goals]\n",
    b"[",
    b"]",
    b"{",
    b"}",
    b"\"",
    b"'''",
    b"\"\"\"",
    b"=",
    b".",
    b",",
    b"\n",
    b"#",
    b"\\u0000",
    b"\\UFFFFFFFF",
    "\u{feff}".as_bytes(),
    "\u{202e}".as_bytes(),
    b"\r",
    b"a.b.c.d.e.f.g.h = 1\n",
    b"1979-05-27T07:32:00.999999999-08:00",
    b"0x7fffffffffffffff",
    b"99999999999999999999",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
];

/// Events that goals of [`clean_goal`] can match and group, with times and values at the edges.
fn engine_event() -> impl Strategy<Value = SalesEvent> {
    let time = prop_oneof![
        4 => 1_767_225_600_000_000_000..1_767_312_000_000_000_000i64,
        1 => Just(i64::MIN),
        1 => Just(i64::MAX),
        1 => any::<i64>(),
    ];
    let value = prop::sample::select(&[
        "1",
        "-0",
        "0.0000000001",
        "999999999999999999.9999999999",
        "1e18",
        "79228162514264337593543950335",
        "abc",
        "",
    ]);
    let amount = (
        -999_999_999_999_999_999..=999_999_999_999_999_999i64,
        0..=10u32,
    )
        .prop_map(|(m, s)| Decimal::new(m, s));
    (
        prop::sample::select(&["e1", "e2", "e3", "e4"]),
        prop::sample::select(&["deal_won", "x"]),
        time,
        prop::sample::select(&["East", "West", ""]),
        prop::sample::select(&["acct-1", "acct-2"]),
        prop::option::of(amount),
        value,
    )
        .prop_map(|(id, ty, t, region, account, amount, value)| {
            let mut ev = SalesEvent {
                event_id: format!("{id}-{t}"),
                event_type: ty.to_string(),
                occurred_at: Timestamp::from_nanos(t),
                amount,
                ..SalesEvent::default()
            }
            .with(StringField::Region, region)
            .with(StringField::AccountId, account);
            ev.set_attribute("segment", region);
            ev.set_attribute("score", value);
            ev
        })
}

proptest! {
    #![proptest_config(config(256))]

    /// An accepted goal file runs: any events, at any time, fold and close without a panic, and
    /// every attainment event encodes.
    #[test]
    fn accepted_goal_files_run_on_any_events(
        text in goal_file(),
        events in prop::collection::vec(engine_event(), 0..30),
    ) {
        let Ok(goals) = parse(&text) else {
            return Ok(());
        };
        let mut pipeline = Pipeline::new(Arc::new(goals));
        let mut out = Vec::new();
        for ev in &events {
            pipeline.process(ev, &mut out);
        }
        pipeline.finish(&mut out);
        let mut bytes = Vec::new();
        for a in &out {
            json::encode_attainment(a, &mut bytes);
            proto::encode_attainment(a, &mut bytes);
        }
    }

    #[test]
    fn generated_goal_files_are_accepted_or_rejected_with_problems(text in goal_file()) {
        let _ = parse(&text);
    }

    #[test]
    fn mutated_goal_files_are_accepted_or_rejected(text in goal_file(), edits in mutations()) {
        let bytes = mutate(text.into_bytes(), &edits, TOML_DICT);
        let _ = parse(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn arbitrary_text_is_accepted_or_rejected(text in ".{0,200}") {
        let _ = parse(&text);
    }
}

/// A plain goal file parses: the checks in `parse` accept what users write.
#[test]
fn a_plain_goal_file_is_accepted() {
    let text = r#"
        [[goals]]
        id = "won"
        metric = "count"
        filter = { event_type = "deal_won" }
        group_by = ["region"]
        window = { calendar = "month", timezone = "America/New_York" }
        target = 40
        milestones = [0.5, 1.0]
    "#;
    assert!(parse(text).is_ok());
}

#[test]
fn deep_nesting_is_rejected_not_a_stack_overflow() {
    for depth in [1_000, 100_000] {
        for text in [
            format!("x = {}{}", "[".repeat(depth), "]".repeat(depth)),
            format!("x = {}1{}", "{ a = ".repeat(depth), " }".repeat(depth)),
            format!("{} = 1", vec!["a"; depth].join(".")),
            format!("[{}]", vec!["a"; depth].join(".")),
            format!(
                "[[goals]]\nid = \"g\"\nfilter = {}{}",
                "{ a = ".repeat(depth),
                " }".repeat(depth)
            ),
        ] {
            assert!(parse(&text).is_err());
        }
    }
}
