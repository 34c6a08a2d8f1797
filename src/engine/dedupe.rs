//! Bounded memory of accepted event ids.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::hash::BuildHasher;

use hashbrown::hash_table::{Entry, HashTable};
use hashbrown::DefaultHashBuilder;

use crate::model::{Duration, Timestamp};

/// Ids remembered per input partition at most, by default (about 120 bytes each with a UUID-sized
/// id: some 600 MB when full).
pub const DEFAULT_DEDUPE_MAX_IDS: usize = 5_000_000;

/// Remembers each accepted event id with its `occurred_at` for `horizon` of stream time, and at
/// most `max_ids` of them.
///
/// An id is a duplicate while the remembered time is later than `stream_time - horizon`; entries
/// at or before that point are forgotten as stream time advances. Beyond `max_ids`, the oldest
/// entries (by `occurred_at`) are forgotten early, counted as evicted: every entry sharing the
/// oldest time at once, and from then on an id older than the newest time evicted is not
/// remembered at all. What is remembered is thus the ids of the latest times that fit in
/// `max_ids`, whatever the order they came in, so a memory rebuilt from a changelog of the same
/// entries holds the same ids.
#[derive(Debug, Clone)]
pub struct DedupeMemory {
    horizon: Duration,
    max_ids: usize,
    ids: HashTable<(IdKey, Timestamp)>,
    /// (occurred_at, id hash), oldest first. An entry re-remembered with a later time leaves its
    /// old item behind, ignored when it comes out.
    expiry: BinaryHeap<Reverse<(Timestamp, u64)>>,
    hasher: DefaultHashBuilder,
    /// Ids older than this are not remembered: the cap evicted a later time.
    floor: Option<Timestamp>,
    /// The last expiry cutoff: entries at or before it can no longer cause a duplicate.
    cutoff: Option<Timestamp>,
    /// Ids forgotten early because of `max_ids` (not counting those already past the horizon).
    evicted: u64,
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
    /// An empty memory of at most [`DEFAULT_DEDUPE_MAX_IDS`] ids.
    pub fn new(horizon: Duration) -> Self {
        Self::with_max_ids(horizon, DEFAULT_DEDUPE_MAX_IDS)
    }

    /// An empty memory of at most `max_ids` ids (at least 1).
    pub fn with_max_ids(horizon: Duration, max_ids: usize) -> Self {
        DedupeMemory {
            horizon,
            max_ids: max_ids.max(1),
            ids: HashTable::new(),
            expiry: BinaryHeap::new(),
            hasher: DefaultHashBuilder::default(),
            floor: None,
            cutoff: None,
            evicted: 0,
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
        if self.floor.is_some_and(|f| occurred_at < f) {
            // Older than what the cap already evicted: not remembered (but still checked).
            if self.is_duplicate(id, stream_time) {
                return true;
            }
            self.count_evicted(occurred_at);
            return false;
        }
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
            self.expiry.push(Reverse((occurred_at, hash)));
            if let Some(added) = self.added.as_mut() {
                added.push(id, occurred_at);
            }
            if self.ids.len() > self.max_ids {
                self.evict_oldest();
            }
        }
        false
    }

    /// Forgets entries that can no longer cause a duplicate at this stream time.
    pub fn expire(&mut self, stream_time: Timestamp) {
        let cutoff = stream_time.saturating_sub(self.horizon);
        self.cutoff = Some(self.cutoff.map_or(cutoff, |c| c.max(cutoff)));
        while let Some(&Reverse((t, hash))) = self.expiry.peek() {
            if t > cutoff {
                break;
            }
            self.expiry.pop();
            if let Ok(e) = self.ids.find_entry(hash, |(_, et)| *et <= cutoff) {
                e.remove();
            }
        }
    }

    /// Forgets every entry of the oldest time, until at most `max_ids` are left.
    fn evict_oldest(&mut self) {
        while self.ids.len() > self.max_ids {
            let Some(&Reverse((oldest, _))) = self.expiry.peek() else {
                return;
            };
            while let Some(&Reverse((t, hash))) = self.expiry.peek() {
                if t != oldest {
                    break;
                }
                self.expiry.pop();
                // An entry since re-remembered with a later time has another item: not this one.
                if let Ok(e) = self.ids.find_entry(hash, |(_, et)| *et == oldest) {
                    e.remove();
                    self.count_evicted(oldest);
                }
            }
            self.floor = Some(oldest.saturating_add(Duration::from_nanos(1)));
        }
    }

    fn count_evicted(&mut self, t: Timestamp) {
        if self.cutoff.is_none_or(|c| t > c) {
            self.evicted += 1;
        }
    }

    /// Ids forgotten early because of the cap on their number, so far.
    pub fn evicted(&self) -> u64 {
        self.evicted
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
    use proptest::prelude::*;

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

    #[test]
    fn the_cap_forgets_the_oldest_and_counts_them() {
        let mut d = DedupeMemory::with_max_ids(Duration::from_secs(1000), 3);
        for (i, id) in ["a", "b", "c", "d"].into_iter().enumerate() {
            let t = ts(i as i64 + 1);
            assert!(!d.check_and_remember(id, t, Some(t)));
        }
        assert_eq!(d.len(), 3);
        assert_eq!(d.evicted(), 1);
        assert!(!d.is_duplicate("a", Some(ts(4))), "the oldest is forgotten");
        for id in ["b", "c", "d"] {
            assert!(d.is_duplicate(id, Some(ts(4))), "{id}");
        }
        // Older than what was evicted: not remembered at all, and counted.
        assert!(!d.check_and_remember("e", ts(1), Some(ts(4))));
        assert!(!d.is_duplicate("e", Some(ts(4))));
        assert_eq!((d.len(), d.evicted()), (3, 2));
        // A duplicate stays one even when its redelivery is older than the floor.
        assert!(d.check_and_remember("b", ts(0), Some(ts(4))));
    }

    #[test]
    fn ids_of_the_oldest_time_are_forgotten_together() {
        let mut d = DedupeMemory::with_max_ids(Duration::from_secs(1000), 3);
        d.remember("x", ts(5));
        d.remember("y", ts(5));
        d.remember("z", ts(6));
        assert_eq!(d.evicted(), 0);
        d.remember("w", ts(7));
        assert_eq!(d.evicted(), 2);
        let ids: Vec<&str> = d.entries().into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, ["w", "z"]);
    }

    #[test]
    fn ids_past_the_horizon_are_not_counted_as_evicted() {
        let mut d = DedupeMemory::with_max_ids(Duration::from_secs(10), 2);
        d.expire(ts(20));
        // `a` is past the horizon (cutoff 10) as it comes: no duplicate either way, so the cap
        // forgetting it costs nothing.
        d.remember("a", ts(5));
        d.remember("b", ts(15));
        d.remember("c", ts(16));
        assert_eq!((d.len(), d.evicted()), (2, 0));
        d.remember("d", ts(17));
        assert_eq!((d.len(), d.evicted()), (2, 1));
    }

    #[test]
    fn out_of_order_ids_expire_in_time_order() {
        let mut d = DedupeMemory::new(Duration::from_secs(10));
        // 0..1000 in a scrambled order (7 is coprime with 1000).
        for i in 0..1000 {
            let t = (i * 7) % 1000;
            d.remember(&format!("e{t}"), ts(t));
        }
        d.expire(ts(999));
        let mut left: Vec<i64> = d
            .entries()
            .into_iter()
            .map(|(id, _)| id[1..].parse().unwrap())
            .collect();
        left.sort_unstable();
        assert_eq!(left, (990..1000).collect::<Vec<_>>());
    }

    /// A router's use of the memory: each event checked at the stream time before it, expiry as
    /// stream time advances; new entries taken at each commit into numbered batches, a batch
    /// dropped once its latest time is past the horizon (what the Kafka changelog keeps).
    struct Live {
        memory: DedupeMemory,
        stream_time: Option<Timestamp>,
        batches: Vec<AddedIds>,
    }

    impl Live {
        fn event(&mut self, id: &str, t: Timestamp) -> bool {
            let dup = self.memory.check_and_remember(id, t, self.stream_time);
            if !dup && self.stream_time.is_none_or(|st| t > st) {
                self.stream_time = Some(t);
                self.memory.expire(t);
            }
            dup
        }

        fn commit(&mut self) {
            self.batches.push(self.memory.take_added());
            if let Some(st) = self.stream_time {
                let cutoff = st.saturating_sub(self.memory.horizon());
                self.batches
                    .retain(|b| b.times().iter().any(|t| *t > cutoff));
            }
        }

        /// A memory rebuilt from the batches kept, as a restarted instance does.
        fn restored(&self, max_ids: usize) -> Live {
            let mut memory = DedupeMemory::with_max_ids(self.memory.horizon(), max_ids);
            memory.track_changes();
            let mut ids: Vec<(&str, Timestamp)> =
                self.batches.iter().flat_map(|b| b.iter()).collect();
            ids.sort_by_key(|(_, t)| *t);
            for (id, t) in ids {
                memory.remember(id, t);
            }
            memory.take_added();
            if let Some(st) = self.stream_time {
                memory.expire(st);
            }
            Live {
                memory,
                stream_time: self.stream_time,
                batches: self.batches.clone(),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Restored from its changelog at any commit, a capped memory finds the same duplicates
        /// as the one that kept running, whatever the order of the events.
        #[test]
        fn a_restored_memory_finds_the_same_duplicates(
            events in prop::collection::vec((0u8..24, 0i64..60), 1..160),
            max_ids in 1usize..10,
            horizon in 5i64..40,
            commit_every in 1usize..8,
            restart in 0usize..160,
        ) {
            let mut live = Live {
                memory: DedupeMemory::with_max_ids(Duration::from_secs(horizon), max_ids),
                stream_time: None,
                batches: Vec::new(),
            };
            live.memory.track_changes();
            let restart = (restart / commit_every) * commit_every;
            let mut restored: Option<Live> = None;
            for (i, (id, t)) in events.iter().enumerate() {
                if i % commit_every == 0 {
                    live.commit();
                    if let Some(r) = restored.as_mut() {
                        r.commit();
                    }
                    if i == restart {
                        restored = Some(live.restored(max_ids));
                    }
                }
                let id = format!("id{id}");
                let dup = live.event(&id, ts(*t));
                if let Some(r) = restored.as_mut() {
                    prop_assert_eq!(r.event(&id, ts(*t)), dup, "event {} ({}, {})", i, id, t);
                }
                prop_assert!(live.memory.len() <= max_ids);
            }
        }
    }
}
