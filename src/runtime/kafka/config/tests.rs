use std::path::{Path, PathBuf};

use super::*;
use crate::codec::future::MaxFuture;
use crate::codec::Format;
use crate::model::Duration;

const MIN: &str = r#"
goals = "goals.toml"
[kafka]
bootstrap_servers = "127.0.0.1:19092"
[input]
topics = ["sales-events"]
"#;

#[test]
fn defaults() {
    let c = RunConfig::from_toml(MIN, Path::new("/etc/goalpost/goalpost.toml")).unwrap();
    assert_eq!(c.goals, PathBuf::from("/etc/goalpost/goals.toml"));
    assert_eq!(c.app.commit_interval, Duration::from_millis(100));
    assert_eq!(c.repartition_topic(), "goalpost-repartition");
    assert_eq!(c.dead_letter_topic(), "goalpost-dead-letters");
    assert_eq!(c.input.format, Format::Json);
    assert_eq!(c.output.topic, "goal-attainments");
}

#[test]
fn values_run_would_refuse_are_rejected_when_read() {
    let err = |extra: &str| {
        RunConfig::from_toml(&format!("{MIN}{extra}"), Path::new("c.toml"))
            .unwrap_err()
            .to_string()
    };
    let e = err("[app]\nreplication_factor = 0\n");
    assert!(
        e.contains("app.replication_factor `0` must be at least 1"),
        "{e}"
    );
    assert!(err("[app]\nreplication_factor = -1\n").contains("`-1`"));
    // An empty kafka.bootstrap_servers: tests/cli/ (KAFKA_BOOTSTRAP, set in test runs,
    // would replace it here).
    // One role per topic.
    let e = err("[output]\ntopic = \"sales-events\"\n");
    assert!(
        e.contains("`sales-events` is both input.topics and output.topic"),
        "{e}"
    );
    let e = err("[output]\ntopic = \"a\"\ndead_letter_topic = \"a\"\n");
    assert!(
        e.contains("`a` is both output.topic and output.dead_letter_topic"),
        "{e}"
    );
    let e = err("[app]\napplication_id = \"x\"\n[output]\ntopic = \"x-repartition\"\n");
    assert!(
        e.contains("`x-repartition` is both output.topic and the repartition topic"),
        "{e}"
    );
    let e = RunConfig::from_toml(
        &MIN.replace(r#"["sales-events"]"#, r#"["a", "b", "a"]"#),
        Path::new("c.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("input.topics names `a` twice"), "{e}");
    let e = err("[output]\ntopic = \"a\"\nprogress_topic = \"a\"\n");
    assert!(
        e.contains("`a` is both output.topic and output.progress_topic"),
        "{e}"
    );
    // Distinct topics pass; the progress topic is off unless named.
    let c = RunConfig::from_toml(
        &format!("{MIN}[output]\ntopic = \"out\"\ndead_letter_topic = \"dlq\"\n"),
        Path::new("c.toml"),
    )
    .unwrap();
    assert_eq!(c.output.progress_topic, None);
    let c = RunConfig::from_toml(
        &format!("{MIN}[output]\nprogress_topic = \"goal-progress\"\n"),
        Path::new("c.toml"),
    )
    .unwrap();
    assert_eq!(c.output.progress_topic.as_deref(), Some("goal-progress"));
}

#[test]
fn progress_gauges_must_name_goals() {
    let goals = crate::goals::GoalSet::from_toml(
        r#"
[[goals]]
id = "wins"
metric = "count"
filter = { event_type = "deal_won" }
window = { tumbling = "1d" }
target = 3
"#,
    )
    .unwrap();
    let with = |ids: &str| {
        RunConfig::from_toml(
            &format!("{MIN}[metrics]\nprogress_gauges = {ids}\n"),
            Path::new("c.toml"),
        )
        .unwrap()
    };
    with(r#"["wins"]"#)
        .check_goals(&goals, Path::new("c.toml"))
        .unwrap();
    let e = with(r#"["wins", "winz"]"#)
        .check_goals(&goals, Path::new("c.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("progress_gauges names `winz`"), "{e}");
    assert!(e.contains("its goals: wins"), "{e}");
}

#[test]
fn unknown_keys_and_owned_properties_are_rejected() {
    let e = RunConfig::from_toml(
        &format!("{MIN}\n[app]\ncommit_intreval = \"1s\"\n"),
        Path::new("c.toml"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("commit_intreval"), "{e}");
    let e = RunConfig::from_toml(
        &MIN.replace(
            "[input]",
            "[kafka.properties]\n\"group.id\" = \"x\"\n[input]",
        ),
        Path::new("c.toml"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("group.id"), "{e}");
    let e = RunConfig::from_toml(
        &format!("{MIN}\n[app]\ncommit_interval = \"soon\"\n"),
        Path::new("c.toml"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("soon"), "{e}");
    let e = RunConfig::from_toml(
        &MIN.replace(
            "topics = [\"sales-events\"]",
            "topics = [\"t\"]\nformat = \"xml\"",
        ),
        Path::new("c.toml"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("xml"), "{e}");
}

#[test]
fn secret_keys_are_recognised() {
    for key in [
        "sasl.password",
        "SASL.PASSWORD",
        "ssl.key.password",
        "ssl.keystore.password",
        "ssl.keystore.location",
        "ssl.truststore.password",
        "ssl.key.pem",
        "sasl.oauthbearer.assertion.private.key.passphrase",
        "sasl.oauthbearer.client.secret",
        "sasl.oauthbearer.config",
        "sasl.jaas.config",
        "some.access.token",
    ] {
        assert!(is_secret_key(key), "{key} should be secret");
    }
    for key in [
        "security.protocol",
        "sasl.mechanism",
        "sasl.username",
        "ssl.ca.location",
        "ssl.certificate.location",
        "ssl.key.location",
        "client.id",
        "session.timeout.ms",
    ] {
        assert!(!is_secret_key(key), "{key} should be shown");
    }
}

#[test]
fn debug_of_the_kafka_config_redacts_secrets() {
    let text = MIN.replace(
        "[input]",
        "[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n\
         \"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\"sasl.username\" = \"svc-goalpost\"\n\
         \"sasl.password\" = \"hunter2-pw\"\n\"ssl.key.password\" = \"keypass-42\"\n\
         \"ssl.key.pem\" = \"-----BEGIN PRIVATE KEY-----abc\"\n\
         \"sasl.oauthbearer.client.secret\" = \"oauth-sekrit\"\n[input]",
    );
    let c = RunConfig::from_toml(&text, Path::new("c.toml")).unwrap();
    // The secrets stay usable: only their display is redacted.
    assert_eq!(c.kafka.properties["sasl.password"], "hunter2-pw");
    for shown in [
        format!("{:?}", c.kafka),
        format!("{c:?}"),
        format!("{c:#?}"),
    ] {
        for secret in [
            "hunter2-pw",
            "keypass-42",
            "BEGIN PRIVATE KEY",
            "oauth-sekrit",
        ] {
            assert!(!shown.contains(secret), "{secret} leaked in {shown}");
        }
        assert_eq!(shown.matches(REDACTED).count(), 4, "{shown}");
        for visible in [
            "SASL_SSL",
            "SCRAM-SHA-512",
            "svc-goalpost",
            "127.0.0.1:19092",
        ] {
            assert!(shown.contains(visible), "{visible} missing in {shown}");
        }
    }
    let r = redacted_properties(&c.kafka.properties);
    assert_eq!(r.len(), c.kafka.properties.len());
    assert_eq!(r["sasl.password"], REDACTED);
    assert_eq!(r["sasl.username"], "svc-goalpost");
}

#[test]
fn secrets_quoted_by_toml_errors_are_redacted() {
    for (value, leaked) in [
        ("\"abc-secret-9", "abc-secret-9"),
        ("12345678", "12345678"),
        ("\"pw-in-a-string\" oops", "pw-in-a-string"),
    ] {
        let text = MIN.replace(
            "[input]",
            &format!("[kafka.properties]\n\"sasl.password\" = {value}\n[input]"),
        );
        let e = toml::from_str::<RunConfig>(&text).unwrap_err().to_string();
        assert!(
            e.contains(leaked),
            "the test needs an error quoting it: {e}"
        );
        let r = redact_secrets_in(&e, &text);
        assert!(!r.contains(leaked), "{r}");
        assert!(r.contains(REDACTED), "{r}");
        assert!(r.contains("line 6"), "the position stays: {r}");
        // `goalpost run` reports config errors through from_toml: redacted too.
        let e = RunConfig::from_toml(&text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(!e.contains(leaked) && e.contains(REDACTED), "{e}");
    }
    let inline = "kafka = { bootstrap_servers = \"b:1\", properties = { \"sasl.password\" = \"inline-pw\" } }";
    assert_eq!(
        redact_secrets_in("at `inline-pw` here", inline),
        "at `<redacted>` here"
    );
}

#[test]
fn http_defaults_to_loopback_and_needs_a_token_elsewhere() {
    let c = RunConfig::from_toml(MIN, Path::new("c.toml")).unwrap();
    assert!(c.http.enabled);
    assert_eq!(c.http.listen, "127.0.0.1:8080");
    let open = format!("{MIN}\n[http]\nlisten = \"0.0.0.0:8080\"\n");
    let e = RunConfig::from_toml(&open, Path::new("c.toml")).unwrap_err();
    assert!(e.to_string().contains("0.0.0.0:8080"), "{e}");
    assert!(e.to_string().contains("token"), "{e}");
    let with_token = format!("{open}token_env = \"GOALPOST_HTTP_TOKEN\"\n");
    RunConfig::from_toml(&with_token, Path::new("c.toml")).unwrap();
    let opted_out = format!("{open}allow_unauthenticated = true\n");
    RunConfig::from_toml(&opted_out, Path::new("c.toml")).unwrap();
    let bad = format!("{MIN}\n[http]\nlisten = \"localhost\"\n");
    let e = RunConfig::from_toml(&bad, Path::new("c.toml")).unwrap_err();
    assert!(e.to_string().contains("`localhost`"), "{e}");
}

#[test]
fn input_max_record_bytes_gives_the_limits_up_to_the_consumers_fetch_max_bytes() {
    let read = |extra: &str| {
        RunConfig::from_toml(&format!("{MIN}{extra}\n"), Path::new("c.toml"))
            .map(|c| c.input.limits())
            .map_err(|e| e.to_string())
    };
    assert_eq!(read(""), Ok(crate::limits::Limits::DEFAULT));
    let two_mib = read("max_record_bytes = 2097152").unwrap();
    assert_eq!(two_mib.record_bytes, 2 << 20);
    assert_eq!(
        two_mib.event_id_bytes,
        crate::limits::Limits::DEFAULT.event_id_bytes
    );
    assert!(read("max_record_bytes = 52428800").is_ok());
    let e = read("max_record_bytes = 52428801").unwrap_err();
    assert!(
        e.contains("input.max_record_bytes = 52428801 exceeds the consumer's fetch.max.bytes = 52428800 (librdkafka's default")
            && e.contains("allowed up to 52428800"),
        "{e}"
    );
    let props = |p: &str| format!("max_record_bytes = 3000000\n[kafka.properties]\n{p}");
    let e = read(&props("\"fetch.max.bytes\" = \"2000000\"")).unwrap_err();
    assert!(
        e.contains("fetch.max.bytes = 2000000 (set in kafka.properties); allowed up to 2000000"),
        "{e}"
    );
    assert!(read(&props("\"fetch.max.bytes\" = \"3000000\"")).is_ok());
    // librdkafka caps the default at queued.max.messages.kbytes, and raises it to
    // message.max.bytes.
    assert!(read(&props("\"queued.max.messages.kbytes\" = \"2000\"")).is_err());
    let both = "\"queued.max.messages.kbytes\" = \"2000\"\n\"message.max.bytes\" = \"3000000\"";
    assert!(read(&props(both)).is_ok());
}

#[test]
fn input_max_future_defaults_to_an_hour_and_can_be_off() {
    let read = |line: &str| {
        RunConfig::from_toml(&format!("{MIN}{line}\n"), Path::new("c.toml"))
            .map(|c| c.input.max_future)
            .map_err(|e| e.to_string())
    };
    assert_eq!(read(""), Ok(MaxFuture(Some(Duration::from_secs(3_600)))));
    assert_eq!(
        read("max_future = \"15m\""),
        Ok(MaxFuture(Some(Duration::from_secs(900))))
    );
    assert_eq!(read("max_future = \"off\""), Ok(MaxFuture(None)));
    let e = read("max_future = \"later\"").unwrap_err();
    assert!(e.contains("`later` is not a max_future"), "{e}");
}

#[test]
fn http_peer_trust_and_caps_are_checked() {
    let c = RunConfig::from_toml(MIN, Path::new("c.toml")).unwrap();
    assert!(c.http.peer_hosts.is_empty());
    assert_eq!(
        (
            c.http.max_connections,
            c.http.max_requests,
            c.http.max_streams
        ),
        (256, 64, 32)
    );
    let http = |lines: &str| {
        RunConfig::from_toml(&format!("{MIN}\n[http]\n{lines}\n"), Path::new("c.toml"))
    };
    http("peer_hosts = [\"*.goalpost-headless\", \"10.0.0.5\", \"::1\", \"loopback\"]\npeer_token_env = \"S\"")
        .unwrap();
    for (lines, says) in [
        (
            "peer_token_env = \"A\"\npeer_token_file = \"f\"",
            "choose one",
        ),
        ("max_streams = 0", "http.max_streams is 0"),
        ("peer_hosts = [\"http://x:80\"]", "`http://x:80`"),
        ("peer_hosts = [\"*.\"]", "`*.`"),
        ("peer_secret = \"x\"", "peer_secret"),
    ] {
        let e = http(lines).unwrap_err().to_string();
        assert!(e.contains(says), "{lines}: {e}");
    }
}
