//! Goal-file parsing: TOML into validated [`GoalSet`], collecting every problem.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;

use rust_decimal::Decimal;
use toml::{Table, Value};

use super::{
    Direction, FieldRef, Filter, Goal, GoalFileError, GoalSet, Measure, Metric, Problem,
    DEFAULT_MAX_DISTINCT, DEFAULT_MAX_GROUPS, FIELD_NAMES_HELP, MAX_MAX_DISTINCT, MAX_MAX_GROUPS,
};
use crate::model::money::{decimal_from_config_float, parse_decimal};
use crate::model::Duration;
use crate::window::{WindowError, WindowSpec};

const TOP_KEYS: &[&str] = &["goals", "dedupe"];
const DEDUPE_KEYS: &[&str] = &["horizon"];
const GOAL_KEYS: &[&str] = &[
    "id",
    "description",
    "metric",
    "field",
    "filter",
    "numerator",
    "denominator",
    "min_denominator",
    "group_by",
    "window",
    "target",
    "direction",
    "milestones",
    "grace",
    "max_groups",
    "max_distinct",
];
const WINDOW_KEYS: &[&str] = &[
    "tumbling",
    "hopping",
    "every",
    "calendar",
    "timezone",
    "week_start",
    "fiscal_year_start_month",
];
/// Most milestones one goal may declare.
pub const MAX_MILESTONES: usize = 64;

struct Ctx {
    problems: Vec<Problem>,
    goal: String,
}

impl Ctx {
    fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            goal: self.goal.clone(),
            key: key.to_string(),
            message: message.into(),
        });
    }

    fn unknown_keys(&mut self, table: &Table, allowed: &[&str], prefix: &str) {
        for key in table.keys() {
            if !allowed.contains(&key.as_str()) {
                self.problem(
                    &format!("{prefix}{key}"),
                    format!("unknown key; allowed keys are: {}", allowed.join(", ")),
                );
            }
        }
    }

    fn string<'a>(&mut self, table: &'a Table, key: &str, prefix: &str) -> Option<&'a str> {
        match table.get(key)? {
            Value::String(s) => Some(s.as_str()),
            other => {
                self.problem(
                    &format!("{prefix}{key}"),
                    format!("expected a string, found {}", type_name(other)),
                );
                None
            }
        }
    }

    fn duration(&mut self, table: &Table, key: &str, prefix: &str) -> Option<Duration> {
        let text = self.string(table, key, prefix)?;
        match Duration::from_str(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.problem(&format!("{prefix}{key}"), e.to_string());
                None
            }
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

fn number(v: &Value) -> Result<Decimal, String> {
    match v {
        Value::Integer(i) => Ok(Decimal::from(*i)),
        Value::Float(f) => decimal_from_config_float(*f).map_err(|e| e.to_string()),
        Value::String(s) => parse_decimal(s).map_err(|e| e.to_string()),
        other => Err(format!("expected a number, found {}", type_name(other))),
    }
}

pub(super) fn parse_goal_file(text: &str) -> Result<GoalSet, GoalFileError> {
    let root: Table = text
        .parse::<Table>()
        .map_err(|e| GoalFileError::Toml(e.to_string().trim_end().to_string()))?;
    let mut cx = Ctx {
        problems: Vec::new(),
        goal: String::new(),
    };
    cx.unknown_keys(&root, TOP_KEYS, "");

    let mut dedupe_horizon = Duration::from_secs(7 * 86_400);
    match root.get("dedupe") {
        None => {}
        Some(Value::Table(t)) => {
            cx.unknown_keys(t, DEDUPE_KEYS, "dedupe.");
            if let Some(d) = cx.duration(t, "horizon", "dedupe.") {
                dedupe_horizon = d;
            }
        }
        Some(other) => cx.problem(
            "dedupe",
            format!(
                "expected a table such as [dedupe] horizon = \"7d\", found {}",
                type_name(other)
            ),
        ),
    }

    let mut goals = Vec::new();
    match root.get("goals") {
        None => cx.problem("goals", "no goals: declare at least one [[goals]] table"),
        Some(Value::Array(items)) if items.is_empty() => {
            cx.problem("goals", "no goals: declare at least one [[goals]] table")
        }
        Some(Value::Array(items)) => {
            let mut seen = HashSet::new();
            for (i, item) in items.iter().enumerate() {
                cx.goal = format!("goals[{i}]");
                let Value::Table(t) = item else {
                    cx.problem("", format!("expected a table, found {}", type_name(item)));
                    continue;
                };
                if let Some(Value::String(id)) = t.get("id") {
                    if !id.trim().is_empty() {
                        cx.goal = id.clone();
                        if !seen.insert(id.clone()) {
                            cx.problem(
                                "id",
                                format!("duplicate goal id `{id}`: ids must be unique"),
                            );
                        }
                    }
                }
                if let Some(goal) = parse_goal(&mut cx, t) {
                    goals.push(goal);
                }
            }
        }
        Some(other) => cx.problem(
            "goals",
            format!(
                "expected an array of tables ([[goals]]), found {}",
                type_name(other)
            ),
        ),
    }

    if cx.problems.is_empty() {
        Ok(GoalSet {
            goals,
            dedupe_horizon,
        })
    } else {
        Err(GoalFileError::Invalid(cx.problems))
    }
}

fn parse_goal(cx: &mut Ctx, t: &Table) -> Option<Goal> {
    let before = cx.problems.len();
    cx.unknown_keys(t, GOAL_KEYS, "");

    let id = match t.get("id") {
        None => {
            cx.problem("id", "missing: every goal needs a unique, non-empty id");
            None
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            cx.problem("id", "empty: every goal needs a unique, non-empty id");
            None
        }
        Some(_) => cx.string(t, "id", ""),
    };
    let description = cx.string(t, "description", "").map(str::to_string);

    let metric = match t.get("metric") {
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
    };

    let field = cx.string(t, "field", "").and_then(|name| {
        let parsed = FieldRef::parse(name);
        if parsed.is_none() {
            cx.problem(
                "field",
                format!("`{name}` is not a field; allowed: {FIELD_NAMES_HELP}"),
            );
        }
        parsed
    });
    let filter = parse_filter(cx, t, "filter");

    let measure = metric
        .and_then(|metric| build_measure(cx, t, metric, field, t.contains_key("field"), filter));

    let (group_by, group_by_names) = parse_group_by(cx, t);
    let window = parse_window(cx, t);

    let target = match t.get("target") {
        None => {
            cx.problem(
                "target",
                "missing: give the target value as a number, e.g. target = 400000",
            );
            None
        }
        Some(v) => match number(v) {
            Ok(d) if d.is_sign_negative() && !d.is_zero() => {
                cx.problem(
                    "target",
                    format!("{d} is negative: the target must be >= 0"),
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                cx.problem("target", e);
                None
            }
        },
    };

    let direction = match cx.string(t, "direction", "") {
        None => Direction::AtLeast,
        Some("at_least") => Direction::AtLeast,
        Some("at_most") => Direction::AtMost,
        Some(other) => {
            cx.problem(
                "direction",
                format!("`{other}` is not a direction; allowed: at_least (default), at_most"),
            );
            Direction::AtLeast
        }
    };

    if direction == Direction::AtLeast {
        if let Some(d) = target {
            if d.is_zero() {
                cx.problem(
                    "target",
                    "0 is not allowed for an at_least goal: the target must be > 0",
                );
            }
        }
    }

    let milestones = parse_milestones(cx, t, direction);
    let grace = if t.contains_key("grace") {
        cx.duration(t, "grace", "")
    } else {
        Some(Duration::ZERO)
    };

    let max_groups = parse_cap(cx, t, "max_groups", DEFAULT_MAX_GROUPS, MAX_MAX_GROUPS);
    if let Some(m) = metric.filter(|m| *m != Metric::CountDistinct) {
        if t.contains_key("max_distinct") {
            cx.problem(
                "max_distinct",
                format!("only allowed with metric = \"count_distinct\", not `{m}`"),
            );
        }
    }
    let max_distinct = parse_cap(
        cx,
        t,
        "max_distinct",
        DEFAULT_MAX_DISTINCT,
        MAX_MAX_DISTINCT,
    );

    let thresholds: Option<Vec<Decimal>> =
        target.and_then(|target| milestones.iter().map(|m| m.checked_mul(target)).collect());
    if target.is_some() && thresholds.is_none() {
        cx.problem(
            "target",
            "target x milestone exceeds the decimal range (about 7.9e28): use a smaller target",
        );
    }
    if cx.problems.len() > before {
        return None;
    }
    let target = target?;
    let thresholds = thresholds?;
    Some(Goal {
        id: Arc::from(id?),
        description,
        measure: measure?,
        group_by,
        group_by_names,
        window: window?,
        target,
        direction,
        milestones,
        thresholds,
        grace: grace?,
        max_groups: max_groups?,
        max_distinct: max_distinct?,
    })
}

/// An optional integer cap in 1..=`max`, `default` when absent.
fn parse_cap(cx: &mut Ctx, t: &Table, key: &str, default: usize, max: usize) -> Option<usize> {
    match t.get(key) {
        None => Some(default),
        Some(Value::Integer(n)) if *n >= 1 && *n as u64 <= max as u64 => Some(*n as usize),
        Some(other) => {
            cx.problem(
                key,
                format!(
                    "expected an integer from 1 to {max} (default {default}), found {}",
                    value_text(other)
                ),
            );
            None
        }
    }
}

fn metric_help(what: &str) -> String {
    format!(
        "{what}; allowed metrics: {}",
        Metric::ALL.map(Metric::as_str).join(", ")
    )
}

fn build_measure(
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
        Metric::Ratio => {
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

fn value_text(v: &Value) -> String {
    match v {
        Value::Integer(i) => i.to_string(),
        other => type_name(other).to_string(),
    }
}

fn required_filter(cx: &mut Ctx, t: &Table, key: &str) -> Option<Filter> {
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
fn parse_filter(cx: &mut Ctx, t: &Table, key: &str) -> Option<Filter> {
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
        let field = match FieldRef::parse(name) {
            Some(f) if f.is_text() => f,
            Some(_) => {
                cx.problem(
                    &path,
                    "`amount` cannot be filtered on; filter on text fields or attributes.KEY",
                );
                ok = false;
                continue;
            }
            None => {
                cx.problem(
                    &path,
                    format!("`{name}` is not a field; allowed: {FIELD_NAMES_HELP}"),
                );
                ok = false;
                continue;
            }
        };
        let values = match value {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) if !items.is_empty() => {
                let mut vs = Vec::new();
                for item in items {
                    match item {
                        Value::String(s) => vs.push(s.clone()),
                        other => {
                            cx.problem(
                                &path,
                                format!("list items must be strings, found {}", type_name(other)),
                            );
                            ok = false;
                        }
                    }
                }
                vs
            }
            Value::Array(_) => {
                cx.problem(&path, "empty list: give at least one value");
                ok = false;
                continue;
            }
            other => {
                cx.problem(
                    &path,
                    format!(
                        "expected a string or a list of strings, found {}",
                        type_name(other)
                    ),
                );
                ok = false;
                continue;
            }
        };
        clauses.push((field, values));
    }
    ok.then(|| Filter::new(clauses))
}

fn parse_group_by(cx: &mut Ctx, t: &Table) -> (Vec<FieldRef>, Vec<Arc<str>>) {
    let mut fields = Vec::new();
    let mut names = Vec::new();
    match t.get("group_by") {
        None => {}
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::String(name) => match FieldRef::parse(name) {
                        Some(f) if f.is_text() => {
                            if names.iter().any(|n: &Arc<str>| &**n == name) {
                                cx.problem("group_by", format!("`{name}` is listed twice"));
                            }
                            fields.push(f);
                            names.push(Arc::from(name.as_str()));
                        }
                        Some(_) => cx.problem(
                            "group_by",
                            "`amount` cannot be grouped by; group by text fields or attributes.KEY",
                        ),
                        None => cx.problem(
                            "group_by",
                            format!("`{name}` is not a field; allowed: {FIELD_NAMES_HELP}"),
                        ),
                    },
                    other => cx.problem(
                        "group_by",
                        format!("list items must be strings, found {}", type_name(other)),
                    ),
                }
            }
        }
        Some(other) => cx.problem(
            "group_by",
            format!(
                "expected a list of field names, e.g. [\"region\"], found {}",
                type_name(other)
            ),
        ),
    }
    (fields, names)
}

fn parse_window(cx: &mut Ctx, t: &Table) -> Option<WindowSpec> {
    let w = match t.get("window") {
        None => {
            cx.problem(
                "window",
                "missing: give { tumbling = \"7d\" }, { hopping = \"30d\", every = \"1d\" } or { calendar = \"month\", timezone = \"UTC\" }",
            );
            return None;
        }
        Some(Value::Table(w)) => w,
        Some(other) => {
            cx.problem(
                "window",
                format!("expected a table, found {}", type_name(other)),
            );
            return None;
        }
    };
    cx.unknown_keys(w, WINDOW_KEYS, "window.");
    let kinds: Vec<&str> = ["tumbling", "hopping", "calendar"]
        .into_iter()
        .filter(|k| w.contains_key(*k))
        .collect();
    if kinds.len() != 1 {
        cx.problem(
            "window",
            format!(
                "give exactly one of tumbling, hopping or calendar (found {})",
                if kinds.is_empty() {
                    "none".to_string()
                } else {
                    kinds.join(", ")
                }
            ),
        );
        return None;
    }
    let only = |cx: &mut Ctx, allowed: &[&str], kind: &str| {
        for key in ["every", "timezone", "week_start", "fiscal_year_start_month"] {
            if w.contains_key(key) && !allowed.contains(&key) {
                cx.problem(
                    &format!("window.{key}"),
                    format!("not used by {kind} windows"),
                );
            }
        }
    };
    let spec = match kinds[0] {
        "tumbling" => {
            only(cx, &[], "tumbling");
            let size = cx.duration(w, "tumbling", "window.")?;
            WindowSpec::tumbling(size)
        }
        "hopping" => {
            only(cx, &["every"], "hopping");
            let size = cx.duration(w, "hopping", "window.")?;
            if !w.contains_key("every") {
                cx.problem(
                    "window.every",
                    "missing: hopping windows need `every`, e.g. every = \"1d\"",
                );
                return None;
            }
            let every = cx.duration(w, "every", "window.")?;
            WindowSpec::hopping(size, every)
        }
        _ => {
            let unit = cx.string(w, "calendar", "window.")?;
            match unit {
                "week" => only(cx, &["timezone", "week_start"], "calendar week"),
                "quarter" | "year" => only(
                    cx,
                    &["timezone", "fiscal_year_start_month"],
                    "calendar quarter and year",
                ),
                _ => only(cx, &["timezone"], &format!("calendar `{unit}`")),
            }
            let tz = cx.string(w, "timezone", "window.");
            let week_start = cx.string(w, "week_start", "window.");
            let fsm = match w.get("fiscal_year_start_month") {
                None => None,
                Some(Value::Integer(n)) => Some(*n),
                Some(other) => {
                    cx.problem(
                        "window.fiscal_year_start_month",
                        format!(
                            "expected an integer month 1..12, found {}",
                            type_name(other)
                        ),
                    );
                    return None;
                }
            };
            WindowSpec::calendar(unit, tz, week_start, fsm)
        }
    };
    match spec {
        Ok(spec) => Some(spec),
        Err(e) => {
            let key = match &e {
                WindowError::ZeroSize | WindowError::NegativeSize(_) => {
                    if w.contains_key("hopping") {
                        "window.hopping"
                    } else {
                        "window.tumbling"
                    }
                }
                WindowError::ZeroEvery
                | WindowError::NegativeEvery(_)
                | WindowError::EveryTooLarge { .. }
                | WindowError::TooManyHops { .. } => "window.every",
                WindowError::UnknownTimezone(_) => "window.timezone",
                WindowError::UnknownWeekday(_) => "window.week_start",
                WindowError::FiscalMonth(_) => "window.fiscal_year_start_month",
                WindowError::UnknownUnit(_) => "window.calendar",
            };
            cx.problem(key, e.to_string());
            None
        }
    }
}

fn parse_milestones(cx: &mut Ctx, t: &Table, direction: Direction) -> Vec<Decimal> {
    let Some(v) = t.get("milestones") else {
        return match direction {
            Direction::AtLeast => vec![Decimal::ONE],
            Direction::AtMost => Vec::new(),
        };
    };
    if direction == Direction::AtMost {
        cx.problem(
            "milestones",
            "not allowed on an at_most goal: it reports `breached` when the value goes above the target",
        );
        return Vec::new();
    }
    let Value::Array(items) = v else {
        cx.problem(
            "milestones",
            format!(
                "expected a list of fractions of the target, e.g. [0.5, 1.0], found {}",
                type_name(v)
            ),
        );
        return Vec::new();
    };
    if items.is_empty() || items.len() > MAX_MILESTONES {
        cx.problem(
            "milestones",
            format!("give between 1 and {MAX_MILESTONES} fractions of the target, e.g. [0.5, 1.0]"),
        );
        return Vec::new();
    }
    let mut out: Vec<Decimal> = Vec::new();
    for item in items {
        match number(item) {
            Ok(m) if m > Decimal::ZERO => {
                if let Some(prev) = out.last() {
                    if m <= *prev {
                        cx.problem(
                            "milestones",
                            format!("{m} after {prev}: milestones must be strictly ascending"),
                        );
                    }
                }
                out.push(m.normalize());
            }
            Ok(m) => cx.problem(
                "milestones",
                format!("{m} is not allowed: each milestone must be > 0"),
            ),
            Err(e) => cx.problem("milestones", e),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
