//! Commit tracking: which offset of each attainment partition every sink has finished, so that
//! offsets are committed only up to the lowest one. Pure: no Kafka, no clock.

use std::collections::{BTreeMap, VecDeque};

/// One assigned partition.
#[derive(Debug)]
struct Part {
    /// Distinguishes this assignment from an earlier one of the same partition: reports of
    /// batches sent before a revoke are ignored.
    epoch: u64,
    /// The offset after the last record read (and dispatched or dead-lettered); `None`: none yet.
    read_to: Option<i64>,
    /// Per sink, the batches sent and not yet finished: (first offset, offset after the last).
    open: Vec<VecDeque<(i64, i64)>>,
    /// The offset last committed (or found committed); `None`: none yet.
    committed: Option<i64>,
}

/// The commit tracker of one `goalpost notify` instance.
#[derive(Debug)]
pub struct Tracker {
    sinks: usize,
    next_epoch: u64,
    parts: BTreeMap<i32, Part>,
}

impl Tracker {
    /// A tracker for `sinks` sinks, with no partition assigned.
    pub fn new(sinks: usize) -> Tracker {
        Tracker {
            sinks,
            next_epoch: 1,
            parts: BTreeMap::new(),
        }
    }

    /// `partition` is assigned; returns its epoch.
    pub fn assign(&mut self, partition: i32) -> u64 {
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        self.parts.insert(
            partition,
            Part {
                epoch,
                read_to: None,
                open: vec![VecDeque::new(); self.sinks],
                committed: None,
            },
        );
        epoch
    }

    /// `partition` is revoked: forget it (late reports of its batches are ignored).
    pub fn revoke(&mut self, partition: i32) {
        self.parts.remove(&partition);
    }

    /// The epoch of an assigned partition.
    pub fn epoch(&self, partition: i32) -> Option<u64> {
        self.parts.get(&partition).map(|p| p.epoch)
    }

    /// A record at `offset` was read and needs nothing from any sink (dead-lettered as
    /// unreadable).
    pub fn skipped(&mut self, partition: i32, offset: i64) {
        if let Some(p) = self.parts.get_mut(&partition) {
            p.read_to = Some(offset + 1);
        }
    }

    /// The consumer's position in `partition` is `offset`, with every record before it read
    /// and taken here (dispatched or skipped): what lies between the last record and `offset` is
    /// transaction markers, which a commit may step over, so that the group's lag reaches 0.
    pub fn read_past(&mut self, partition: i32, offset: i64) {
        if let Some(p) = self.parts.get_mut(&partition) {
            p.read_to = Some(p.read_to.map_or(offset, |r| r.max(offset)));
        }
    }

    /// The records `first..=last` were sent to every sink as one batch.
    pub fn sent(&mut self, partition: i32, first: i64, last: i64) {
        if let Some(p) = self.parts.get_mut(&partition) {
            for q in &mut p.open {
                q.push_back((first, last + 1));
            }
            p.read_to = Some(last + 1);
        }
    }

    /// `sink` finished (delivered or gave up) the oldest open batch of `partition` sent in
    /// `epoch`. Returns whether the report counts (the partition is still assigned in `epoch`).
    pub fn finished(&mut self, sink: usize, partition: i32, epoch: u64) -> bool {
        match self.parts.get_mut(&partition) {
            Some(p) if p.epoch == epoch => {
                p.open[sink].pop_front();
                true
            }
            _ => false,
        }
    }

    /// The offset that may be committed for `partition`: the first offset some sink has not
    /// finished, or (all finished) the offset after the last record read.
    fn committable(p: &Part) -> Option<i64> {
        p.open
            .iter()
            .filter_map(|q| q.front().map(|&(first, _)| first))
            .min()
            .or(p.read_to)
    }

    /// The offsets to commit now: partitions whose committable offset moved since the last
    /// commit (see [`Tracker::committed`]). `only`: just these partitions.
    pub fn to_commit(&self, only: Option<&[i32]>) -> Vec<(i32, i64)> {
        self.parts
            .iter()
            .filter(|(k, _)| only.is_none_or(|o| o.contains(k)))
            .filter_map(|(&k, p)| {
                let c = Self::committable(p)?;
                (p.committed != Some(c)).then_some((k, c))
            })
            .collect()
    }

    /// The offsets were committed.
    pub fn committed(&mut self, offsets: &[(i32, i64)]) {
        for &(k, o) in offsets {
            if let Some(p) = self.parts.get_mut(&k) {
                p.committed = Some(o);
            }
        }
    }

    /// Whether every sink finished every batch sent.
    pub fn idle(&self) -> bool {
        self.parts
            .values()
            .all(|p| p.open.iter().all(VecDeque::is_empty))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_up_to_the_slowest_sink() {
        let mut t = Tracker::new(2);
        let e = t.assign(0);
        assert!(t.to_commit(None).is_empty());
        t.sent(0, 10, 14);
        t.sent(0, 15, 19);
        assert_eq!(t.to_commit(None), vec![(0, 10)]);
        assert!(t.finished(0, 0, e));
        assert!(t.finished(0, 0, e));
        assert_eq!(
            t.to_commit(None),
            vec![(0, 10)],
            "sink 1 has finished nothing"
        );
        assert!(t.finished(1, 0, e));
        assert_eq!(t.to_commit(None), vec![(0, 15)]);
        t.committed(&[(0, 15)]);
        assert!(t.to_commit(None).is_empty(), "nothing new");
        assert!(t.finished(1, 0, e));
        assert!(t.idle());
        assert_eq!(t.to_commit(None), vec![(0, 20)]);
    }

    #[test]
    fn skipped_records_move_the_offset_once_earlier_batches_finish() {
        let mut t = Tracker::new(1);
        let e = t.assign(3);
        t.sent(3, 0, 0);
        t.skipped(3, 1);
        assert_eq!(t.to_commit(None), vec![(3, 0)]);
        t.finished(0, 3, e);
        assert_eq!(t.to_commit(None), vec![(3, 2)]);
    }

    #[test]
    fn the_position_past_transaction_markers_is_committed_once_all_before_it_finished() {
        let mut t = Tracker::new(1);
        let e = t.assign(0);
        t.sent(0, 0, 2);
        t.read_past(0, 4); // offset 3: the commit marker
        assert_eq!(t.to_commit(None), [(0, 0)]);
        t.finished(0, 0, e);
        assert_eq!(t.to_commit(None), [(0, 4)]);
        t.read_past(0, 1); // never back
        assert_eq!(t.to_commit(None), [(0, 4)]);
        t.read_past(7, 9); // not assigned
        assert_eq!(t.to_commit(None), [(0, 4)]);
    }

    #[test]
    fn reports_from_an_earlier_assignment_are_ignored() {
        let mut t = Tracker::new(1);
        let old = t.assign(1);
        t.sent(1, 0, 4);
        t.revoke(1);
        assert!(!t.finished(0, 1, old));
        let new = t.assign(1);
        assert_ne!(old, new);
        t.sent(1, 5, 6);
        assert!(!t.finished(0, 1, old));
        assert_eq!(t.to_commit(None), vec![(1, 5)]);
        assert!(t.finished(0, 1, new));
        assert_eq!(t.to_commit(Some(&[1])), vec![(1, 7)]);
        assert!(t.to_commit(Some(&[2])).is_empty());
    }
}
