//! What a goal measures: its metric, field, and the ratio's filters.

use toml::{Table, Value};

use super::ctx::{value_text, Ctx};
use super::filter::required_filter;
use crate::goals::{FieldRef, Filter, Measure, Metric, FIELD_NAMES_HELP};

pub(super) fn parse_metric(cx: &mut Ctx, t: &Table) -> Option<Metric> {
    match t.get("metric") {
        None => {
            cx.problem("metric", metric_help("missing"));
            None
        }
        Some(_) => cx.string(t, "metric", "").and_then(|m| {
            let parsed = Metric::from_name(m);
            if parsed.is_none() {
                cx.problem("metric", metric_help(&format!("`{m}` is not a metric")));
            }
            parsed
        }),
    }
}

pub(super) fn parse_field(cx: &mut Ctx, t: &Table) -> Option<FieldRef> {
    cx.string(t, "field", "").and_then(|name| {
        let parsed = FieldRef::parse(name);
        if parsed.is_none() {
            cx.problem(
                "field",
                format!("`{name}` is not a field; allowed: {FIELD_NAMES_HELP}"),
            );
        }
        parsed
    })
}

fn metric_help(what: &str) -> String {
    format!(
        "{what}; allowed metrics: {}",
        Metric::ALL.map(Metric::as_str).join(", ")
    )
}

/// Combines the metric with its field and filters, checking that they go together.
pub(super) fn build_measure(
    cx: &mut Ctx,
    t: &Table,
    metric: Metric,
    field: Option<FieldRef>,
    field_given: bool,
    filter: Option<Filter>,
) -> Option<Measure> {
    if metric != Metric::Ratio {
        for key in ["numerator", "denominator", "min_denominator"] {
            if t.contains_key(key) {
                cx.problem(
                    key,
                    format!("only allowed with metric = \"ratio\", not `{metric}`"),
                );
            }
        }
    }
    match metric {
        Metric::Count | Metric::Ratio if field_given => {
            cx.problem(
                "field",
                format!("metric `{metric}` counts events and reads no field; remove `field`"),
            );
            None
        }
        Metric::Count => Some(Measure::Simple {
            metric,
            field: None,
            filter: filter?,
        }),
        Metric::Ratio => build_ratio(cx, t, filter),
        _ if !field_given => {
            cx.problem(
                "field",
                format!(
                    "missing: metric `{metric}` needs a field, e.g. field = \"amount\" or \"attributes.KEY\""
                ),
            );
            None
        }
        _ => {
            let field = field?;
            if metric.is_numeric() && !matches!(field, FieldRef::Amount | FieldRef::Attribute(_)) {
                cx.problem(
                    "field",
                    format!(
                        "`{field}` is text: metric `{metric}` needs a numeric field, `amount` or `attributes.KEY` (whose values parse as decimals)"
                    ),
                );
                return None;
            }
            Some(Measure::Simple {
                metric,
                field: Some(field),
                filter: filter?,
            })
        }
    }
}

fn build_ratio(cx: &mut Ctx, t: &Table, filter: Option<Filter>) -> Option<Measure> {
    let numerator = required_filter(cx, t, "numerator");
    let denominator = required_filter(cx, t, "denominator");
    let min_denominator = match t.get("min_denominator") {
        None => Some(0),
        Some(Value::Integer(n)) if *n >= 0 => Some(*n as u64),
        Some(other) => {
            cx.problem(
                "min_denominator",
                format!(
                    "expected a non-negative integer, found {}",
                    value_text(other)
                ),
            );
            None
        }
    };
    Some(Measure::Ratio {
        numerator: numerator?,
        denominator: denominator?,
        min_denominator: min_denominator?,
        filter: filter?,
    })
}
