//! Changelog keys: windows, parts of split window states, upstream and router clocks, watermark,
//! dedupe batches.

use super::{invalid, WireError};
use crate::engine::GroupKey;
use crate::model::Timestamp;

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
    /// A part of a window state too large for one record (see
    /// [`window_state_records`](super::window_state_records)).
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
