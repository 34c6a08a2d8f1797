//! Window states in the changelog: one record, or a head and parts when too large for one.

use prost::Message;
use rust_decimal::Decimal;

use super::pacing::{pacing_from_pb, pacing_to_pb};
use super::proto::decimal_from_bytes;
use super::{invalid, pb, ChangelogKey, WireError};
use crate::aggregate::Aggregate;
use crate::engine::WindowState;
use crate::model::Timestamp;

/// Encodes a window state.
pub fn window_state_to_bytes(ws: &WindowState) -> Vec<u8> {
    pb::WindowStateRecord {
        end: ws.end.as_nanos(),
        reached: ws.reached,
        breached: ws.breached,
        aggregate: Some(aggregate_to_pb(&ws.aggregate)),
        parts: 0,
        total_bytes: 0,
        pacing: ws.pacing.as_deref().map(|p| Box::new(pacing_to_pb(p))),
        last_event: ws.last_event.map(Timestamp::as_nanos),
    }
    .encode_to_vec()
}

/// Encodes an aggregate as the fields of a `WindowStateRecord`.
pub(super) fn aggregate_to_pb(a: &Aggregate) -> pb::window_state_record::Aggregate {
    use pb::window_state_record::Aggregate as A;
    let d = |x: &Decimal| x.serialize().to_vec();
    match a {
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
    }
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

fn window_state_from_record(r: pb::WindowStateRecord) -> Result<WindowState, WireError> {
    let aggregate = aggregate_from_pb(r.aggregate.as_ref())?;
    let pacing = match r.pacing.as_deref() {
        Some(p) => Some(Box::new(pacing_from_pb(p, &aggregate)?)),
        None => None,
    };
    Ok(WindowState {
        pacing,
        end: Timestamp::from_nanos(r.end),
        aggregate,
        reached: r.reached,
        breached: r.breached,
        last_event: r.last_event.map(Timestamp::from_nanos),
    })
}

/// Decodes the aggregate fields of a `WindowStateRecord`.
pub(super) fn aggregate_from_pb(
    a: Option<&pb::window_state_record::Aggregate>,
) -> Result<Aggregate, WireError> {
    use pb::window_state_record::Aggregate as A;
    const W: &str = "window state";
    let opt = |o: &pb::OptDecimal| {
        o.value
            .as_deref()
            .map(|b| decimal_from_bytes(W, b))
            .transpose()
    };
    Ok(match a {
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
    })
}
