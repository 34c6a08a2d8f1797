//! Records of the internal topics: repartition batches and changelog keys and values.

use std::borrow::Cow;

use prost::encoding::{
    decode_varint, encode_varint, encoded_len_varint, skip_field, DecodeContext, WireType,
};
use prost::Message;
use rust_decimal::Decimal;
use thiserror::Error;

use crate::aggregate::{Aggregate, Delta};
use crate::engine::{AddedIds, Contribution, GroupKey, GroupValues, WindowState};
use crate::model::Timestamp;

/// Generated internal types.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/goalpost.v1.internal.rs"));
}

/// A record on an internal topic could not be read.
#[derive(Debug, Error)]
pub enum WireError {
    /// Protobuf decoding failed.
    #[error("cannot decode {what}: {cause}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The protobuf error.
        cause: prost::DecodeError,
    },
    /// The record decoded but its content is impossible.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What was being decoded.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
}

fn invalid(what: &'static str, detail: impl Into<String>) -> WireError {
    WireError::Invalid {
        what,
        detail: detail.into(),
    }
}

/// Stable 64-bit FNV-1a over length-prefixed parts, used to partition by (goal, group): the same
/// on every instance and version.
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h = Fnv::new();
    for part in parts {
        h.part(part);
    }
    h.0
}

struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn part(&mut self, part: &[u8]) {
        for b in (part.len() as u64).to_be_bytes().iter().chain(part.iter()) {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The owner partition of a goal and group.
pub fn owner_partition(goal_id: &str, group: &[&str], partitions: u32) -> u32 {
    owner_partition_after(goal_hash(goal_id), group, partitions)
}

/// The hash state after a goal's id: computed once per goal, then continued per group by
/// [`owner_partition_after`].
pub fn goal_hash(goal_id: &str) -> u64 {
    let mut h = Fnv::new();
    h.part(goal_id.as_bytes());
    h.0
}

/// [`owner_partition`] from the goal's [`goal_hash`].
pub fn owner_partition_after(goal_hash: u64, group: &[&str], partitions: u32) -> u32 {
    let mut h = Fnv(goal_hash);
    for g in group {
        h.part(g.as_bytes());
    }
    (h.0 % u64::from(partitions.max(1))) as u32
}

fn decimal_from_bytes(what: &'static str, b: &[u8]) -> Result<Decimal, WireError> {
    let arr: [u8; 16] = b
        .try_into()
        .map_err(|_| invalid(what, format!("decimal of {} bytes, expected 16", b.len())))?;
    Ok(Decimal::deserialize(arr))
}

// Protobuf wire types and the field numbers of `RepartitionBatch` and `ContributionRecord`.
const VARINT: u64 = 0;
const LEN: u64 = 2;

fn put_key(field: u64, wire_type: u64, out: &mut Vec<u8>) {
    encode_varint(field << 3 | wire_type, out);
}

fn put_bytes_field(field: u64, b: &[u8], out: &mut Vec<u8>) {
    put_key(field, LEN, out);
    encode_varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

fn bytes_field_len(b: &[u8]) -> usize {
    1 + encoded_len_varint(b.len() as u64) + b.len()
}

/// A repartition batch being built, encoded as it grows: the bytes are a `RepartitionBatch`
/// (internal.proto), written without building the generated structs (no allocation per
/// contribution).
#[derive(Debug, Clone)]
pub struct BatchWriter {
    buf: Vec<u8>,
    contributions: usize,
    stream_time: Option<i64>,
    idle: bool,
}

impl BatchWriter {
    /// An empty batch from one upstream partition.
    pub fn new(upstream: u32) -> Self {
        let mut buf = Vec::with_capacity(256);
        put_key(1, VARINT, &mut buf);
        encode_varint(u64::from(upstream), &mut buf);
        BatchWriter {
            buf,
            contributions: 0,
            stream_time: None,
            idle: false,
        }
    }

    /// Appends one contribution to goal `goal_id`.
    pub fn push(&mut self, goal_id: &str, c: &Contribution<'_>) {
        let number;
        let delta_len = match &c.delta {
            Delta::Count => 2,
            Delta::Number(_) => 2 + 16,
            Delta::Text(t) => bytes_field_len(t.as_bytes()),
            Delta::Ratio { num, den } => 2 + 2 * (usize::from(*num) + usize::from(*den)),
        };
        let len = bytes_field_len(goal_id.as_bytes())
            + c.group
                .iter()
                .map(|g| bytes_field_len(g.as_bytes()))
                .sum::<usize>()
            + bytes_field_len(c.event_id.as_bytes())
            + 1
            + encoded_len_varint(c.event_time.as_nanos() as u64)
            + delta_len;
        let out = &mut self.buf;
        put_key(2, LEN, out);
        encode_varint(len as u64, out);
        put_bytes_field(1, goal_id.as_bytes(), out);
        for g in &c.group {
            put_bytes_field(2, g.as_bytes(), out);
        }
        put_bytes_field(3, c.event_id.as_bytes(), out);
        put_key(4, VARINT, out);
        encode_varint(c.event_time.as_nanos() as u64, out);
        match &c.delta {
            Delta::Count => {
                put_key(5, VARINT, out);
                out.push(1);
            }
            Delta::Number(d) => {
                number = d.serialize();
                put_bytes_field(6, &number, out);
            }
            Delta::Text(t) => put_bytes_field(7, t.as_bytes(), out),
            Delta::Ratio { num, den } => {
                put_key(8, LEN, out);
                encode_varint(2 * (u64::from(*num) + u64::from(*den)), out);
                for (field, set) in [(1, *num), (2, *den)] {
                    if set {
                        put_key(field, VARINT, out);
                        out.push(1);
                    }
                }
            }
        }
        self.contributions += 1;
    }

    /// Contributions so far.
    pub fn len(&self) -> usize {
        self.contributions
    }

    /// Its encoded size so far, in bytes.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Whether the batch holds no contribution.
    pub fn is_empty(&self) -> bool {
        self.contributions == 0
    }

    /// Sets the upstream's stream time, sent after the contributions.
    pub fn set_stream_time(&mut self, t: Timestamp) {
        self.stream_time = Some(t.as_nanos());
    }

    /// Marks the upstream idle.
    pub fn set_idle(&mut self) {
        self.idle = true;
    }

    /// The encoded `RepartitionBatch`.
    pub fn finish(mut self) -> Vec<u8> {
        if let Some(t) = self.stream_time {
            put_key(3, VARINT, &mut self.buf);
            encode_varint(t as u64, &mut self.buf);
        }
        if self.idle {
            put_key(4, VARINT, &mut self.buf);
            self.buf.push(1);
        }
        self.buf
    }
}

/// One contribution of a [`BatchView`], borrowing its strings from the record.
#[derive(Debug, Clone, PartialEq)]
pub struct ContributionView<'a> {
    /// The goal's id.
    pub goal_id: &'a str,
    /// The group's values.
    pub group: GroupValues<'a>,
    /// The event's id.
    pub event_id: &'a str,
    /// The event's time.
    pub event_time: Timestamp,
    /// What the event adds.
    pub delta: Delta<'a>,
}

/// A repartition batch read without copying its strings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchView<'a> {
    /// The upstream (input) partition.
    pub upstream: u32,
    /// The contributions, in order.
    pub contributions: Vec<ContributionView<'a>>,
    /// The upstream's stream time after them.
    pub stream_time: Option<Timestamp>,
    /// The upstream is idle.
    pub idle: bool,
    /// Non-zero for a sentinel.
    pub sentinel: u64,
}

/// Reads the fields of one protobuf message, calling `field` with each field number, wire type
/// and the rest of the buffer positioned at its value; unknown fields are skipped by `field`
/// returning `false`.
fn read_fields<'a>(
    what: &'static str,
    mut b: &'a [u8],
    mut field: impl FnMut(u64, &mut &'a [u8]) -> Result<bool, WireError>,
) -> Result<(), WireError> {
    let decode = |cause| WireError::Decode { what, cause };
    while !b.is_empty() {
        let key = decode_varint(&mut b).map_err(decode)?;
        let (number, wire_type) = (key >> 3, key & 7);
        if !field(key, &mut b)? {
            let wt = WireType::try_from(wire_type).map_err(decode)?;
            skip_field(wt, number as u32, &mut b, DecodeContext::default()).map_err(decode)?;
        }
    }
    Ok(())
}

fn read_varint(what: &'static str, b: &mut &[u8]) -> Result<u64, WireError> {
    decode_varint(b).map_err(|cause| WireError::Decode { what, cause })
}

fn read_bytes<'a>(what: &'static str, b: &mut &'a [u8]) -> Result<&'a [u8], WireError> {
    let len = read_varint(what, b)? as usize;
    if b.len() < len {
        return Err(invalid(what, "truncated field"));
    }
    let (v, rest) = b.split_at(len);
    *b = rest;
    Ok(v)
}

fn read_str<'a>(what: &'static str, b: &mut &'a [u8]) -> Result<&'a str, WireError> {
    std::str::from_utf8(read_bytes(what, b)?).map_err(|_| invalid(what, "string is not UTF-8"))
}

fn key(field: u64, wire_type: u64) -> u64 {
    field << 3 | wire_type
}

fn read_contribution(b: &[u8]) -> Result<ContributionView<'_>, WireError> {
    const WHAT: &str = "contribution";
    let mut c = ContributionView {
        goal_id: "",
        group: GroupValues::new(),
        event_id: "",
        event_time: Timestamp::from_nanos(0),
        delta: Delta::Count,
    };
    let mut has_delta = false;
    read_fields(WHAT, b, |k, b| {
        match k {
            k if k == key(1, LEN) => c.goal_id = read_str(WHAT, b)?,
            k if k == key(2, LEN) => c.group.push(read_str(WHAT, b)?),
            k if k == key(3, LEN) => c.event_id = read_str(WHAT, b)?,
            k if k == key(4, VARINT) => {
                c.event_time = Timestamp::from_nanos(read_varint(WHAT, b)? as i64)
            }
            k if k == key(5, VARINT) => {
                read_varint(WHAT, b)?;
                c.delta = Delta::Count;
                has_delta = true;
            }
            k if k == key(6, LEN) => {
                c.delta = Delta::Number(decimal_from_bytes(WHAT, read_bytes(WHAT, b)?)?);
                has_delta = true;
            }
            k if k == key(7, LEN) => {
                c.delta = Delta::Text(Cow::Borrowed(read_str(WHAT, b)?));
                has_delta = true;
            }
            k if k == key(8, LEN) => {
                let (mut num, mut den) = (false, false);
                read_fields(WHAT, read_bytes(WHAT, b)?, |k, b| {
                    match k {
                        k if k == key(1, VARINT) => num = read_varint(WHAT, b)? != 0,
                        k if k == key(2, VARINT) => den = read_varint(WHAT, b)? != 0,
                        _ => return Ok(false),
                    }
                    Ok(true)
                })?;
                c.delta = Delta::Ratio { num, den };
                has_delta = true;
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    if !has_delta {
        return Err(invalid(WHAT, "no delta"));
    }
    Ok(c)
}

/// Reads a repartition batch, borrowing its strings from `bytes`.
pub fn read_batch(bytes: &[u8]) -> Result<BatchView<'_>, WireError> {
    let mut contributions = Vec::new();
    let header = read_batch_each(bytes, |c| contributions.push(c))?;
    Ok(BatchView {
        upstream: header.upstream,
        contributions,
        stream_time: header.stream_time,
        idle: header.idle,
        sentinel: header.sentinel,
    })
}

/// A repartition batch without its contributions: what [`read_batch_each`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BatchHeader {
    /// The upstream (input) partition.
    pub upstream: u32,
    /// The upstream's stream time after the contributions.
    pub stream_time: Option<Timestamp>,
    /// The upstream is idle.
    pub idle: bool,
    /// Non-zero for a sentinel.
    pub sentinel: u64,
}

/// Reads a repartition batch, handing each contribution to `each` as it is read (no allocation
/// per batch). On an error, `each` may have seen some of the contributions.
pub fn read_batch_each<'a>(
    bytes: &'a [u8],
    mut each: impl FnMut(ContributionView<'a>),
) -> Result<BatchHeader, WireError> {
    const WHAT: &str = "repartition batch";
    let mut batch = BatchHeader::default();
    read_fields(WHAT, bytes, |k, b| {
        match k {
            k if k == key(1, VARINT) => batch.upstream = read_varint(WHAT, b)? as u32,
            k if k == key(2, LEN) => each(read_contribution(read_bytes(WHAT, b)?)?),
            k if k == key(3, VARINT) => {
                batch.stream_time = Some(Timestamp::from_nanos(read_varint(WHAT, b)? as i64))
            }
            k if k == key(4, VARINT) => batch.idle = read_varint(WHAT, b)? != 0,
            k if k == key(5, VARINT) => batch.sentinel = read_varint(WHAT, b)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(batch)
}

/// A router's new dedupe entries as the bytes of a `DedupeBatchRecord` (internal.proto), written
/// straight from the shared buffer of ids (no `String` per id).
pub fn dedupe_batch_to_bytes(added: &AddedIds) -> Vec<u8> {
    encode_dedupe_range(added, 0..added.len())
}

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

fn encode_dedupe_range(added: &AddedIds, range: std::ops::Range<usize>) -> Vec<u8> {
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

/// Encodes a window state.
pub fn window_state_to_bytes(ws: &WindowState) -> Vec<u8> {
    use pb::window_state_record::Aggregate as A;
    let d = |x: &Decimal| x.serialize().to_vec();
    let aggregate = match &ws.aggregate {
        Aggregate::Count(c) => A::Count(*c),
        Aggregate::Sum(s) => A::Sum(d(s)),
        Aggregate::Avg { sum, count } => A::Avg(pb::AvgState {
            sum: d(sum),
            count: *count,
        }),
        Aggregate::Min(m) => A::Min(pb::OptDecimal {
            value: m.as_ref().map(d),
        }),
        Aggregate::Max(m) => A::Max(pb::OptDecimal {
            value: m.as_ref().map(d),
        }),
        Aggregate::Distinct(set) => {
            let mut values: Vec<String> = set.iter().map(|v| v.to_string()).collect();
            values.sort_unstable();
            A::Distinct(pb::DistinctState { values })
        }
        Aggregate::Ratio { num, den } => A::Ratio(pb::RatioState {
            num: *num,
            den: *den,
        }),
    };
    pb::WindowStateRecord {
        end: ws.end.as_nanos(),
        reached: ws.reached,
        breached: ws.breached,
        aggregate: Some(aggregate),
        parts: 0,
        total_bytes: 0,
    }
    .encode_to_vec()
}

/// Bytes a part's record needs besides its key and its piece of the state (protobuf framing
/// does not apply: a part is raw bytes), kept free for the record's own overhead.
const PART_SLACK: usize = 64;
/// The smallest piece a state is cut into, however large the key.
const MIN_PART_BYTES: usize = 1024;

/// A window's changelog records, as (key, value): its state under `key` when both fit in
/// `max_bytes`; otherwise a head under `key` (a `WindowStateRecord` with only `parts` and
/// `total_bytes`) followed by the encoded state cut into parts under
/// [`ChangelogKey::window_part`] keys. No window state is then too large to persist (a
/// `count_distinct` set can grow to megabytes).
pub fn window_state_records(
    key: &[u8],
    ws: &WindowState,
    max_bytes: usize,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let bytes = window_state_to_bytes(ws);
    if key.len() + bytes.len() <= max_bytes {
        return vec![(key.to_vec(), bytes)];
    }
    let piece = max_bytes
        .saturating_sub(key.len() + 5 + PART_SLACK)
        .max(MIN_PART_BYTES);
    let pieces: Vec<&[u8]> = bytes.chunks(piece).collect();
    let head = pb::WindowStateRecord {
        parts: pieces.len() as u32,
        total_bytes: bytes.len() as u64,
        ..Default::default()
    };
    let mut out = Vec::with_capacity(pieces.len() + 1);
    out.push((key.to_vec(), head.encode_to_vec()));
    for (i, piece) in pieces.into_iter().enumerate() {
        out.push((ChangelogKey::window_part(key, i as u32), piece.to_vec()));
    }
    out
}

/// Decodes a window's state from the value under its key and, for a state split by
/// [`window_state_records`], its parts, which `part` looks up by number. Returns the state and
/// its number of parts (0: one record).
pub fn window_state_from_records<'a>(
    head: &[u8],
    part: impl Fn(u32) -> Option<&'a [u8]>,
) -> Result<(WindowState, u32), WireError> {
    const W: &str = "window state";
    let r = pb::WindowStateRecord::decode(head)
        .map_err(|cause| WireError::Decode { what: W, cause })?;
    if r.parts == 0 {
        return Ok((window_state_from_record(r)?, 0));
    }
    // Untrusted counts: nothing is reserved from them, and a missing part ends the reading.
    let mut bytes = Vec::new();
    for i in 0..r.parts {
        let piece =
            part(i).ok_or_else(|| invalid(W, format!("part {i} of {} is missing", r.parts)))?;
        bytes.extend_from_slice(piece);
    }
    if bytes.len() as u64 != r.total_bytes {
        return Err(invalid(
            W,
            format!(
                "its {} parts hold {} bytes, the head says {}",
                r.parts,
                bytes.len(),
                r.total_bytes
            ),
        ));
    }
    let whole = pb::WindowStateRecord::decode(bytes.as_slice())
        .map_err(|cause| WireError::Decode { what: W, cause })?;
    if whole.parts != 0 {
        return Err(invalid(W, "a part holds another split state"));
    }
    Ok((window_state_from_record(whole)?, r.parts))
}

/// Decodes a window state held in one record.
pub fn window_state_from_bytes(bytes: &[u8]) -> Result<WindowState, WireError> {
    window_state_from_records(bytes, |_| None).map(|(ws, _)| ws)
}

fn window_state_from_record(r: pb::WindowStateRecord) -> Result<WindowState, WireError> {
    use pb::window_state_record::Aggregate as A;
    const W: &str = "window state";
    let opt = |o: &pb::OptDecimal| {
        o.value
            .as_deref()
            .map(|b| decimal_from_bytes(W, b))
            .transpose()
    };
    let aggregate = match &r.aggregate {
        None => return Err(invalid(W, "no aggregate")),
        Some(A::Count(c)) => Aggregate::Count(*c),
        Some(A::Sum(s)) => Aggregate::Sum(decimal_from_bytes(W, s)?),
        Some(A::Avg(a)) => Aggregate::Avg {
            sum: decimal_from_bytes(W, &a.sum)?,
            count: a.count,
        },
        Some(A::Min(m)) => Aggregate::Min(opt(m)?),
        Some(A::Max(m)) => Aggregate::Max(opt(m)?),
        Some(A::Distinct(d)) => {
            Aggregate::Distinct(d.values.iter().map(|v| Box::from(v.as_str())).collect())
        }
        Some(A::Ratio(r)) => Aggregate::Ratio {
            num: r.num,
            den: r.den,
        },
    };
    Ok(WindowState {
        end: Timestamp::from_nanos(r.end),
        aggregate,
        reached: r.reached,
        breached: r.breached,
    })
}

/// A decoded changelog key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangelogKey {
    /// An owner's window.
    Window {
        /// Goal id.
        goal_id: String,
        /// Window start.
        start: Timestamp,
        /// Group values.
        group: Vec<String>,
    },
    /// An owner's view of an upstream partition.
    Upstream(u32),
    /// An owner's watermark (one per changelog partition).
    Watermark,
    /// A router's clock.
    RouterClock(u32),
    /// A router's dedupe batch.
    DedupeBatch {
        /// The upstream partition.
        upstream: u32,
        /// The batch number.
        batch: u64,
    },
    /// A part of a window state too large for one record (see [`window_state_records`]).
    WindowPart {
        /// The window's key.
        window: Vec<u8>,
        /// The part's number, from 0.
        part: u32,
    },
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    prost::encoding::encode_varint(s.len() as u64, out);
    out.extend_from_slice(s.as_bytes());
}

fn get_str<'a>(b: &mut &'a [u8]) -> Result<&'a str, WireError> {
    let len = prost::encoding::decode_varint(b).map_err(|cause| WireError::Decode {
        what: "changelog key",
        cause,
    })? as usize;
    if b.len() < len {
        return Err(invalid("changelog key", "truncated string"));
    }
    let (s, rest) = b.split_at(len);
    *b = rest;
    std::str::from_utf8(s).map_err(|_| invalid("changelog key", "string is not UTF-8"))
}

impl ChangelogKey {
    /// The key of a window.
    pub fn window(goal_id: &str, group: &GroupKey, start: Timestamp) -> Vec<u8> {
        let mut out = vec![b'w'];
        put_str(&mut out, goal_id);
        out.extend_from_slice(&start.as_nanos().to_be_bytes());
        for v in group.0.iter() {
            put_str(&mut out, v);
        }
        out
    }

    /// The key of part `part` of the state of the window whose key is `window`.
    pub fn window_part(window: &[u8], part: u32) -> Vec<u8> {
        [&b"p"[..], &part.to_be_bytes(), window].concat()
    }

    /// Encodes any key.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            ChangelogKey::Window {
                goal_id,
                start,
                group,
            } => {
                let key = GroupKey(group.iter().map(|g| Box::from(g.as_str())).collect());
                Self::window(goal_id, &key, *start)
            }
            ChangelogKey::Upstream(p) => [&b"u"[..], &p.to_be_bytes()].concat(),
            ChangelogKey::Watermark => b"m".to_vec(),
            ChangelogKey::RouterClock(p) => [&b"r"[..], &p.to_be_bytes()].concat(),
            ChangelogKey::DedupeBatch { upstream, batch } => {
                [&b"d"[..], &upstream.to_be_bytes(), &batch.to_be_bytes()].concat()
            }
            ChangelogKey::WindowPart { window, part } => Self::window_part(window, *part),
        }
    }

    /// Decodes a key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        let bad = || {
            let shown = &bytes[..bytes.len().min(64)];
            let more = if bytes.len() > shown.len() {
                " …"
            } else {
                ""
            };
            invalid(
                "changelog key",
                format!("unknown key of {} bytes {shown:?}{more}", bytes.len()),
            )
        };
        let (tag, mut rest) = bytes.split_first().ok_or_else(bad)?;
        let u32_at =
            |b: &[u8]| -> Option<u32> { Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?)) };
        match tag {
            b'w' => {
                let goal_id = get_str(&mut rest)?.to_string();
                if rest.len() < 8 {
                    return Err(bad());
                }
                let start = i64::from_be_bytes(rest[..8].try_into().expect("8 bytes"));
                rest = &rest[8..];
                let mut group = Vec::new();
                while !rest.is_empty() {
                    group.push(get_str(&mut rest)?.to_string());
                }
                Ok(ChangelogKey::Window {
                    goal_id,
                    start: Timestamp::from_nanos(start),
                    group,
                })
            }
            b'u' if rest.len() == 4 => Ok(ChangelogKey::Upstream(u32_at(rest).ok_or_else(bad)?)),
            b'm' if rest.is_empty() => Ok(ChangelogKey::Watermark),
            b'r' if rest.len() == 4 => Ok(ChangelogKey::RouterClock(u32_at(rest).ok_or_else(bad)?)),
            b'd' if rest.len() == 12 => Ok(ChangelogKey::DedupeBatch {
                upstream: u32_at(rest).ok_or_else(bad)?,
                batch: u64::from_be_bytes(rest[4..12].try_into().expect("8 bytes")),
            }),
            b'p' => {
                let part = u32_at(rest).ok_or_else(bad)?;
                let window = &rest[4..];
                // Only a window key inside (no nesting to recurse into).
                if window.first() != Some(&b'w') {
                    return Err(bad());
                }
                match Self::from_bytes(window)? {
                    ChangelogKey::Window { .. } => Ok(ChangelogKey::WindowPart {
                        window: window.to_vec(),
                        part,
                    }),
                    _ => Err(bad()),
                }
            }
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    #[test]
    fn dedupe_batches_decode_as_the_generated_message() {
        use crate::engine::DedupeMemory;
        use crate::model::Duration;
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
        use crate::engine::DedupeMemory;
        use crate::model::Duration;
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
            end: Timestamp::from_nanos(86_400_000_000_000),
            aggregate: Aggregate::Distinct(
                (0..n).map(|i| format!("account-{i:08}").into()).collect(),
            ),
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

    #[test]
    fn garbage_never_panics_the_batch_reader() {
        // Deterministic pseudo-random bytes: every input is read or refused with a reason.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..2_000usize {
            let bytes: Vec<u8> = (0..len % 97)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = read_batch(&bytes);
            let _ = ChangelogKey::from_bytes(&bytes);
            let _ = window_state_from_records(&bytes, |_| None);
        }
    }

    fn contribution<'a>(
        group: &[&'a str],
        event_id: &'a str,
        t: i64,
        delta: Delta<'a>,
    ) -> Contribution<'a> {
        Contribution {
            goal: 0,
            group: group.iter().copied().collect(),
            delta,
            event_id,
            event_time: Timestamp::from_nanos(t),
        }
    }

    fn sample() -> Vec<(&'static str, Contribution<'static>)> {
        vec![
            (
                "won",
                contribution(
                    &["EMEA", "Ana"],
                    "ev-1",
                    1_700_000_000_000_000_000,
                    Delta::Count,
                ),
            ),
            (
                "revenue",
                contribution(&[], "ev-2", -5, Delta::Number(Decimal::new(-105, 1))),
            ),
            (
                "accounts",
                contribution(&["é"], "ev-3", 0, Delta::Text(Cow::Borrowed("acct-1"))),
            ),
            (
                "rate",
                contribution(
                    &["x"],
                    "",
                    i64::MAX,
                    Delta::Ratio {
                        num: true,
                        den: false,
                    },
                ),
            ),
            (
                "rate",
                contribution(
                    &["x"],
                    "ev-5",
                    i64::MIN,
                    Delta::Ratio {
                        num: false,
                        den: false,
                    },
                ),
            ),
        ]
    }

    /// The hand-written encoder and reader agree with the generated protobuf code both ways.
    #[test]
    fn batches_match_the_generated_protobuf_code() {
        let mut w = BatchWriter::new(7);
        for (goal, c) in sample() {
            w.push(goal, &c);
        }
        assert_eq!(w.len(), 5);
        w.set_stream_time(Timestamp::from_nanos(42));
        w.set_idle();
        let bytes = w.finish();
        let generated = pb::RepartitionBatch::decode(bytes.as_slice()).unwrap();
        assert_eq!(generated.upstream, 7);
        assert_eq!(generated.stream_time, Some(42));
        assert!(generated.idle);
        assert_eq!(generated.contributions.len(), 5);
        for (record, (goal, c)) in generated.contributions.iter().zip(sample()) {
            assert_eq!(record.goal_id, goal);
            assert_eq!(
                record.group,
                c.group.iter().map(|g| g.to_string()).collect::<Vec<_>>()
            );
            assert_eq!(record.event_id, c.event_id);
            assert_eq!(record.event_time, c.event_time.as_nanos());
        }
        // And the generated encoding reads back through the borrowed reader.
        let reencoded = generated.encode_to_vec();
        let view = read_batch(&bytes).unwrap();
        let again = read_batch(&reencoded).unwrap();
        assert_eq!(view, again);
        assert_eq!(view.upstream, 7);
        assert_eq!(view.stream_time, Some(Timestamp::from_nanos(42)));
        assert!(view.idle);
        for (v, (goal, c)) in view.contributions.iter().zip(sample()) {
            assert_eq!(v.goal_id, goal);
            assert_eq!(v.group, c.group);
            assert_eq!(v.event_id, c.event_id);
            assert_eq!(v.event_time, c.event_time);
            assert_eq!(v.delta, c.delta);
        }
        let sentinel = pb::RepartitionBatch {
            upstream: u32::MAX,
            sentinel: 99,
            ..Default::default()
        };
        let sentinel = sentinel.encode_to_vec();
        let view = read_batch(&sentinel).unwrap();
        assert_eq!((view.upstream, view.sentinel), (u32::MAX, 99));
    }

    #[test]
    fn damaged_batches_are_errors_not_panics() {
        let mut w = BatchWriter::new(1);
        w.push("won", &sample()[0].1);
        let bytes = w.finish();
        for cut in 0..bytes.len() {
            // Every strict prefix either fails or reads fewer fields; never panics.
            let _ = read_batch(&bytes[..cut]);
        }
        assert!(read_batch(&bytes[..bytes.len() - 1]).is_err());
        // A contribution without a delta is refused.
        let bad = pb::RepartitionBatch {
            upstream: 1,
            contributions: vec![pb::ContributionRecord {
                goal_id: "won".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(read_batch(&bad.encode_to_vec()).is_err());
    }

    const PINNED: u64 = 16_048_211_455_552_563_759;

    #[test]
    fn partitioning_is_stable() {
        // Pinned: changing the hash would move every goal and group to another owner.
        assert_eq!(fnv1a(&[b"goal", b"East"]), PINNED);
        assert_eq!(
            owner_partition("goal", &["East"], 1_000) as u64,
            PINNED % 1_000,
            "streaming and slice hashing agree"
        );
        assert_ne!(
            owner_partition("g", &["a", "b"], 1_000),
            owner_partition("g", &["ab"], 1_000)
        );
    }
}
