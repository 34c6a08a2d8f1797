//! Changelog records against the restore that reads them back.

use super::*;
use crate::aggregate::Aggregate;
use crate::engine::GroupKey;

/// A window state holding `n` distinct values (large enough to be split for n in thousands).
fn distinct(n: usize) -> WindowState {
    WindowState {
        pacing: None,
        end: Timestamp::from_nanos(1_000),
        aggregate: Aggregate::Distinct((0..n).map(|i| format!("v{i:06}").into()).collect()),
        reached: 0,
        breached: false,
    }
}

/// A window whose split state lost a part is unreadable at restore: its head is dead-lettered
/// and tombstoned with its remaining parts in the next transaction. If that transaction also
/// writes the window afresh (a contribution to it arrived), the new head and parts survive:
/// the next restore finds the new state whole.
#[test]
fn a_window_rewritten_in_the_transaction_that_tombstones_its_damaged_state_survives() {
    use crate::runtime::kafka::restore::{decode_partition, Latest, PartitionState};

    let key = ChangelogKey::window(
        "g",
        &GroupKey::from_values(&["EMEA"]),
        Timestamp::from_nanos(0),
    );
    let mut state = PartitionState::new();
    let mut offset = 0;
    let mut write = |state: &mut PartitionState, records: Vec<ChangelogRecord>| {
        for (_, k, v) in records {
            offset += 1;
            match v {
                Some(value) => state.insert(k, Latest { offset, value }),
                None => state.remove(&k),
            };
        }
    };
    let old = wire::window_state_records(&key, &distinct(20_000), 10_000);
    assert!(old.len() > 4);
    let damaged: Vec<ChangelogRecord> = old
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, (k, v))| (0, k, Some(v)))
        .collect();
    write(&mut state, damaged);
    let restored = decode_partition(&state, true, &[], 1);
    assert!(restored.windows.is_empty());
    assert_eq!(restored.unreadable.len(), 1);
    assert!(!restored.orphan_parts.is_empty());

    // The next transaction: the restore's tombstones, and the window's new state in parts
    // under the same keys.
    let cleanup: Vec<ChangelogRecord> = restored
        .unreadable
        .into_iter()
        .map(|u| u.key)
        .chain(restored.orphan_parts)
        .map(|k| (0, k, None))
        .collect();
    let fresh = distinct(15_000);
    let changes: Vec<ChangelogRecord> = window_records(
        &mut HashMap::new(),
        key.clone(),
        Some(fresh.clone()),
        10_000,
    )
    .into_iter()
    .map(|(k, v)| (0, k, v))
    .collect();
    assert!(changes.len() > 4, "the new state is in parts too");
    write(&mut state, changelog_in_order(cleanup, changes));

    let restored = decode_partition(&state, true, &[], 1);
    assert!(restored.unreadable.is_empty(), "{:?}", restored.unreadable);
    assert!(restored.orphan_parts.is_empty());
    assert_eq!(restored.windows.len(), 1);
    assert_eq!(restored.windows[0].key, key);
    assert_eq!(restored.windows[0].state, fresh);
}

#[test]
fn a_window_written_in_parts_then_whole_tombstones_its_old_parts() {
    let key = ChangelogKey::window(
        "g",
        &GroupKey::from_values(&["x"]),
        Timestamp::from_nanos(0),
    );
    let mut split = HashMap::new();
    let big = window_records(&mut split, key.clone(), Some(distinct(20_000)), 10_000);
    let parts = big.len() as u32 - 1;
    assert!(parts > 1);
    assert_eq!(split.get(&key), Some(&parts));
    // Small again: one record, and a tombstone for each old part.
    let small = window_records(&mut split, key.clone(), Some(distinct(1)), 10_000);
    assert_eq!(small.len() as u32, 1 + parts);
    assert!(small[0].1.is_some());
    assert!(small[1..].iter().all(|(_, v)| v.is_none()));
    assert!(split.is_empty());
    // Closed: a tombstone for the head only.
    let closed = window_records(&mut split, key.clone(), None, 10_000);
    assert_eq!(closed, vec![(key, None)]);
}

#[test]
fn a_router_shares_its_changelog_partition_with_the_owner_of_the_same_index() {
    assert_eq!(changelog_partition(0, 3), 0);
    assert_eq!(changelog_partition(4, 3), 1);
}
