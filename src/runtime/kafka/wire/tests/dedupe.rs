//! Dedupe batches: what prost reads, and cut by size.

use prost::Message;

use crate::engine::{AddedIds, DedupeMemory};
use crate::model::{Duration, Timestamp};
use crate::runtime::kafka::wire::dedupe::encode_dedupe_range;
use crate::runtime::kafka::wire::{dedupe_batches_to_bytes, pb};

/// All of `added` as one `DedupeBatchRecord`, however large.
fn dedupe_batch_to_bytes(added: &AddedIds) -> Vec<u8> {
    encode_dedupe_range(added, 0..added.len())
}

#[test]
fn dedupe_batches_decode_as_the_generated_message() {
    let mut memory = DedupeMemory::new(Duration::from_secs(3600));
    memory.track_changes();
    assert!(dedupe_batch_to_bytes(&memory.take_added()).is_empty());
    let long = "x".repeat(300);
    let entries = [
        ("evt-1", 1_700_000_000_000_000_000i64),
        ("ünïcode-ïd", 5),
        (long.as_str(), -1_000_000_007), // before 1970: a ten-byte varint
        ("", 0),
        ("evt-1", 1_700_000_000_000_000_001), // later: recorded again
    ];
    for (id, t) in entries {
        memory.remember(id, Timestamp::from_nanos(t));
    }
    let added = memory.take_added();
    let bytes = dedupe_batch_to_bytes(&added);
    let decoded = pb::DedupeBatchRecord::decode(bytes.as_slice()).expect("decodes");
    let ids: Vec<String> = entries.iter().map(|(id, _)| id.to_string()).collect();
    let times: Vec<i64> = entries.iter().map(|(_, t)| *t).collect();
    assert_eq!(decoded.ids, ids);
    assert_eq!(decoded.times, times);
    // And byte for byte what prost writes (times packed).
    assert_eq!(bytes, pb::DedupeBatchRecord { ids, times }.encode_to_vec());
    assert!(memory.take_added().is_empty(), "taking empties the log");
}

#[test]
fn dedupe_batches_split_by_size_and_keep_every_entry_in_order() {
    let mut memory = DedupeMemory::new(Duration::from_secs(3600));
    memory.track_changes();
    let n = 1_000;
    for i in 0..n {
        // One long id in the middle, larger than the limit on its own.
        let id = if i == 500 {
            "L".repeat(5_000)
        } else {
            format!("evt-{i:06}")
        };
        memory.remember(&id, Timestamp::from_nanos(i * 10));
    }
    let added = memory.take_added();
    let chunks = dedupe_batches_to_bytes(&added, 2_000);
    assert!(chunks.len() > 5, "{} records", chunks.len());
    let (mut ids, mut times) = (Vec::new(), Vec::new());
    for (bytes, max) in &chunks {
        let d = pb::DedupeBatchRecord::decode(bytes.as_slice()).expect("decodes");
        assert!(
            bytes.len() <= 2_000 || d.ids.len() == 1,
            "{} bytes, {} ids",
            bytes.len(),
            d.ids.len()
        );
        assert_eq!(Some(max.as_nanos()), d.times.iter().copied().max());
        ids.extend(d.ids);
        times.extend(d.times);
    }
    let expected: Vec<String> = added.ids().map(str::to_string).collect();
    assert_eq!(ids, expected);
    assert_eq!(times, (0..n).map(|i| i * 10).collect::<Vec<_>>());
    // Unsplit, the same bytes as one record.
    let whole = dedupe_batches_to_bytes(&added, usize::MAX);
    assert_eq!(whole.len(), 1);
    assert_eq!(whole[0].0, dedupe_batch_to_bytes(&added));
}
