//! The top-level `[rosters.NAME]` tables, and the check that their `columns` name group_by
//! entries of the goals listing them.

use std::sync::Arc;

use toml::{Table, Value};

use super::ctx::{type_name, Ctx};
use crate::goals::{RosterDecl, RosterFormat};

const ROSTER_KEYS: &[&str] = &["file", "format", "topic", "columns", "strict"];
/// Longest Kafka topic name.
const MAX_TOPIC_LEN: usize = 249;

/// The `[rosters.*]` tables in name order; those with problems are left out.
pub(super) fn parse_rosters(cx: &mut Ctx, root: &Table) -> Vec<RosterDecl> {
    let tables = match root.get("rosters") {
        None => return Vec::new(),
        Some(Value::Table(tables)) => tables,
        Some(other) => {
            cx.problem(
                "rosters",
                format!(
                    "expected tables such as [rosters.reps] file = \"reps.csv\", found {}",
                    type_name(other)
                ),
            );
            return Vec::new();
        }
    };
    let mut names: Vec<&String> = tables.keys().collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        if name.trim().is_empty() {
            cx.problem(
                "rosters",
                format!("`{name}` is not a roster name: give each roster a non-empty name"),
            );
            continue;
        }
        if let Some(decl) = parse_roster(cx, name, &tables[name]) {
            out.push(decl);
        }
    }
    out
}

/// The names of all `[rosters.*]` tables, in name order, whether or not they parsed: goals are
/// checked against these, so a roster with a problem is not also reported as undeclared.
pub(super) fn roster_names(root: &Table) -> Vec<Arc<str>> {
    let Some(Value::Table(tables)) = root.get("rosters") else {
        return Vec::new();
    };
    let mut names: Vec<Arc<str>> = tables.keys().map(|k| Arc::from(k.as_str())).collect();
    names.sort();
    names
}

/// One `[rosters.NAME]` table; `None` after a problem.
fn parse_roster(cx: &mut Ctx, name: &str, value: &Value) -> Option<RosterDecl> {
    let prefix = format!("rosters.{name}.");
    let Value::Table(t) = value else {
        cx.problem(
            &format!("rosters.{name}"),
            format!(
                "expected a table such as [rosters.{name}] file = \"{name}.csv\", found {}",
                type_name(value)
            ),
        );
        return None;
    };
    let before = cx.problems.len();
    cx.unknown_keys(t, ROSTER_KEYS, &prefix);
    let file = parse_file(cx, t, &prefix);
    let topic = parse_topic(cx, t, &prefix);
    let columns = parse_columns(cx, t, &prefix);
    let strict = match t.get("strict") {
        None => false,
        Some(Value::Boolean(b)) => *b,
        Some(other) => {
            cx.problem(
                &format!("{prefix}strict"),
                format!(
                    "expected true or false (default false), found {}",
                    type_name(other)
                ),
            );
            false
        }
    };
    if !t.contains_key("file") && !t.contains_key("topic") {
        cx.problem(
            &format!("rosters.{name}"),
            "give `file` (a CSV or JSON lines file of members), `topic` (a compacted Kafka topic of members) or both",
        );
    }
    if cx.problems.len() > before {
        return None;
    }
    Some(RosterDecl {
        name: Arc::from(name),
        file,
        topic,
        columns,
        strict,
    })
}

/// `file` and its `format` (given, or from the file's extension).
fn parse_file(cx: &mut Ctx, t: &Table, prefix: &str) -> Option<(String, RosterFormat)> {
    let format = cx.string(t, "format", prefix);
    let given = match format {
        None => None,
        Some("csv") => Some(RosterFormat::Csv),
        Some("jsonl") => Some(RosterFormat::JsonLines),
        Some(other) => {
            cx.problem(
                &format!("{prefix}format"),
                format!("`{other}` is not a roster format; allowed: csv, jsonl"),
            );
            return None;
        }
    };
    let Some(file) = cx.string(t, "file", prefix) else {
        if given.is_some() {
            cx.problem(
                &format!("{prefix}format"),
                "only allowed with `file`: it is the format of the member file",
            );
        }
        return None;
    };
    if file.trim().is_empty() {
        cx.problem(
            &format!("{prefix}file"),
            "empty: give the path of the member file, relative to the goal file",
        );
        return None;
    }
    let format = given.or_else(|| format_of(file));
    if format.is_none() {
        cx.problem(
            &format!("{prefix}file"),
            format!(
                "cannot tell the format of `{file}` from its extension (.csv, .jsonl or .ndjson): give format = \"csv\" or \"jsonl\""
            ),
        );
    }
    Some((file.to_string(), format?))
}

/// The roster format a file's extension names.
fn format_of(file: &str) -> Option<RosterFormat> {
    let extension = std::path::Path::new(file).extension()?.to_str()?;
    match extension.to_ascii_lowercase().as_str() {
        "csv" => Some(RosterFormat::Csv),
        "jsonl" | "ndjson" => Some(RosterFormat::JsonLines),
        _ => None,
    }
}

/// `topic`, a valid Kafka topic name.
fn parse_topic(cx: &mut Ctx, t: &Table, prefix: &str) -> Option<String> {
    let topic = cx.string(t, "topic", prefix)?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    let valid = (1..=MAX_TOPIC_LEN).contains(&topic.len())
        && topic.chars().all(allowed)
        && topic != "."
        && topic != "..";
    if !valid {
        cx.problem(
            &format!("{prefix}topic"),
            format!(
                "`{topic}` is not a Kafka topic name: use 1 to {MAX_TOPIC_LEN} characters from A-Z, a-z, 0-9, `.`, `_` and `-` (not `.` or `..` alone)"
            ),
        );
        return None;
    }
    Some(topic.to_string())
}

/// `columns`: a table of group_by field -> column name.
fn parse_columns(cx: &mut Ctx, t: &Table, prefix: &str) -> Vec<(String, String)> {
    let columns = match t.get("columns") {
        None => return Vec::new(),
        Some(Value::Table(c)) => c,
        Some(other) => {
            cx.problem(
                &format!("{prefix}columns"),
                format!(
                    "expected a table of group_by field = column name, e.g. {{ rep_id = \"sales_agent\" }}, found {}",
                    type_name(other)
                ),
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (field, column) in columns {
        match column {
            Value::String(c) if !c.is_empty() => out.push((field.clone(), c.clone())),
            Value::String(_) => cx.problem(
                &format!("{prefix}columns.{field}"),
                "empty: give the name of the column holding this group_by field",
            ),
            other => cx.problem(
                &format!("{prefix}columns.{field}"),
                format!(
                    "expected a column name (a string), found {}",
                    type_name(other)
                ),
            ),
        }
    }
    out
}

/// Reports each `columns` key of a roster that is not a `group_by` entry of any goal listing the
/// roster. Reads the goals' tables as written, so goals with other problems still count.
pub(super) fn check_columns(cx: &mut Ctx, rosters: &[RosterDecl], goals: &[Value]) {
    for decl in rosters {
        let mut group_by: Vec<&str> = Vec::new();
        for goal in goals.iter().filter_map(Value::as_table) {
            if goal.get("roster").and_then(Value::as_str) != Some(&decl.name) {
                continue;
            }
            let entries = goal.get("group_by").and_then(Value::as_array);
            group_by.extend(entries.into_iter().flatten().filter_map(Value::as_str));
        }
        group_by.sort_unstable();
        group_by.dedup();
        let listed = if group_by.is_empty() {
            "no goal with a group_by lists this roster".to_string()
        } else {
            format!("group_by entries of its goals: {}", group_by.join(", "))
        };
        for (field, _) in &decl.columns {
            if !group_by.contains(&field.as_str()) {
                cx.problem(
                    &format!("rosters.{}.columns.{field}", decl.name),
                    format!(
                        "`{field}` is not a group_by entry of any goal with roster = \"{}\" ({listed})",
                        decl.name
                    ),
                );
            }
        }
    }
}
