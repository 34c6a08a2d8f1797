//! Decoding changelog partitions, with damaged and forged records among them.

use super::*;
use crate::aggregate::Aggregate;
use crate::engine::GroupKey;

fn state(records: &[(Vec<u8>, Vec<u8>)]) -> PartitionState {
    records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| {
            let latest = Latest {
                offset: i as i64 * 10,
                value: v.clone(),
            };
            (k.clone(), latest)
        })
        .collect()
}

fn window(goal: &str, n: usize) -> (Vec<u8>, WindowState) {
    let key = ChangelogKey::window(
        goal,
        &GroupKey::from_values(&["EMEA"]),
        Timestamp::from_nanos(0),
    );
    let ws = WindowState {
        pacing: None,
        last_event: None,
        end: Timestamp::from_nanos(1_000),
        aggregate: Aggregate::Distinct((0..n).map(|i| format!("v{i:06}").into()).collect()),
        reached: 0,
        breached: false,
    };
    (key, ws)
}

#[test]
fn a_partition_restores_with_its_unreadable_records_set_aside() {
    let (small_key, small) = window("small", 3);
    let (big_key, big) = window("big", 20_000);
    let mut records = vec![(small_key.clone(), wire::window_state_to_bytes(&small))];
    let split = wire::window_state_records(&big_key, &big, 10_000);
    assert!(split.len() > 10);
    records.extend(split.iter().cloned());
    let upstream = |up: u32, t: i64| {
        let v = pb::UpstreamRecord {
            stream_time: Some(t),
            idle: false,
            earliest: Some(t - 7),
        };
        (ChangelogKey::Upstream(up).to_bytes(), v.encode_to_vec())
    };
    records.push(upstream(1, 77));
    // Forged: an upstream far beyond the input's 4 partitions (would allocate gigabytes).
    records.push(upstream(u32::MAX - 1, 5));
    records.push((
        ChangelogKey::Watermark.to_bytes(),
        pb::WatermarkRecord { watermark: 9 }.encode_to_vec(),
    ));
    let clock = pb::RouterClockRecord {
        stream_time: Some(40),
        next_batch: 3,
        earliest: Some(15),
    };
    records.push((
        ChangelogKey::RouterClock(2).to_bytes(),
        clock.encode_to_vec(),
    ));
    let ids = pb::DedupeBatchRecord {
        ids: vec!["b".into(), "a".into()],
        times: vec![20, 10],
    };
    records.push((
        ChangelogKey::DedupeBatch {
            upstream: 2,
            batch: 5,
        }
        .to_bytes(),
        ids.encode_to_vec(),
    ));
    // Garbage: an unknown key, a window whose value is not a state, a bad router clock.
    records.push((b"garbage key".to_vec(), b"x".to_vec()));
    let (bad_window, _) = window("bad", 1);
    records.push((bad_window.clone(), vec![0xff, 0xff, 0xff]));
    records.push((ChangelogKey::RouterClock(3).to_bytes(), vec![0x0a, 0xff]));
    let state = state(&records);

    let r = decode_partition(&state, true, &[2, 3], 4);
    let mut windows: Vec<(String, WindowState, u32)> = r
        .windows
        .iter()
        .map(|w| (w.goal_id.clone(), w.state.clone(), w.parts))
        .collect();
    windows.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        windows,
        vec![
            ("big".to_string(), big, split.len() as u32 - 1),
            ("small".to_string(), small, 0)
        ]
    );
    assert_eq!(
        r.upstreams,
        vec![RestoredUpstream {
            partition: 1,
            stream_time: Some(Timestamp::from_nanos(77)),
            idle: false,
            earliest: Some(Timestamp::from_nanos(70)),
        }]
    );
    assert_eq!(r.watermark, Some(Timestamp::from_nanos(9)));
    let router = &r.routers[&2];
    assert_eq!(router.stream_time, Some(Timestamp::from_nanos(40)));
    assert_eq!(router.earliest, Some(Timestamp::from_nanos(15)));
    assert_eq!(router.next_batch, 6);
    assert_eq!(
        router.ids,
        vec![
            ("a".to_string(), Timestamp::from_nanos(10)),
            ("b".to_string(), Timestamp::from_nanos(20))
        ]
    );
    let bad: Vec<&[u8]> = r.unreadable.iter().map(|u| u.key.as_slice()).collect();
    assert_eq!(
        bad,
        vec![
            ChangelogKey::Upstream(u32::MAX - 1).to_bytes().as_slice(),
            b"garbage key",
            bad_window.as_slice(),
            ChangelogKey::RouterClock(3).to_bytes().as_slice(),
        ],
        "by offset"
    );
    for u in &r.unreadable {
        assert_eq!(state[&u.key].offset, u.offset);
        assert_eq!(state[&u.key].value, u.value);
        assert!(!u.reason.is_empty());
    }
    assert!(
        r.unreadable[0].reason.contains("input has 4 partitions"),
        "{}",
        r.unreadable[0].reason
    );

    // A router alone reports only its own records; the owner's are the owner's to report.
    let r = decode_partition(&state, false, &[2], 4);
    assert!(r.windows.is_empty() && r.upstreams.is_empty() && r.watermark.is_none());
    assert!(r.unreadable.is_empty(), "{:?}", r.unreadable);
    assert_eq!(r.routers.len(), 1);
}

#[test]
fn a_split_window_with_a_part_missing_is_unreadable_not_wrong() {
    let (key, ws) = window("big", 20_000);
    let mut records = wire::window_state_records(&key, &ws, 10_000);
    records.remove(3);
    let r = decode_partition(&state(&records), true, &[], 1);
    assert!(r.windows.is_empty());
    assert_eq!(r.unreadable.len(), 1);
    assert_eq!(r.unreadable[0].key, key);
    assert!(
        r.unreadable[0].reason.contains("missing"),
        "{}",
        r.unreadable[0].reason
    );
    // Its remaining parts are left over, to be tombstoned with it.
    let mut parts: Vec<Vec<u8>> = records[1..].iter().map(|(k, _)| k.clone()).collect();
    parts.sort();
    assert_eq!(r.orphan_parts, parts);
    // Parts of a readable window are not orphans; a router alone reports none.
    let whole = wire::window_state_records(&key, &ws, 10_000);
    assert!(decode_partition(&state(&whole), true, &[], 1)
        .orphan_parts
        .is_empty());
    assert!(decode_partition(&state(&records), false, &[0], 1)
        .orphan_parts
        .is_empty());
}

/// Clocks of an older version, without the earliest time, restore with it unknown.
#[test]
fn clocks_without_the_earliest_time_restore_it_as_unknown() {
    let upstream = pb::UpstreamRecord {
        stream_time: Some(77),
        idle: true,
        earliest: None,
    };
    let clock = pb::RouterClockRecord {
        stream_time: Some(40),
        next_batch: 1,
        earliest: None,
    };
    let state = state(&[
        (
            ChangelogKey::Upstream(0).to_bytes(),
            upstream.encode_to_vec(),
        ),
        (
            ChangelogKey::RouterClock(0).to_bytes(),
            clock.encode_to_vec(),
        ),
    ]);
    let r = decode_partition(&state, true, &[0], 1);
    assert!(r.unreadable.is_empty(), "{:?}", r.unreadable);
    assert_eq!(r.upstreams[0].earliest, None);
    assert!(r.upstreams[0].idle);
    assert_eq!(r.routers[&0].earliest, None);
    assert_eq!(r.routers[&0].stream_time, Some(Timestamp::from_nanos(40)));
}
