//! Records of the internal topics: repartition batches and changelog keys and values.

use std::borrow::Cow;

use prost::Message;
use rust_decimal::Decimal;
use thiserror::Error;

use crate::aggregate::{Aggregate, Delta};
use crate::engine::{GroupKey, WindowState};
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
    #[error("cannot decode {what}: {source}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The protobuf error.
        source: prost::DecodeError,
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
    let mut h = Fnv::new();
    h.part(goal_id.as_bytes());
    for g in group {
        h.part(g.as_bytes());
    }
    (h.0 % u64::from(partitions.max(1))) as u32
}

/// Encodes a delta into a contribution record.
pub fn delta_to_pb(delta: &Delta<'_>) -> pb::contribution_record::Delta {
    use pb::contribution_record::Delta as D;
    match delta {
        Delta::Count => D::Count(true),
        Delta::Number(d) => D::Number(d.serialize().to_vec()),
        Delta::Text(t) => D::Text(t.to_string()),
        Delta::Ratio { num, den } => D::Ratio(pb::RatioDelta {
            num: *num,
            den: *den,
        }),
    }
}

fn decimal_from_bytes(what: &'static str, b: &[u8]) -> Result<Decimal, WireError> {
    let arr: [u8; 16] = b
        .try_into()
        .map_err(|_| invalid(what, format!("decimal of {} bytes, expected 16", b.len())))?;
    Ok(Decimal::deserialize(arr))
}

/// Decodes the delta of a contribution record.
pub fn delta_from_pb(d: &Option<pb::contribution_record::Delta>) -> Result<Delta<'_>, WireError> {
    use pb::contribution_record::Delta as D;
    Ok(match d {
        None => return Err(invalid("contribution", "no delta")),
        Some(D::Count(_)) => Delta::Count,
        Some(D::Number(b)) => Delta::Number(decimal_from_bytes("contribution", b)?),
        Some(D::Text(t)) => Delta::Text(Cow::Borrowed(t)),
        Some(D::Ratio(r)) => Delta::Ratio {
            num: r.num,
            den: r.den,
        },
    })
}

/// Decodes a repartition batch.
pub fn decode_batch(bytes: &[u8]) -> Result<pb::RepartitionBatch, WireError> {
    pb::RepartitionBatch::decode(bytes).map_err(|source| WireError::Decode {
        what: "repartition batch",
        source,
    })
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
    }
    .encode_to_vec()
}

/// Decodes a window state.
pub fn window_state_from_bytes(bytes: &[u8]) -> Result<WindowState, WireError> {
    use pb::window_state_record::Aggregate as A;
    const W: &str = "window state";
    let r = pb::WindowStateRecord::decode(bytes)
        .map_err(|source| WireError::Decode { what: W, source })?;
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
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    prost::encoding::encode_varint(s.len() as u64, out);
    out.extend_from_slice(s.as_bytes());
}

fn get_str<'a>(b: &mut &'a [u8]) -> Result<&'a str, WireError> {
    let len = prost::encoding::decode_varint(b).map_err(|source| WireError::Decode {
        what: "changelog key",
        source,
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
        }
    }

    /// Decodes a key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        let bad = || invalid("changelog key", format!("unknown key {bytes:?}"));
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
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

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

    #[test]
    fn deltas_round_trip() {
        for d in [
            Delta::Count,
            Delta::Number(Decimal::new(105, 1)),
            Delta::Text(Cow::Borrowed("acct-1")),
            Delta::Ratio {
                num: true,
                den: false,
            },
        ] {
            let pb = Some(delta_to_pb(&d));
            assert_eq!(delta_from_pb(&pb).unwrap(), d);
        }
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
