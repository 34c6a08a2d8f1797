//! `goalpost check --config`: the configuration is validated and summarised, its goal file checked,
//! and no secret of `[kafka.properties]` is ever printed, neither in the summary nor in errors.

use std::path::Path;
use std::process::Output;

#[allow(dead_code)]
mod support;

use support::bin::goalpost;
use support::dirs::tmp_file;
use support::goals::EXAMPLE_GOALS;

const PASSWORD: &str = "pw-Zq81-never-print-me";
const KEY_PASSWORD: &str = "keystore-pass-4471";
const JAAS_PASSWORD: &str = "jaas-inner-pw-903";

fn check_config(config: &Path) -> Output {
    goalpost()
        .args(["check", "--config"])
        .arg(config)
        // The summary shows what the file says (KAFKA_BOOTSTRAP would override it).
        .env_remove("KAFKA_BOOTSTRAP")
        .output()
        .expect("run goalpost")
}

fn config_text(goals: &str, properties: &str) -> String {
    format!(
        r#"goals = "{goals}"
[kafka]
bootstrap_servers = "broker-1.example:9093,broker-2.example:9093"
[kafka.properties]
{properties}
[app]
application_id = "sales-kpis"
[input]
topics = ["sales-events", "sales-events-eu"]
[output]
topic = "kpi-attainments"
[http]
listen = "127.0.0.1:9464"
"#
    )
}

fn secret_properties() -> String {
    format!(
        r#""security.protocol" = "SASL_SSL"
"sasl.mechanism" = "SCRAM-SHA-512"
"sasl.username" = "svc-goalpost"
"sasl.password" = "{PASSWORD}"
"ssl.ca.location" = "/etc/goalpost/ca.pem"
"ssl.keystore.password" = "{KEY_PASSWORD}"
"sasl.jaas.config" = "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"svc-goalpost\" password=\"{JAAS_PASSWORD}\";""#
    )
}

fn assert_no_secret(o: &Output) {
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    for secret in [PASSWORD, KEY_PASSWORD, JAAS_PASSWORD] {
        assert!(!all.contains(secret), "secret {secret:?} printed:\n{all}");
    }
}

#[test]
fn the_summary_shows_the_settings_and_redacts_the_secrets() {
    let cfg = tmp_file(
        "goalpost.toml",
        &config_text(EXAMPLE_GOALS, &secret_properties()),
    );
    let o = check_config(&cfg);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_no_secret(&o);
    for expected in [
        "broker-1.example:9093,broker-2.example:9093",
        "sales-kpis",
        "sales-events, sales-events-eu (json)",
        "kpi-attainments (json)",
        "sales-kpis-dead-letters",
        "sales-kpis-repartition, sales-kpis-changelog",
        "127.0.0.1:9464",
        "security.protocol = SASL_SSL",
        "sasl.mechanism = SCRAM-SHA-512",
        "sasl.username = svc-goalpost",
        "ssl.ca.location = /etc/goalpost/ca.pem",
        "sasl.password = <redacted>",
        "ssl.keystore.password = <redacted>",
        "sasl.jaas.config = <redacted>",
        // The goal file the config names is checked too.
        "region-monthly-revenue",
        "8 goal(s) OK",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    assert_eq!(out.matches("<redacted>").count(), 3, "{out}");
}

#[test]
fn a_config_error_quoting_a_secret_line_is_redacted() {
    // An unterminated string: the TOML error quotes the line.
    let broken = secret_properties().replace(&format!("\"{PASSWORD}\""), &format!("\"{PASSWORD}"));
    let cfg = tmp_file("broken.toml", &config_text(EXAMPLE_GOALS, &broken));
    let o = check_config(&cfg);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_no_secret(&o);
    assert!(err.contains("TOML parse error"), "{err}");
    assert!(err.contains("\"sasl.password\" = <redacted>"), "{err}");

    // A secret of the wrong type: the error names the value.
    let typed = secret_properties().replace(
        &format!("\"sasl.password\" = \"{PASSWORD}\""),
        "\"sasl.password\" = 918273645",
    );
    let cfg = tmp_file("typed.toml", &config_text(EXAMPLE_GOALS, &typed));
    let o = check_config(&cfg);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!err.contains("918273645"), "{err}");
    assert!(err.contains("<redacted>"), "{err}");
}

#[test]
fn an_invalid_config_or_goal_file_exits_1_without_secrets() {
    // A rule broken (an owned property): named, exit 1, no secret.
    let props = format!("{}\n\"group.id\" = \"mine\"", secret_properties());
    let cfg = tmp_file("owned.toml", &config_text(EXAMPLE_GOALS, &props));
    let o = check_config(&cfg);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("group.id"));
    assert_no_secret(&o);

    // The goal file the config names is broken: its problems are reported, exit 1.
    let goals = tmp_file(
        "bad-goals.toml",
        "[[goals]]\nid = \"a\"\nmetric = \"count\"\nwindow = { tumbling = \"7days\" }\ntarget = 5\n",
    );
    let cfg = tmp_file(
        "bad-goals-config.toml",
        &config_text(goals.to_str().unwrap(), &secret_properties()),
    );
    let o = check_config(&cfg);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("`7days` is not a duration"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_no_secret(&o);
}

#[test]
fn goals_alone_still_works_and_goals_with_config_is_refused() {
    let o = goalpost()
        .args(["check", "--goals", EXAMPLE_GOALS])
        .output()
        .unwrap();
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("8 goal(s) OK"), "{out}");
    assert!(!out.contains("bootstrap servers"), "{out}");

    let cfg = tmp_file("both.toml", &config_text(EXAMPLE_GOALS, ""));
    let o = goalpost()
        .args(["check", "--goals", EXAMPLE_GOALS, "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "clap refuses both");
    let o = goalpost().arg("check").output().unwrap();
    assert_eq!(o.status.code(), Some(2), "clap requires one of them");
}
