//! The Grafana dashboard: exactly the exported metrics, with their labels.

use std::collections::BTreeSet;

use goalpost::serve::metrics;

use crate::repo::*;
use crate::DASHBOARD;

/// Every `goalpost_[a-z_]+` in a text.
fn metric_names(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("goalpost_") {
        let start = from + i;
        let end = text[start + "goalpost_".len()..]
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .map_or(text.len(), |e| start + "goalpost_".len() + e);
        out.push((start, text[start..end].to_string()));
        from = end;
    }
    out
}

/// A series name mapped to its metric in `NAMES` (a histogram's `_bucket`, `_sum`, `_count`).
fn metric_of(series: &str) -> Option<&'static str> {
    if let Some(n) = metrics::NAMES.iter().find(|n| **n == series) {
        return Some(n);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = series.strip_suffix(suffix)?;
        metrics::NAMES
            .iter()
            .copied()
            .find(|n| *n == base && *n == metrics::TXN_DURATION)
    })
}

/// The labels a metric carries besides the scrape target's (see src/serve/metrics.rs).
fn metric_labels(metric: &str) -> &'static [&'static str] {
    match metric {
        metrics::EVENTS_REJECTED => &["reason"],
        metrics::EVENTS_LATE
        | metrics::EVENTS_OVERFLOW
        | metrics::EVENTS_UNLISTED
        | metrics::EVENTS_OFF_ROSTER
        | metrics::GROUPS_AT_RISK => &["goal"],
        metrics::CONSUMER_LAG => &["topic", "partition"],
        metrics::ATTAINMENTS => &["kind", "goal"],
        metrics::GOAL_PROGRESS => &["goal", "group"],
        metrics::ASSIGNED_PARTITIONS => &["kind"],
        metrics::TXN_DURATION => &["le"],
        metrics::NOTIFY_DELIVERIES
        | metrics::NOTIFY_RETRIES
        | metrics::NOTIFY_FAILURES
        | metrics::NOTIFY_DEAD_LETTERS
        | metrics::NOTIFY_DELIVERY_LAG => &["sink"],
        _ => &[],
    }
}

/// Labels of the scrape target, present on every series.
const TARGET_LABELS: &[&str] = &["instance", "job"];

/// The labels of every `by (...)` clause of an expression.
fn by_labels(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("by (") {
        rest = &rest[i + 4..];
        let end = rest.find(')').unwrap_or(rest.len());
        out.extend(
            rest[..end]
                .split(',')
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty()),
        );
        rest = &rest[end..];
    }
    out
}

/// Every panel, rows' nested panels included.
fn all_panels(v: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut out = Vec::new();
    for p in v
        .get("panels")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
    {
        out.push(p);
        out.extend(all_panels(p));
    }
    out
}

pub(crate) fn check_dashboard(repo: &Repo) -> R<()> {
    let text = repo.text(DASHBOARD)?;
    let dash: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{DASHBOARD}: not JSON: {e}"))?;
    let schema = dash
        .get("schemaVersion")
        .and_then(|s| s.as_u64())
        .unwrap_or(0);
    ensure(schema >= 36, || {
        format!("{DASHBOARD}: schemaVersion {schema} < 36")
    })?;

    // A Prometheus data source variable, used by every panel.
    let vars = dash
        .pointer("/templating/list")
        .and_then(|l| l.as_array())
        .ok_or_else(|| format!("{DASHBOARD}: no templating"))?;
    let ds_var = vars
        .iter()
        .find(|v| v.get("type").and_then(|t| t.as_str()) == Some("datasource"))
        .ok_or_else(|| format!("{DASHBOARD}: no data source variable"))?;
    ensure(
        ds_var.get("query").and_then(|q| q.as_str()) == Some("prometheus"),
        || format!("{DASHBOARD}: the data source variable is not of Prometheus data sources"),
    )?;
    let ds_ref = format!(
        "${{{}}}",
        ds_var
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or_default()
    );

    let mut used = BTreeSet::new();
    let mut exprs = 0;
    for panel in all_panels(&dash) {
        let title = panel
            .get("title")
            .and_then(|t| t.as_str())
            .unwrap_or("?")
            .to_string();
        let targets = panel.get("targets").and_then(|t| t.as_array());
        let Some(targets) = targets else {
            continue;
        };
        let uid = panel
            .pointer("/datasource/uid")
            .and_then(|u| u.as_str())
            .unwrap_or_default();
        ensure(uid == ds_ref, || {
            format!("{DASHBOARD}: panel `{title}` uses data source `{uid}`, not {ds_ref}")
        })?;
        for t in targets {
            let Some(expr) = t.get("expr").and_then(|e| e.as_str()) else {
                continue;
            };
            exprs += 1;
            let mut allowed: BTreeSet<&str> = TARGET_LABELS.iter().copied().collect();
            let names = metric_names(expr);
            ensure(!names.is_empty(), || {
                format!("{DASHBOARD}: panel `{title}`: `{expr}` uses no goalpost metric")
            })?;
            for (_, series) in &names {
                let m = metric_of(series).ok_or_else(|| {
                    format!("{DASHBOARD}: panel `{title}` uses `{series}`, not a metric of goalpost::serve::metrics::NAMES")
                })?;
                used.insert(m);
                allowed.extend(metric_labels(m));
            }
            // rate() and increase() only over counters and histogram series.
            for f in ["rate(", "increase("] {
                for (i, _) in expr.match_indices(f) {
                    let next = metric_names(&expr[i..])
                        .into_iter()
                        .next()
                        .map(|(_, n)| n)
                        .unwrap_or_default();
                    let counter = next.ends_with("_total")
                        || ["_bucket", "_sum", "_count"]
                            .iter()
                            .any(|s| next.ends_with(s));
                    ensure(counter, || {
                        format!("{DASHBOARD}: panel `{title}`: {f}) over `{next}`, which is not a counter")
                    })?;
                }
            }
            let by = by_labels(expr);
            for l in &by {
                ensure(allowed.contains(l.as_str()), || {
                    format!("{DASHBOARD}: panel `{title}`: `by ({l})` is not a label of its metrics ({allowed:?})")
                })?;
            }
            let legend = t
                .get("legendFormat")
                .and_then(|l| l.as_str())
                .unwrap_or_default();
            for part in legend.split("{{").skip(1) {
                let l = part.split("}}").next().unwrap_or_default().trim();
                let ok = if by.is_empty() {
                    allowed.contains(l)
                } else {
                    by.iter().any(|b| b == l)
                };
                ensure(ok, || {
                    format!("{DASHBOARD}: panel `{title}`: legend label `{l}` is not in the result")
                })?;
            }
        }
    }
    ensure(exprs > 0, || format!("{DASHBOARD}: no panel queries"))?;
    ensure(
        used.contains(metrics::TXN_DURATION)
            && text.contains("histogram_quantile(")
            && text.contains(&format!("{}_bucket", metrics::TXN_DURATION)),
        || {
            format!(
                "{DASHBOARD}: no histogram_quantile over {}_bucket",
                metrics::TXN_DURATION
            )
        },
    )?;
    let unused: Vec<&str> = metrics::NAMES
        .iter()
        .copied()
        .filter(|n| *n != metrics::GOAL_PROGRESS && !used.contains(n))
        .collect();
    ensure(unused.is_empty(), || {
        format!("{DASHBOARD}: no panel shows {unused:?}")
    })
}
