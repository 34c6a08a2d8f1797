//! Bounded memory of accepted event ids.

use std::collections::VecDeque;
use std::fmt;
use std::hash::BuildHasher;

use hashbrown::hash_table::{Entry, HashTable};
use hashbrown::DefaultHashBuilder;

use crate::model::{Duration, Timestamp};

/// Remembers each accepted event id with its `occurred_at` for `horizon` of stream time.
///
/// An id is a duplicate while the remembered time is later than `stream_time - horizon`; entries
/// at or before that point are forgotten as stream time advances, so memory stays bounded by the
/// ids seen within one horizon.
#[derive(Debug, Clone)]
pub struct DedupeMemory {
    horizon: Duration,
    ids: HashTable<(IdKey, Timestamp)>,
    /// (occurred_at, id hash), ascending by time. Events arrive mostly in order, so inserts land at
    /// or near the back.
    expiry: VecDeque<(Timestamp, u64)>,
    hasher: DefaultHashBuilder,
    /// Entries recorded since the last [`DedupeMemory::take_added`], when tracking.
    added: Option<AddedIds>,
}

/// Bytes of an id kept inline in [`IdKey`]: a UUID (36) fits.
const INLINE_ID: usize = 38;

/// A remembered event id: inline when short (no allocation per event), else on the heap.
#[derive(Clone)]
enum IdKey {
    Inline { len: u8, bytes: [u8; INLINE_ID] },
    Heap(Box<str>),
}

impl IdKey {
    fn new(id: &str) -> Self {
        if id.len() <= INLINE_ID {
            let mut bytes = [0u8; INLINE_ID];
            bytes[..id.len()].copy_from_slice(id.as_bytes());
            IdKey::Inline {
                len: id.len() as u8,
                bytes,
            }
        } else {
            IdKey::Heap(Box::from(id))
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            IdKey::Inline { len, bytes } => &bytes[..*len as usize],
            IdKey::Heap(s) => s.as_bytes(),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Built from a `&str` and cut at its length, so always UTF-8.
            IdKey::Inline { .. } => {
                std::str::from_utf8(self.as_bytes()).expect("an inline id is a whole &str")
            }
            IdKey::Heap(s) => s,
        }
    }
}

impl fmt::Debug for IdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Dedupe entries recorded since the last take, for a changelog: the ids in one buffer (no
/// allocation per entry).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddedIds {
    text: String,
    ends: Vec<u32>,
    times: Vec<Timestamp>,
}

impl AddedIds {
    fn push(&mut self, id: &str, t: Timestamp) {
        // Taken at every commit, so far below 4 GiB of ids.
        debug_assert!(self.text.len() + id.len() <= u32::MAX as usize);
        self.text.push_str(id);
        self.ends.push(self.text.len() as u32);
        self.times.push(t);
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// The times, in the order recorded.
    pub fn times(&self) -> &[Timestamp] {
        &self.times
    }

    /// The `i`th id recorded.
    pub fn id(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start as usize..self.ends[i] as usize]
    }

    /// The ids, in the order recorded.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.ends.iter().enumerate().map(|(i, &end)| {
            let start = if i == 0 { 0 } else { self.ends[i - 1] };
            &self.text[start as usize..end as usize]
        })
    }

    /// The (id, time) entries, in the order recorded.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Timestamp)> + '_ {
        self.ids().zip(self.times.iter().copied())
    }
}

impl DedupeMemory {
    /// An empty memory.
    pub fn new(horizon: Duration) -> Self {
        DedupeMemory {
            horizon,
            ids: HashTable::new(),
            expiry: VecDeque::new(),
            hasher: DefaultHashBuilder::default(),
            added: None,
        }
    }

    /// Whether `id` was accepted with an `occurred_at` later than `stream_time - horizon`.
    pub fn is_duplicate(&self, id: &str, stream_time: Option<Timestamp>) -> bool {
        let Some(now) = stream_time else {
            return false;
        };
        let cutoff = now.saturating_sub(self.horizon);
        let hash = self.hasher.hash_one(id);
        self.ids
            .find(hash, |(k, _)| k.as_bytes() == id.as_bytes())
            .is_some_and(|(_, t)| *t > cutoff)
    }

    /// Records an accepted event.
    pub fn remember(&mut self, id: &str, occurred_at: Timestamp) {
        self.check_and_remember(id, occurred_at, None);
    }

    /// One probe for both: `true` if `id` is a duplicate at `stream_time` (nothing changes);
    /// otherwise records it with `occurred_at` and returns `false`.
    pub fn check_and_remember(
        &mut self,
        id: &str,
        occurred_at: Timestamp,
        stream_time: Option<Timestamp>,
    ) -> bool {
        let cutoff = stream_time.map(|now| now.saturating_sub(self.horizon));
        let hash = self.hasher.hash_one(id);
        let hasher = &self.hasher;
        let schedule = match self.ids.entry(
            hash,
            |(k, _)| k.as_bytes() == id.as_bytes(),
            |(k, _)| hasher.hash_one(k.as_str()),
        ) {
            Entry::Occupied(mut e) => {
                let t = &mut e.get_mut().1;
                if cutoff.is_some_and(|c| *t > c) {
                    return true;
                }
                let later = occurred_at > *t;
                if later {
                    *t = occurred_at;
                }
                later
            }
            Entry::Vacant(e) => {
                e.insert((IdKey::new(id), occurred_at));
                true
            }
        };
        if schedule {
            self.push_expiry(occurred_at, hash);
            if let Some(added) = self.added.as_mut() {
                added.push(id, occurred_at);
            }
        }
        false
    }

    /// Forgets entries that can no longer cause a duplicate at this stream time.
    pub fn expire(&mut self, stream_time: Timestamp) {
        let cutoff = stream_time.saturating_sub(self.horizon);
        while let Some((t, hash)) = self.expiry.front().copied() {
            if t > cutoff {
                break;
            }
            self.expiry.pop_front();
            if let Ok(e) = self.ids.find_entry(hash, |(_, et)| *et <= cutoff) {
                e.remove();
            }
        }
    }

    fn push_expiry(&mut self, t: Timestamp, hash: u64) {
        if self.expiry.back().is_none_or(|(last, _)| *last <= t) {
            self.expiry.push_back((t, hash));
        } else {
            let at = self.expiry.partition_point(|(x, _)| *x <= t);
            self.expiry.insert(at, (t, hash));
        }
    }

    /// Turns on tracking of new entries, for a changelog.
    pub fn track_changes(&mut self) {
        self.added.get_or_insert_with(AddedIds::default);
    }

    /// Entries recorded since the last call (empty without tracking).
    pub fn take_added(&mut self) -> AddedIds {
        self.added.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// The horizon.
    pub fn horizon(&self) -> Duration {
        self.horizon
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The remembered ids and times, sorted by id (for snapshots).
    pub fn entries(&self) -> Vec<(&str, Timestamp)> {
        let mut v: Vec<(&str, Timestamp)> =
            self.ids.iter().map(|(k, t)| (k.as_str(), *t)).collect();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_nanos(s * 1_000_000_000)
    }

    #[test]
    fn duplicates_within_horizon_only() {
        let mut d = DedupeMemory::new(Duration::from_secs(100));
        assert!(!d.is_duplicate("a", None));
        d.remember("a", ts(1000));
        assert!(d.is_duplicate("a", Some(ts(1000))));
        assert!(d.is_duplicate("a", Some(ts(1099))));
        assert!(
            !d.is_duplicate("a", Some(ts(1100))),
            "1000 is not later than 1100 - 100"
        );
        assert!(!d.is_duplicate("b", Some(ts(1000))));
    }

    #[test]
    fn expiry_bounds_memory() {
        let mut d = DedupeMemory::new(Duration::from_secs(10));
        for i in 0..1000 {
            d.remember(&format!("e{i}"), ts(i));
            d.expire(ts(i));
        }
        assert!(d.len() <= 11, "{}", d.len());
        assert!(d.is_duplicate("e999", Some(ts(999))));
        assert!(!d.is_duplicate("e10", Some(ts(999))));
    }

    #[test]
    fn ids_of_any_length_are_told_apart() {
        // Ids up to INLINE_ID bytes are kept inline, longer ones on the heap; both must compare
        // by their whole text, including ids that share the first INLINE_ID bytes and ids whose
        // last (multi-byte) character ends past the limit.
        let base = "e".repeat(INLINE_ID - 1);
        let ids = [
            String::new(),
            "a".to_string(),
            base.clone(),
            format!("{base}x"),
            format!("{base}y"),
            format!("{base}xz"),
            format!("{base}é"),
            "é".repeat(INLINE_ID),
            "0123e4567-e89b-12d3-a456-426614174000".to_string(),
        ];
        let mut d = DedupeMemory::new(Duration::from_secs(100));
        d.track_changes();
        for (i, id) in ids.iter().enumerate() {
            assert!(
                !d.check_and_remember(id, ts(i as i64), Some(ts(0))),
                "{id:?} is new"
            );
        }
        for id in &ids {
            assert!(d.is_duplicate(id, Some(ts(50))), "{id:?} is remembered");
            assert!(
                d.check_and_remember(id, ts(60), Some(ts(50))),
                "{id:?} is a duplicate"
            );
        }
        assert!(!d.is_duplicate(&format!("{base}w"), Some(ts(50))));
        assert!(!d.is_duplicate(&format!("{base}xy"), Some(ts(50))));
        let mut sorted: Vec<&str> = ids.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        let entries: Vec<&str> = d.entries().into_iter().map(|(id, _)| id).collect();
        assert_eq!(entries, sorted);
        let added = d.take_added();
        let logged: Vec<(&str, Timestamp)> = added.iter().collect();
        let expected: Vec<(&str, Timestamp)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), ts(i as i64)))
            .collect();
        assert_eq!(logged, expected);
        assert_eq!(
            added.times().iter().copied().max(),
            Some(ts(ids.len() as i64 - 1))
        );
    }

    #[test]
    fn re_remembering_extends_the_entry() {
        let mut d = DedupeMemory::new(Duration::from_secs(10));
        d.remember("a", ts(0));
        d.remember("a", ts(20));
        d.expire(ts(15));
        assert!(d.is_duplicate("a", Some(ts(25))));
        d.expire(ts(30));
        assert!(d.is_empty());
    }
}
