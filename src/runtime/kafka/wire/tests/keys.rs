//! Changelog keys: round trips and refusals.

use crate::engine::GroupKey;
use crate::model::Timestamp;
use crate::runtime::kafka::wire::ChangelogKey;

#[test]
fn keys_round_trip() {
    let keys = [
        ChangelogKey::Window {
            goal_id: "g".into(),
            start: Timestamp::from_nanos(-5),
            group: vec!["East".into(), "".into(), "x\0y".into()],
        },
        ChangelogKey::Window {
            goal_id: "g".into(),
            start: Timestamp::from_nanos(7),
            group: vec![],
        },
        ChangelogKey::Upstream(3),
        ChangelogKey::Watermark,
        ChangelogKey::RouterClock(9),
        ChangelogKey::DedupeBatch {
            upstream: 2,
            batch: 77,
        },
    ];
    for k in keys {
        assert_eq!(ChangelogKey::from_bytes(&k.to_bytes()).unwrap(), k);
    }
    assert!(ChangelogKey::from_bytes(b"zz").is_err());
    assert!(ChangelogKey::from_bytes(b"").is_err());
}

#[test]
fn part_keys_hold_a_window_key_only() {
    let window = ChangelogKey::window(
        "g",
        &GroupKey::from_values(&["a"]),
        Timestamp::from_nanos(3),
    );
    let k = ChangelogKey::WindowPart {
        window: window.clone(),
        part: 7,
    };
    assert_eq!(ChangelogKey::from_bytes(&k.to_bytes()).unwrap(), k);
    assert!(
        ChangelogKey::from_bytes(b"p\0\0\0\x01m").is_err(),
        "not a window inside"
    );
    assert!(ChangelogKey::from_bytes(b"p\0\0").is_err(), "truncated");
    // Nested part keys are refused without recursing (no stack to exhaust).
    let mut nested = window;
    for i in 0..100_000u32 {
        nested = ChangelogKey::window_part(&nested, i);
    }
    assert!(ChangelogKey::from_bytes(&nested).is_err());
    // The error quotes a bounded prefix of a huge key.
    let e = ChangelogKey::from_bytes(&vec![b'z'; 1_000_000]).unwrap_err();
    assert!(e.to_string().len() < 1_000, "{} bytes", e.to_string().len());
}
