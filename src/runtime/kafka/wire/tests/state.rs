//! Window states: exact round trips, split into parts and read back, damage refused.

use std::collections::{HashMap, HashSet};

use prost::Message;
use rust_decimal::Decimal;

use crate::aggregate::Aggregate;
use crate::engine::{GroupKey, WindowState};
use crate::model::Timestamp;
use crate::runtime::kafka::wire::{
    pb, window_state_from_records, window_state_records, window_state_to_bytes, ChangelogKey,
    WireError,
};

/// Decodes a window state held in one record (a split state's head alone is an error).
fn window_state_from_bytes(bytes: &[u8]) -> Result<WindowState, WireError> {
    window_state_from_records(bytes, |_| None).map(|(ws, _)| ws)
}

#[test]
fn window_states_round_trip_exactly() {
    let states = [
        Aggregate::Count(3),
        Aggregate::Sum(Decimal::new(-12345, 2)),
        Aggregate::Avg {
            sum: Decimal::new(1, 1),
            count: 3,
        },
        Aggregate::Min(None),
        Aggregate::Max(Some(Decimal::MAX)),
        Aggregate::Distinct(HashSet::from([Box::from("b"), Box::from("a")])),
        Aggregate::Ratio { num: 2, den: 9 },
    ];
    for aggregate in states {
        let ws = WindowState {
            pacing: None,
            last_event: None,
            end: Timestamp::from_nanos(1_000),
            aggregate,
            reached: 0b101,
            breached: true,
        };
        let bytes = window_state_to_bytes(&ws);
        assert_eq!(window_state_from_bytes(&bytes).unwrap(), ws);
        assert_eq!(bytes, window_state_to_bytes(&ws), "deterministic bytes");
    }
}

fn distinct_state(n: usize) -> WindowState {
    WindowState {
        pacing: None,
        last_event: None,
        end: Timestamp::from_nanos(86_400_000_000_000),
        aggregate: Aggregate::Distinct((0..n).map(|i| format!("account-{i:08}").into()).collect()),
        reached: 0b11,
        breached: false,
    }
}

#[test]
fn large_window_states_are_split_into_records_that_fit_and_read_back_whole() {
    let key = ChangelogKey::window(
        "accounts",
        &GroupKey::from_values(&["EMEA"]),
        Timestamp::from_nanos(0),
    );
    let ws = distinct_state(50_000);
    let whole = window_state_to_bytes(&ws);
    assert!(whole.len() > 500_000, "{} bytes", whole.len());
    let records = window_state_records(&key, &ws, 20_000);
    assert!(records.len() > 25, "{} records", records.len());
    assert_eq!(records[0].0, key, "the head under the window's key");
    for (k, v) in &records {
        assert!(k.len() + v.len() <= 20_000, "{} bytes", k.len() + v.len());
    }
    for (i, (k, _)) in records[1..].iter().enumerate() {
        assert_eq!(
            ChangelogKey::from_bytes(k).unwrap(),
            ChangelogKey::WindowPart {
                window: key.clone(),
                part: i as u32
            }
        );
    }
    let map: HashMap<Vec<u8>, Vec<u8>> = records.iter().cloned().collect();
    let part = |i: u32| {
        map.get(&ChangelogKey::window_part(&key, i))
            .map(Vec::as_slice)
    };
    let (back, parts) = window_state_from_records(&map[&key], part).unwrap();
    assert_eq!(back, ws);
    assert_eq!(parts as usize, records.len() - 1);
    // A head alone is not a state.
    assert!(window_state_from_bytes(&records[0].1).is_err());
    // Small states stay one record, readable as before splitting existed.
    let small = distinct_state(3);
    let one = window_state_records(&key, &small, 20_000);
    assert_eq!(one, vec![(key.clone(), window_state_to_bytes(&small))]);
    assert_eq!(
        window_state_from_records(&one[0].1, |_| None).unwrap(),
        (small, 0)
    );
}

#[test]
fn damaged_split_states_are_errors() {
    let key = ChangelogKey::window("g", &GroupKey::from_values(&[]), Timestamp::from_nanos(0));
    let records = window_state_records(&key, &distinct_state(5_000), 10_000);
    let mut map: HashMap<Vec<u8>, Vec<u8>> = records.iter().cloned().collect();
    let head = map[&key].clone();
    // A part missing.
    map.remove(&ChangelogKey::window_part(&key, 2));
    let part = |i: u32| {
        map.get(&ChangelogKey::window_part(&key, i))
            .map(Vec::as_slice)
    };
    let e = window_state_from_records(&head, part).unwrap_err();
    assert!(e.to_string().contains("part 2 of"), "{e}");
    // A part cut short.
    let mut map: HashMap<Vec<u8>, Vec<u8>> = records.iter().cloned().collect();
    map.get_mut(&ChangelogKey::window_part(&key, 0))
        .unwrap()
        .pop();
    let part = |i: u32| {
        map.get(&ChangelogKey::window_part(&key, i))
            .map(Vec::as_slice)
    };
    assert!(window_state_from_records(&head, part).is_err());
    // A head claiming four billion parts fails at the first missing one.
    let forged = pb::WindowStateRecord {
        parts: u32::MAX,
        total_bytes: u64::MAX,
        ..Default::default()
    }
    .encode_to_vec();
    assert!(window_state_from_records(&forged, |_| None).is_err());
    // Garbage.
    assert!(window_state_from_records(&[0xff, 0xff, 0xff], |_| None).is_err());
}
