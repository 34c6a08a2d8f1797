//! `goalpost check`: validates a goal file, or a service config with everything it names, and
//! prints the config summary and the goal table.

use std::io::{self, Write};
use std::path::Path;

use anyhow::{bail, Result};

use goalpost::engine::Roster;
use goalpost::goals::{GoalSet, Measure};
use goalpost::runtime::rosters::{base_dir, describe_rosters, load_rosters, RosterSource};

/// `goalpost check --goals FILE | --config FILE`.
pub fn cmd_check(goals_path: Option<&Path>, config: Option<&Path>) -> Result<()> {
    let mut out = io::stdout().lock();
    let (goals, rosters) = match (config, goals_path) {
        (Some(config), _) => check_config(config, &mut out)?,
        (None, Some(path)) => load_goals_or_exit(path),
        (None, None) => bail!("give --goals FILE or --config FILE"),
    };
    print_goal_table(&mut out, &goals)?;
    for line in describe_rosters(&goals, &rosters) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// `check`'s way out: the message on stderr, exit status 1.
fn exit_with(message: impl std::fmt::Display) -> ! {
    eprintln!("{message}");
    std::process::exit(1);
}

/// Loads a goal file and its roster files for `check`; errors follow the goal file's path.
fn load_goals_or_exit(path: &Path) -> (GoalSet, Vec<Option<Roster>>) {
    let shown = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let goals = GoalSet::load(path).unwrap_or_else(|e| exit_with(shown(&e)));
    let rosters = load_rosters(&goals, base_dir(path), RosterSource::Check);
    (goals, rosters.unwrap_or_else(|e| exit_with(shown(&e))))
}

/// Checks everything `run` checks before connecting (the config, the goal file, what depends on
/// it, and the HTTP token), prints the config and returns its goals and their rosters.
fn check_config(config: &Path, out: &mut impl Write) -> Result<(GoalSet, Vec<Option<Roster>>)> {
    use goalpost::runtime::kafka::config::{redact_secrets_in, RunConfig};
    let text = std::fs::read_to_string(config).unwrap_or_else(|e| {
        exit_with(format_args!(
            "cannot read config `{}`: {e}",
            config.display()
        ))
    });
    // A TOML error quotes the offending line, which may hold a secret.
    let cfg = RunConfig::from_toml(&text, config)
        .unwrap_or_else(|e| exit_with(redact_secrets_in(&e.to_string(), &text)));
    let (goals, rosters) = load_goals_or_exit(&cfg.goals);
    if let Err(e) = cfg.check_goals(&goals, config) {
        exit_with(e);
    }
    if cfg.http.enabled {
        if let Err(e) = goalpost::serve::resolve_token(&cfg.http) {
            exit_with(format_args!("config `{}`: {e}", config.display()));
        }
    }
    for w in &cfg.notify.webhooks {
        if let Err(e) = goalpost::runtime::notify::load_secret(w) {
            exit_with(format_args!("config `{}`: {e}", config.display()));
        }
    }
    print_config(out, config, &cfg)?;
    Ok((goals, rosters))
}

/// Prints a checked config: its settings, then its Kafka properties with secrets redacted.
fn print_config(
    out: &mut impl Write,
    config: &Path,
    cfg: &goalpost::runtime::kafka::RunConfig,
) -> Result<()> {
    writeln!(out, "config {} OK", config.display())?;
    for (name, value) in config_rows(cfg) {
        writeln!(out, "  {name:<18} {value}")?;
    }
    let properties = goalpost::runtime::kafka::config::redacted_properties(&cfg.kafka.properties);
    if properties.is_empty() {
        writeln!(out, "  {:<18} none", "kafka properties")?;
    } else {
        writeln!(out, "  kafka properties (secrets redacted):")?;
        for (k, v) in &properties {
            writeln!(out, "    {k} = {v}")?;
        }
    }
    writeln!(out)?;
    Ok(())
}

/// The settings `check --config` shows, as (name, value) rows.
fn config_rows(cfg: &goalpost::runtime::kafka::RunConfig) -> Vec<(&'static str, String)> {
    // `RunConfig::from_toml` lets a non-empty KAFKA_BOOTSTRAP override the file.
    let from_env = match std::env::var("KAFKA_BOOTSTRAP") {
        Ok(b) if !b.trim().is_empty() => " (from KAFKA_BOOTSTRAP)",
        _ => "",
    };
    let http = &cfg.http;
    let http_listen = if http.enabled {
        let token = match (&http.token_file, &http.token_env) {
            (Some(f), _) => format!("bearer token from file {}", f.display()),
            (None, Some(var)) => format!("bearer token from ${var}"),
            (None, None) => "no bearer token".to_string(),
        };
        format!("{} ({token})", http.listen)
    } else {
        "disabled".to_string()
    };
    vec![
        (
            "bootstrap servers",
            format!("{}{from_env}", cfg.kafka.bootstrap_servers),
        ),
        ("application id", cfg.app.application_id.clone()),
        (
            "input topics",
            format!(
                "{} ({})",
                cfg.input.topics.join(", "),
                cfg.input.format.as_str()
            ),
        ),
        (
            "output topic",
            format!("{} ({})", cfg.output.topic, cfg.output.format.as_str()),
        ),
        ("dead-letter topic", cfg.dead_letter_topic()),
        (
            "progress topic",
            cfg.output
                .progress_topic
                .clone()
                .unwrap_or_else(|| "none".into()),
        ),
        (
            "internal topics",
            format!("{}, {}", cfg.repartition_topic(), cfg.changelog_topic()),
        ),
        ("http listen", http_listen),
        ("notify", notify_summary(&cfg.notify)),
        ("goals", cfg.goals.display().to_string()),
    ]
}

/// `[notify]` in one line: its sinks (secrets named by source, never shown) and listen address.
fn notify_summary(n: &goalpost::notify::NotifyConfig) -> String {
    let mut sinks: Vec<String> = n
        .webhooks
        .iter()
        .map(|w| {
            let signed = match (&w.secret_file, &w.secret_env) {
                (Some(f), _) => format!("signed, secret from file {}", f.display()),
                (None, Some(var)) => format!("signed, secret from ${var}"),
                (None, None) => "unsigned".into(),
            };
            format!("webhook:{} ({signed})", w.name)
        })
        .collect();
    if n.alertmanager.is_some() {
        sinks.push("alertmanager".into());
    }
    if sinks.is_empty() {
        return "no sinks".into();
    }
    format!("{}; listen {}", sinks.join(", "), n.listen)
}

/// Prints the goals as a table (id, metric, group-by, window, target), then the totals line.
fn print_goal_table(out: &mut impl Write, goals: &GoalSet) -> Result<()> {
    let rows: Vec<[String; 5]> = goals.goals.iter().map(goal_row).collect();
    let header = ["ID", "METRIC", "GROUP BY", "WINDOW", "TARGET"];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    writeln!(out, "{}", line(&header.map(String::from)))?;
    for r in &rows {
        writeln!(out, "{}", line(r))?;
    }
    writeln!(
        out,
        "{} goal(s) OK; dedupe horizon {}",
        goals.goals.len(),
        goals.dedupe_horizon
    )?;
    Ok(())
}

/// One goal's cells in the `check` table.
fn goal_row(g: &goalpost::goals::Goal) -> [String; 5] {
    let metric = match &g.measure {
        Measure::Simple {
            metric,
            field: Some(f),
            ..
        } => format!("{metric}({f})"),
        Measure::Simple { metric, .. } => metric.to_string(),
        Measure::Ratio { .. } => "ratio".to_string(),
    };
    let group = if g.group_by_names.is_empty() {
        "-".to_string()
    } else {
        g.group_by_names.join(",")
    };
    [
        g.id.to_string(),
        metric,
        group,
        g.window.describe(),
        format!("{} {}", g.direction.as_str(), g.target.normalize()),
    ]
}
