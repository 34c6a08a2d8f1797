//! The look-ahead status of window states: exact round trips, split into parts too, and damage
//! refused with a reason.

use std::collections::{BTreeMap, HashSet};

use prost::Message;
use rust_decimal::Decimal;

use crate::aggregate::Aggregate;
use crate::engine::{GroupKey, Pacing, StatusState, StatusTracker, WindowState};
use crate::model::Timestamp;
use crate::runtime::kafka::wire::{
    pb, window_state_from_records, window_state_records, window_state_to_bytes, ChangelogKey,
};

fn t(n: i64) -> Timestamp {
    Timestamp::from_nanos(n)
}

/// A window state of sums with a look-ahead status in tracker state `state`.
fn with_pacing(state: StatusState, panes: &[(u32, i64)]) -> WindowState {
    let sum = |n: i64| Aggregate::Sum(Decimal::new(n, 2));
    WindowState {
        end: t(10_000),
        aggregate: sum(12_345),
        reached: 0b1,
        breached: false,
        pacing: Some(Box::new(Pacing {
            before: sum(-5),
            panes: panes.iter().map(|&(i, n)| (i, sum(n))).collect(),
            next: 3,
            first: Some(t(-20)),
            tracker: StatusTracker {
                state,
                last_tick: Some(t(700)),
            },
        })),
        last_event: Some(t(650)),
    }
}

fn read(bytes: &[u8]) -> Result<WindowState, String> {
    window_state_from_records(bytes, |_| None)
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

#[test]
fn look_ahead_states_round_trip_exactly_in_each_tracker_state() {
    let states = [
        StatusState::OnTrack,
        StatusState::Pending { since: t(500) },
        StatusState::AtRisk,
    ];
    for state in states {
        for panes in [&[][..], &[(4, 100), (6, 7), (9, -1)][..]] {
            let ws = with_pacing(state, panes);
            let bytes = window_state_to_bytes(&ws);
            assert_eq!(read(&bytes).unwrap(), ws);
            assert_eq!(bytes, window_state_to_bytes(&ws), "deterministic bytes");
        }
    }
    let mut fresh = with_pacing(StatusState::OnTrack, &[]);
    fresh.pacing = Some(Box::new(Pacing::new(crate::goals::Metric::CountDistinct)));
    fresh.aggregate = Aggregate::Distinct(HashSet::from([Box::from("a")]));
    assert_eq!(read(&window_state_to_bytes(&fresh)).unwrap(), fresh);
}

#[test]
fn large_look_ahead_states_split_into_parts_and_read_back_whole() {
    let distinct = |prefix: &str, n: usize| {
        Aggregate::Distinct((0..n).map(|i| format!("{prefix}-{i:06}").into()).collect())
    };
    let mut ws = with_pacing(StatusState::AtRisk, &[]);
    ws.aggregate = distinct("all", 5_000);
    let panes: BTreeMap<u32, Aggregate> = (4..8).map(|i| (i, distinct("pane", 2_000))).collect();
    ws.pacing = Some(Box::new(Pacing {
        before: distinct("before", 3_000),
        panes,
        ..*ws.pacing.take().unwrap()
    }));
    let key = ChangelogKey::window("accounts", &GroupKey::from_values(&["x"]), t(0));
    let records = window_state_records(&key, &ws, 20_000);
    assert!(records.len() > 10, "{} records", records.len());
    let parts: std::collections::HashMap<Vec<u8>, Vec<u8>> = records[1..].iter().cloned().collect();
    let part = |i: u32| {
        parts
            .get(&ChangelogKey::window_part(&key, i))
            .map(Vec::as_slice)
    };
    let (back, n) = window_state_from_records(&records[0].1, part).unwrap();
    assert_eq!((back, n), (ws, records.len() as u32 - 1));
}

/// Edits the look-ahead part of an encoded state and says why it is refused.
fn refused(edit: impl FnOnce(&mut pb::PacingState)) -> String {
    let ws = with_pacing(StatusState::OnTrack, &[(4, 1), (6, 2)]);
    let mut r = pb::WindowStateRecord::decode(window_state_to_bytes(&ws).as_slice()).unwrap();
    edit(r.pacing.as_mut().unwrap());
    read(&r.encode_to_vec()).unwrap_err()
}

#[test]
fn damaged_look_ahead_states_are_refused_with_a_reason() {
    let e = refused(|p| p.status = None);
    assert!(e.contains("without its state"), "{e}");
    let e = refused(|p| p.before = None);
    assert!(e.contains("no aggregate"), "{e}");
    let e = refused(|p| p.panes[0].interval = 3);
    assert!(e.contains("pane 3 out of order"), "{e}");
    let e = refused(|p| p.panes[1].interval = 4);
    assert!(e.contains("pane 4 out of order"), "{e}");
    let e = refused(|p| {
        p.panes[0].aggregate = Some(pb::WindowStateRecord {
            aggregate: Some(pb::window_state_record::Aggregate::Count(1)),
            ..Default::default()
        })
    });
    assert!(e.contains("another metric"), "{e}");
}
