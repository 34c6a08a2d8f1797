//! Dedupe batches: a router's new dedupe entries, cut into records that fit.

use prost::encoding::{encode_varint, encoded_len_varint};

use super::proto::{bytes_field_len, put_bytes_field, put_key, LEN};
use crate::engine::AddedIds;
use crate::model::Timestamp;

/// A router's new dedupe entries as `DedupeBatchRecord`s of at most about `max_bytes` each, in
/// order, each with the latest time in it: a transaction can add more ids than one record may
/// hold (`message.max.bytes`). An entry larger than `max_bytes` gets a record of its own.
pub fn dedupe_batches_to_bytes(added: &AddedIds, max_bytes: usize) -> Vec<(Vec<u8>, Timestamp)> {
    let times = added.times();
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 0);
    let flush = |from: usize, to: usize, out: &mut Vec<(Vec<u8>, Timestamp)>| {
        if from < to {
            let max = times[from..to].iter().copied().max().expect("non-empty");
            out.push((encode_dedupe_range(added, from..to), max));
        }
    };
    for (i, id) in added.ids().enumerate() {
        // The id's field, its time's varint, and room for the packed field's header.
        let cost = bytes_field_len(id.as_bytes()) + encoded_len_varint(times[i].as_nanos() as u64);
        if i > start && size + cost + 11 > max_bytes {
            flush(start, i, &mut out);
            (start, size) = (i, 0);
        }
        size += cost;
    }
    flush(start, added.len(), &mut out);
    out
}

/// The entries of `added` in `range` as one `DedupeBatchRecord`.
pub(super) fn encode_dedupe_range(added: &AddedIds, range: std::ops::Range<usize>) -> Vec<u8> {
    let times = &added.times()[range.clone()];
    let ids = || range.clone().map(|i| added.id(i));
    let times_len: usize = times
        .iter()
        .map(|t| encoded_len_varint(t.as_nanos() as u64))
        .sum();
    let ids_len: usize = ids().map(|id| bytes_field_len(id.as_bytes())).sum();
    let mut out =
        Vec::with_capacity(ids_len + 1 + encoded_len_varint(times_len as u64) + times_len);
    for id in ids() {
        put_bytes_field(1, id.as_bytes(), &mut out);
    }
    if !times.is_empty() {
        // `repeated int64 times = 2`, packed as proto3 does.
        put_key(2, LEN, &mut out);
        encode_varint(times_len as u64, &mut out);
        for t in times {
            encode_varint(t.as_nanos() as u64, &mut out);
        }
    }
    out
}
