//! Filter tables: `{ field = "value" }` or `{ field = ["value", ...] }` over text fields.

use toml::{Table, Value};

use super::ctx::{type_name, Ctx};
use crate::goals::{FieldRef, Filter, FIELD_NAMES_HELP};

/// A filter table that must be present (a ratio's numerator and denominator).
pub(super) fn required_filter(cx: &mut Ctx, t: &Table, key: &str) -> Option<Filter> {
    if !t.contains_key(key) {
        cx.problem(
            key,
            format!("missing: a ratio goal needs `{key}`, a filter table such as {{ event_type = \"deal_won\" }}"),
        );
        return None;
    }
    parse_filter(cx, t, key)
}

/// Parses an optional filter table; `Some(empty)` when absent, `None` after a problem.
pub(super) fn parse_filter(cx: &mut Ctx, t: &Table, key: &str) -> Option<Filter> {
    let table = match t.get(key) {
        None => return Some(Filter::default()),
        Some(Value::Table(table)) => table,
        Some(other) => {
            cx.problem(
                key,
                format!(
                    "expected a table of field = value or [values], e.g. {{ event_type = \"deal_won\" }}, found {}",
                    type_name(other)
                ),
            );
            return None;
        }
    };
    let mut ok = true;
    let mut clauses = Vec::new();
    for (name, value) in table {
        let path = format!("{key}.{name}");
        let Some(field) = filter_field(cx, &path, name) else {
            ok = false;
            continue;
        };
        let Some(values) = filter_values(cx, &path, value) else {
            ok = false;
            continue;
        };
        clauses.push((field, values));
    }
    ok.then(|| Filter::new(clauses))
}

/// The text field a clause filters on.
fn filter_field(cx: &mut Ctx, path: &str, name: &str) -> Option<FieldRef> {
    match FieldRef::parse(name) {
        Some(f) if f.is_text() => Some(f),
        Some(_) => {
            cx.problem(
                path,
                "`amount` cannot be filtered on; filter on text fields or attributes.KEY",
            );
            None
        }
        None => {
            cx.problem(
                path,
                format!("`{name}` is not a field; allowed: {FIELD_NAMES_HELP}"),
            );
            None
        }
    }
}

/// The values a clause accepts: one string or a non-empty list of strings. Every item that is
/// not a string is reported.
fn filter_values(cx: &mut Ctx, path: &str, value: &Value) -> Option<Vec<String>> {
    match value {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => {
            let mut ok = true;
            let mut values = Vec::new();
            for item in items {
                match item {
                    Value::String(s) => values.push(s.clone()),
                    other => {
                        cx.problem(
                            path,
                            format!("list items must be strings, found {}", type_name(other)),
                        );
                        ok = false;
                    }
                }
            }
            ok.then_some(values)
        }
        Value::Array(_) => {
            cx.problem(path, "empty list: give at least one value");
            None
        }
        other => {
            cx.problem(
                path,
                format!(
                    "expected a string or a list of strings, found {}",
                    type_name(other)
                ),
            );
            None
        }
    }
}
