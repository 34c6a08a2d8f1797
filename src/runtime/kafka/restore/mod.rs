//! Restoring state from the changelog: reading partitions back ([`read_partitions`]) and decoding
//! their records, typed by key, into what the owner and routers restore.

mod read;

use std::collections::{BTreeMap, HashMap};

use prost::Message;

pub use read::read_partitions;

use super::wire::{self, pb, ChangelogKey, WireError};
use crate::engine::WindowState;
use crate::model::Timestamp;

/// The latest value of a changelog key, and its offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Latest {
    /// The record's offset.
    pub offset: i64,
    /// Its value.
    pub value: Vec<u8>,
}

/// The latest value of every key of a changelog partition (tombstoned keys removed).
pub type PartitionState = HashMap<Vec<u8>, Latest>;

/// A restored open window.
#[derive(Clone, Debug, PartialEq)]
pub struct RestoredWindow {
    /// Its changelog key.
    pub key: Vec<u8>,
    /// The goal's id.
    pub goal_id: String,
    /// The window's start.
    pub start: Timestamp,
    /// The group's values.
    pub group: Vec<String>,
    /// Its state.
    pub state: WindowState,
    /// The number of parts its state is stored in (0: one record).
    pub parts: u32,
}

/// A router's restored state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RestoredRouter {
    /// Its stream time.
    pub stream_time: Option<Timestamp>,
    /// The smallest event time it accepted (`None` in a clock of an older version: unknown).
    pub earliest: Option<Timestamp>,
    /// The next dedupe batch number to write.
    pub next_batch: u64,
    /// Dedupe batches in the changelog: number -> latest time in it.
    pub batches: BTreeMap<u64, Timestamp>,
    /// The remembered event ids, by time.
    pub ids: Vec<(String, Timestamp)>,
}

/// An owner's restored view of one upstream partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestoredUpstream {
    /// The upstream (input) partition.
    pub partition: u32,
    /// Its stream time.
    pub stream_time: Option<Timestamp>,
    /// Whether it is idle.
    pub idle: bool,
    /// The earliest event time it reported (`None` in a record of an older version: unknown).
    pub earliest: Option<Timestamp>,
}

/// A changelog record that cannot be read back: skipped, and dead-lettered with its origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    /// Its offset.
    pub offset: i64,
    /// Its key.
    pub key: Vec<u8>,
    /// Its value.
    pub value: Vec<u8>,
    /// Why it cannot be read.
    pub reason: String,
}

/// What a changelog partition holds for the roles an instance has in it: the owner of its
/// repartition partition, and the routers of some input partitions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Restored {
    /// The owner's open windows.
    pub windows: Vec<RestoredWindow>,
    /// The owner's view of each upstream partition.
    pub upstreams: Vec<RestoredUpstream>,
    /// The owner's watermark.
    pub watermark: Option<Timestamp>,
    /// The routers asked for that have state here.
    pub routers: BTreeMap<u32, RestoredRouter>,
    /// Records that cannot be read, by offset: those of the owner (and those whose key is
    /// unreadable, or names an upstream partition that does not exist) when `owner` is set,
    /// those of the routers asked for.
    pub unreadable: Vec<Unreadable>,
    /// Keys of window parts that belong to no restored window (their head was unreadable or is
    /// gone), when `owner` is set: left over, to be tombstoned.
    pub orphan_parts: Vec<Vec<u8>>,
}

/// Decodes a changelog partition's state for the owner (when `owner`) and the `routers` asked
/// for, with `upstreams` input partitions in all. A record that cannot be read is listed in
/// [`Restored::unreadable`] and otherwise skipped: one bad record does not stop a restore.
pub fn decode_partition(
    state: &PartitionState,
    owner: bool,
    routers: &[u32],
    upstreams: u32,
) -> Restored {
    let mut out = Restored::default();
    for (key, latest) in state {
        let roles = Roles {
            owner,
            routers,
            upstreams,
        };
        let claimed = decode_entry(state, key, &latest.value, roles, &mut out);
        match claimed {
            Ok(()) => {}
            Err((mine, e)) if mine => out.unreadable.push(Unreadable {
                offset: latest.offset,
                key: key.clone(),
                value: latest.value.clone(),
                reason: e.to_string(),
            }),
            Err(_) => {}
        }
    }
    out.unreadable.sort_by_key(|u| u.offset);
    if owner {
        out.orphan_parts = orphan_parts(state, &out.windows);
    }
    for router in out.routers.values_mut() {
        router
            .ids
            .sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    }
    out
}

/// The keys of window parts in `state` that no window in `windows` uses, in key order.
fn orphan_parts(state: &PartitionState, windows: &[RestoredWindow]) -> Vec<Vec<u8>> {
    let used: HashMap<&[u8], u32> = windows
        .iter()
        .filter(|w| w.parts > 0)
        .map(|w| (w.key.as_slice(), w.parts))
        .collect();
    let mut orphans: Vec<Vec<u8>> = state
        .keys()
        .filter(|key| key.first() == Some(&b'p'))
        .filter(|key| match ChangelogKey::from_bytes(key) {
            Ok(ChangelogKey::WindowPart { window, part }) => {
                used.get(window.as_slice()).is_none_or(|&n| part >= n)
            }
            _ => false,
        })
        .cloned()
        .collect();
    orphans.sort();
    orphans
}

/// The roles a caller restores from a partition: the owner (when `owner`), the `routers` asked
/// for, out of `upstreams` input partitions in all.
#[derive(Clone, Copy)]
struct Roles<'a> {
    owner: bool,
    routers: &'a [u32],
    upstreams: u32,
}

/// A record that cannot be read, and whether the caller is the one to report it.
type Unclaimed = (bool, WireError);

/// Decodes a record's value as the protobuf message `M`.
fn record<M: Message + Default>(what: &'static str, value: &[u8]) -> Result<M, WireError> {
    M::decode(value).map_err(|cause| WireError::Decode { what, cause })
}

/// An upstream index read from a key, if the input has that partition.
fn upstream_in_range(what: &'static str, up: u32, upstreams: u32) -> Result<u32, WireError> {
    if up < upstreams {
        return Ok(up);
    }
    Err(WireError::Invalid {
        what,
        detail: format!(
            "upstream partition {up} does not exist: the input has {upstreams} partitions"
        ),
    })
}

/// Decodes one record into `out` if it belongs to a role asked for. An error comes with whether
/// the record is this caller's to report.
fn decode_entry(
    state: &PartitionState,
    key: &[u8],
    value: &[u8],
    roles: Roles<'_>,
    out: &mut Restored,
) -> Result<(), Unclaimed> {
    let decoded = ChangelogKey::from_bytes(key).map_err(|e| (roles.owner, e))?;
    let mine = |e| (true, e);
    match decoded {
        ChangelogKey::Window {
            goal_id,
            start,
            group,
        } if roles.owner => {
            let part = |i: u32| {
                state
                    .get(&ChangelogKey::window_part(key, i))
                    .map(|l| l.value.as_slice())
            };
            let (ws, parts) = wire::window_state_from_records(value, part).map_err(mine)?;
            out.windows.push(RestoredWindow {
                key: key.to_vec(),
                goal_id,
                start,
                group,
                state: ws,
                parts,
            });
        }
        ChangelogKey::Upstream(up) if roles.owner => {
            let up = upstream_in_range("upstream", up, roles.upstreams).map_err(mine)?;
            let r: pb::UpstreamRecord = record("upstream", value).map_err(mine)?;
            out.upstreams.push(RestoredUpstream {
                partition: up,
                stream_time: r.stream_time.map(Timestamp::from_nanos),
                idle: r.idle,
                earliest: r.earliest.map(Timestamp::from_nanos),
            });
        }
        ChangelogKey::Watermark if roles.owner => {
            let r: pb::WatermarkRecord = record("watermark", value).map_err(mine)?;
            out.watermark = Some(Timestamp::from_nanos(r.watermark));
        }
        ChangelogKey::RouterClock(up) | ChangelogKey::DedupeBatch { upstream: up, .. } => {
            upstream_in_range("router state", up, roles.upstreams).map_err(|e| (roles.owner, e))?;
            if roles.routers.contains(&up) {
                decode_router_entry(decoded, value, out).map_err(mine)?;
            }
        }
        // Parts are read with their window; other roles' records are theirs.
        _ => {}
    }
    Ok(())
}

/// Decodes a router's record (its clock or a dedupe batch) into `out`.
fn decode_router_entry(
    key: ChangelogKey,
    value: &[u8],
    out: &mut Restored,
) -> Result<(), WireError> {
    match key {
        ChangelogKey::RouterClock(up) => {
            let r: pb::RouterClockRecord = record("router clock", value)?;
            let router = out.routers.entry(up).or_default();
            router.stream_time = r.stream_time.map(Timestamp::from_nanos);
            router.earliest = r.earliest.map(Timestamp::from_nanos);
            router.next_batch = router.next_batch.max(r.next_batch);
        }
        ChangelogKey::DedupeBatch { upstream, batch } => {
            let r: pb::DedupeBatchRecord = record("dedupe batch", value)?;
            let router = out.routers.entry(upstream).or_default();
            let mut max = Timestamp::MIN;
            for (id, t) in r.ids.into_iter().zip(r.times) {
                let t = Timestamp::from_nanos(t);
                max = max.max(t);
                router.ids.push((id, t));
            }
            router.batches.insert(batch, max);
            router.next_batch = router.next_batch.max(batch + 1);
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests;
