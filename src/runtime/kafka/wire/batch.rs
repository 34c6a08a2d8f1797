//! Repartition batches: written as they grow, read without copying their strings.

use std::borrow::Cow;

use prost::encoding::{encode_varint, encoded_len_varint};

use super::proto::{
    bytes_field_len, decimal_from_bytes, key, put_bytes_field, put_key, read_bytes, read_fields,
    read_str, read_varint, LEN, VARINT,
};
use super::{invalid, WireError};
use crate::aggregate::Delta;
use crate::engine::{Contribution, GroupValues};
use crate::model::Timestamp;

/// A repartition batch being built, encoded as it grows: the bytes are a `RepartitionBatch`
/// (internal.proto), written without building the generated structs (no allocation per
/// contribution).
#[derive(Debug, Clone)]
pub struct BatchWriter {
    buf: Vec<u8>,
    contributions: usize,
    stream_time: Option<i64>,
    earliest: Option<i64>,
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
            earliest: None,
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

    /// Sets the upstream's earliest accepted event time, sent with its stream time.
    pub fn set_earliest(&mut self, t: Timestamp) {
        self.earliest = Some(t.as_nanos());
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
        if let Some(t) = self.earliest {
            put_key(6, VARINT, &mut self.buf);
            encode_varint(t as u64, &mut self.buf);
        }
        self.buf
    }
}

/// One contribution of a repartition batch, borrowing its strings from the record.
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
    /// The upstream's earliest accepted event time; `None` in a record of an older version
    /// (unknown: read as `stream_time`).
    pub earliest: Option<Timestamp>,
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
            k if k == key(6, VARINT) => {
                batch.earliest = Some(Timestamp::from_nanos(read_varint(WHAT, b)? as i64))
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(batch)
}
