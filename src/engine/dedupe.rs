//! Bounded memory of accepted event ids.

use std::collections::VecDeque;
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
    ids: HashTable<(Box<str>, Timestamp)>,
    /// (occurred_at, id hash), ascending by time. Events arrive mostly in order, so inserts land at
    /// or near the back.
    expiry: VecDeque<(Timestamp, u64)>,
    hasher: DefaultHashBuilder,
    /// Entries recorded since the last [`DedupeMemory::take_added`], when tracking.
    added: Option<Vec<(Box<str>, Timestamp)>>,
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
            .find(hash, |(k, _)| &**k == id)
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
        let schedule =
            match self
                .ids
                .entry(hash, |(k, _)| &**k == id, |(k, _)| hasher.hash_one(&**k))
            {
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
                    e.insert((Box::from(id), occurred_at));
                    true
                }
            };
        if schedule {
            self.push_expiry(occurred_at, hash);
            if let Some(added) = self.added.as_mut() {
                added.push((Box::from(id), occurred_at));
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
        self.added.get_or_insert_with(Vec::new);
    }

    /// Entries recorded since the last call (empty without tracking).
    pub fn take_added(&mut self) -> Vec<(Box<str>, Timestamp)> {
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
        let mut v: Vec<(&str, Timestamp)> = self.ids.iter().map(|(k, t)| (&**k, *t)).collect();
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
