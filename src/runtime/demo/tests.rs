use std::str::FromStr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use rust_decimal::Decimal;

use super::numbers::{number, percent, thousands};
use super::printer::Printer;
use super::*;

#[test]
fn numbers_for_people() {
    assert_eq!(number(Decimal::from_str("62500.00").unwrap()), "62,500");
    assert_eq!(
        number(Decimal::from_str("1234567.891").unwrap()),
        "1,234,567.89"
    );
    assert_eq!(number(Decimal::from_str("0.4666666666").unwrap()), "0.4667");
    assert_eq!(number(Decimal::from_str("-1000").unwrap()), "-1,000");
    assert_eq!(number(Decimal::from_str("999").unwrap()), "999");
    assert_eq!(percent(Decimal::from_str("0.25").unwrap()), "25%");
    assert_eq!(percent(Decimal::from_str("1.6666666").unwrap()), "167%");
    assert_eq!(thousands(1_000), "1,000");
    assert_eq!(thousands(12), "12");
}

#[test]
fn lines_are_short_and_throttled() {
    let goals = example_goals();
    let mut p = Printer::new(&goals, 2);
    let mut out = Vec::new();
    let rec = br#"{"attainment_id":"x","goal_id":"region-monthly-revenue","kind":"milestone","group":{"region":"East"},"window_start":"2026-01-01T05:00:00Z","window_end":"2026-02-01T05:00:00Z","value":62500.00,"target":250000,"progress":0.25,"milestone":0.25,"triggered_by":"evt-2a-00000015","event_time":"2026-01-05T12:19:07Z"}"#;
    let fin = br#"{"attainment_id":"y","goal_id":"rep-weekly-activities","kind":"final","group":{"rep_id":"rep-01"},"window_start":"2026-01-04T23:00:00Z","window_end":"2026-01-11T23:00:00Z","value":12,"target":15,"progress":0.8,"outcome":"missed","event_time":"2026-01-11T23:00:00Z"}"#;
    assert!(p.record(rec, &mut out).unwrap());
    assert!(p.record(fin, &mut out).unwrap());
    assert!(!p.record(fin, &mut out).unwrap());
    assert!(!p.record(b"not json", &mut out).unwrap());
    p.flush_suppressed(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].ends_with(
            "milestone 25%   region-monthly-revenue {region=East} 2026-01  value 62,500 (25% of 250,000)  by evt-2a-00000015"
        ),
        "{text}"
    );
    assert!(
        lines[1].ends_with(
            "final missed    rep-weekly-activities {rep_id=rep-01} week of 2026-01-05  value 12 (80% of 15)"
        ),
        "{text}"
    );
    assert!(lines[2].ends_with("… and 1 more final"), "{text}");
    assert_eq!(p.received.milestones, 1);
    assert_eq!(p.received.finals, 2);
    assert_eq!(p.received.missed, 2);
    assert_eq!(p.received.unreadable, 1);
    assert_eq!(p.received.not_printed, 1);
}

#[test]
fn at_risk_and_on_track_lines_show_value_expected_and_projected() {
    let goals = example_goals();
    let mut p = Printer::new(&goals, 1);
    let mut out = Vec::new();
    let at_risk = br#"{"attainment_id":"r","goal_id":"region-monthly-revenue","kind":"at_risk","group":{"region":"East"},"window_start":"2026-01-01T05:00:00Z","window_end":"2026-02-01T05:00:00Z","value":62500.00,"target":250000,"progress":0.25,"event_time":"2026-01-16T05:00:00Z","expected":120000,"projected":129166.67,"tick":"2026-01-16T05:00:00Z"}"#;
    let on_track = br#"{"attainment_id":"t","goal_id":"region-monthly-revenue","kind":"on_track","group":{"region":"East"},"window_start":"2026-01-01T05:00:00Z","window_end":"2026-02-01T05:00:00Z","value":200000,"target":250000,"progress":0.8,"event_time":"2026-01-23T05:00:00Z","expected":180000,"tick":"2026-01-23T05:00:00Z"}"#;
    assert!(p.record(at_risk, &mut out).unwrap());
    assert!(!p.record(on_track, &mut out).unwrap());
    p.flush_suppressed(&mut out).unwrap();
    assert!(p.record(on_track, &mut out).unwrap());
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].ends_with(
            "at risk         region-monthly-revenue {region=East} 2026-01  value 62,500 (expected 120,000, projected 129,166.67 of 250,000)"
        ),
        "{text}"
    );
    assert!(lines[1].ends_with("… and 1 more on track"), "{text}");
    assert!(
        lines[2].ends_with(
            "on track        region-monthly-revenue {region=East} 2026-01  value 200,000 (expected 180,000 of 250,000)"
        ),
        "{text}"
    );
    assert_eq!((p.received.at_risk, p.received.on_track), (1, 2));
    assert_eq!(p.received.total(), 3);
    assert_eq!(p.received.unreadable, 0);
    assert!(p
        .counts_line()
        .ends_with("0 no data), 1 at risk, 2 on track"));
}

/// The whole demo on the mock cluster: no broker needed.
#[test]
fn demo_runs_the_pipeline_on_the_mock_cluster() {
    let cfg = DemoConfig {
        rate: 5_000,
        duration: Some(StdDuration::from_secs(4)),
        partitions: 3,
        seed: 7,
        goals: Arc::new(example_goals()),
        max_lines_per_sec: 20,
        listen: None,
    };
    let mut out = Vec::new();
    let mut status = Vec::new();
    let report = run(
        &cfg,
        Arc::new(AtomicBool::new(false)),
        &mut out,
        &mut status,
    )
    .expect("the demo starts");
    let status = String::from_utf8_lossy(&status);
    let pipeline = report
        .pipeline
        .as_ref()
        .unwrap_or_else(|e| panic!("pipeline failed: {e}\n{status}"));
    assert!(report.fed > 1_000, "fed {}\n{status}", report.fed);
    assert!(pipeline.counts.read > 0, "{status}");
    assert!(report.received.milestones > 0, "{status}");
    assert!(report.received.finals > 0, "{status}");
    assert_eq!(report.received.unreadable, 0, "{status}");
    assert_eq!(report.received.total(), pipeline.attainments, "{status}");
    assert!(!out.is_empty());
}

/// The argument checks name the value given and what is allowed, before anything starts.
#[test]
fn argument_checks_name_the_value_and_what_is_allowed() {
    let args = DemoArgs {
        rate: 0,
        seconds: Some(1),
        goals: None,
        partitions: 3,
        seed: 1,
        listen: None,
    };
    let e = main(args.clone()).unwrap_err();
    assert!(matches!(e, DemoError::Rate { rate: 0 }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "--rate 0: must be at least 1 event per second"
    );
    for partitions in [0, 257] {
        let e = main(DemoArgs {
            rate: 1,
            partitions,
            ..args.clone()
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("--partitions {partitions}: must be between 1 and 256")
        );
    }
    let e = main(DemoArgs {
        rate: 1,
        listen: Some("0.0.0.0:8080".parse().unwrap()),
        ..args
    })
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("--listen 0.0.0.0:8080: the demo serves HTTP on loopback addresses only"),
        "{e}"
    );
}

/// A failed write keeps its `io::Error` as the source, so a closed stdout can be recognized.
#[test]
fn write_errors_keep_the_io_error_as_source() {
    let e = DemoError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
    let source = std::error::Error::source(&e).expect("a source");
    let io = source
        .downcast_ref::<std::io::Error>()
        .expect("an io::Error");
    assert_eq!(io.kind(), std::io::ErrorKind::BrokenPipe);
    assert!(!e.to_string().contains("pipe"), "{e}");
}
