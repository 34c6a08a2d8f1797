//! Changelog records against the restore that reads them back.

use super::*;
use crate::aggregate::Aggregate;
use crate::engine::GroupKey;

/// A window state holding `n` distinct values (large enough to be split for n in thousands).
fn distinct(n: usize) -> WindowState {
    WindowState {
        pacing: None,
        last_event: None,
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

mod restart {
    //! An owner restored from its changelog records goes on exactly as if it had never stopped:
    //! look-ahead status, roster windows and the earliest time included.

    use std::sync::Arc;

    use super::*;
    use crate::engine::{Roster, Router};
    use crate::goals::{Pace, RosterDecl, StatusSpec};
    use crate::model::{Attainment, Decimal, Duration, SalesEvent, StringField};
    use crate::runtime::kafka::rebalance::restore_owner;
    use crate::runtime::kafka::restore::{decode_partition, Latest, PartitionState};

    const DAY: i64 = 86_400_000_000_000;
    const GOALS: &str = r#"
[[goals]]
id = "wins"
metric = "sum"
field = "amount"
filter = { event_type = "deal_won" }
group_by = ["region"]
window = { tumbling = "10d" }
target = 10
grace = "2h"
"#;

    fn goals() -> Arc<GoalSet> {
        let mut set = GoalSet::from_toml(GOALS).unwrap();
        set.goals[0].status = Some(StatusSpec {
            every: Duration::from_nanos(DAY),
            tolerance: "0.2".parse().unwrap(),
            hold: Duration::from_nanos(DAY),
        });
        set.goals[0].pace = Pace::Linear;
        set.goals[0].roster = Some(0);
        set.rosters.push(RosterDecl {
            name: "regions".into(),
            file: None,
            topic: None,
            columns: Vec::new(),
            strict: false,
        });
        Arc::new(set)
    }

    fn owner(goals: &Arc<GoalSet>) -> Owner {
        let roster = Roster::from_csv("region\nEast\nWest\nNorth\n", &["region"], &[]).unwrap();
        let mut o = Owner::new(goals.clone(), 1);
        o.set_rosters(vec![Some(roster)], (0, 1));
        o.track_changes();
        o
    }

    /// Wins in East and West (never North), unevenly over 40 days, the first on day 3.
    fn events() -> Vec<SalesEvent> {
        (0..60i64)
            .map(|i| {
                let mut ev = SalesEvent {
                    event_id: format!("e{i}"),
                    event_type: "deal_won".into(),
                    occurred_at: Timestamp::from_nanos(3 * DAY + i * i * DAY / 100 + i),
                    amount: Some(Decimal::from(1 + i % 4)),
                    ..SalesEvent::default()
                };
                let region = if i % 3 == 0 { "West" } else { "East" };
                ev.set_string(StringField::Region, region);
                ev
            })
            .collect()
    }

    /// Feeds one event through `router` to `owner`.
    fn feed(router: &mut Router, owner: &mut Owner, ev: &SalesEvent, out: &mut Vec<Attainment>) {
        let routed = router.route(ev, |c| {
            owner.apply(&c, out);
        });
        if let crate::engine::Routed::Accepted { progress: Some(p) } = routed {
            owner.progress(p, out);
        }
    }

    /// Writes the owner's changes into `state`, as the changelog's compaction would keep them.
    fn persist(owner: &mut Owner, goals: &GoalSet, state: &mut PartitionState, offset: &mut i64) {
        let mut split = HashMap::new();
        for change in owner.take_changes() {
            for (key, value) in owner_change_records(change, goals, &mut split, 1 << 20) {
                *offset += 1;
                match value {
                    Some(value) => state.insert(
                        key,
                        Latest {
                            offset: *offset,
                            value,
                        },
                    ),
                    None => state.remove(&key),
                };
            }
        }
    }

    #[test]
    fn an_owner_restored_from_its_changelog_goes_on_as_if_never_stopped() {
        let goals = goals();
        let events = events();
        let (mut router, mut reference) = (
            Router::new(goals.clone(), 0, &Default::default()),
            owner(&goals),
        );
        let mut expected = Vec::new();
        for ev in &events {
            feed(&mut router, &mut reference, ev, &mut expected);
        }
        reference.close_all(&mut expected);
        let kinds = |out: &[Attainment]| {
            let mut kinds: Vec<_> = out.iter().map(|a| a.kind).collect();
            kinds.dedup();
            kinds.len()
        };
        assert!(
            kinds(&expected) >= 3,
            "status events and finals: {expected:?}"
        );
        let index: hashbrown::HashMap<String, usize> = [("wins".to_string(), 0)].into();
        for cut in [1, 7, 20, 33, 59] {
            let mut router = Router::new(goals.clone(), 0, &Default::default());
            let (mut first, mut out) = (owner(&goals), Vec::new());
            let (mut state, mut offset) = (PartitionState::new(), 0);
            for ev in &events[..cut] {
                feed(&mut router, &mut first, ev, &mut out);
                persist(&mut first, &goals, &mut state, &mut offset);
            }
            let restored = decode_partition(&state, true, &[], 1);
            assert!(restored.unreadable.is_empty(), "{:?}", restored.unreadable);
            let mut second = owner(&goals);
            restore_owner(&mut second, &index, restored);
            for ev in &events[cut..] {
                feed(&mut router, &mut second, ev, &mut out);
            }
            second.close_all(&mut out);
            assert_eq!(out, expected, "restarted after {cut} events");
        }
    }
}
