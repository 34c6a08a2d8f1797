//! Change tracking for a changelog, and restoring an owner from one.

use std::collections::BTreeSet;

use super::{GroupKey, Owner, Upstream, WindowState};
use crate::model::Timestamp;

/// One change of owner state since the last [`Owner::take_changes`], for a changelog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnerChange {
    /// An open window's new state.
    Window {
        /// Goal index.
        goal: usize,
        /// The group.
        group: GroupKey,
        /// Window start.
        start: Timestamp,
        /// The state.
        state: WindowState,
    },
    /// A window that closed (its final was emitted), with its last state.
    Closed {
        /// Goal index.
        goal: usize,
        /// The group.
        group: GroupKey,
        /// Window start.
        start: Timestamp,
        /// The state it closed with.
        last: WindowState,
    },
    /// An upstream partition's clock.
    Upstream {
        /// The upstream (input) partition.
        partition: u32,
        /// Its stream time.
        stream_time: Option<Timestamp>,
        /// Whether it is idle.
        idle: bool,
        /// The earliest event time it reported.
        earliest: Option<Timestamp>,
    },
    /// The watermark.
    Watermark(Timestamp),
}

/// What changed since the last `take_changes`, when change tracking is on.
#[derive(Debug, Clone, Default)]
pub(super) struct Tracking {
    /// Groups (per goal) with a dirty window.
    pub(super) groups: BTreeSet<(usize, GroupKey)>,
    /// Windows closed, with the state they closed with.
    pub(super) closed: Vec<(usize, GroupKey, Timestamp, WindowState)>,
    pub(super) upstream: BTreeSet<u32>,
    pub(super) watermark: bool,
}

impl Owner {
    /// Turns on change tracking: [`Owner::take_changes`] then lists every change of state, for
    /// a changelog.
    pub fn track_changes(&mut self) {
        self.tracking.get_or_insert_with(Tracking::default);
    }

    /// The changes since the last call, in a deterministic order, at most one per window (its
    /// latest state, or its closing); empty without tracking.
    pub fn take_changes(&mut self) -> Vec<OwnerChange> {
        let Some(t) = self.tracking.as_mut() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (goal, key, start, last) in t.closed.drain(..) {
            out.push(OwnerChange::Closed {
                goal,
                group: key,
                start,
                last,
            });
        }
        for (goal, key) in std::mem::take(&mut t.groups) {
            let Some(group) = self.states[goal].groups.get_mut(&key) else {
                continue;
            };
            let mut starts = std::mem::take(&mut group.dirty);
            starts.sort_unstable();
            starts.dedup();
            for start in starts {
                if let Some(ws) = group.windows.get(&start) {
                    out.push(OwnerChange::Window {
                        goal,
                        group: key.clone(),
                        start,
                        state: ws.clone(),
                    });
                }
            }
        }
        for p in std::mem::take(&mut t.upstream) {
            let u = self.upstream[p as usize];
            out.push(OwnerChange::Upstream {
                partition: p,
                stream_time: u.stream_time,
                idle: u.idle,
                earliest: u.earliest,
            });
        }
        if std::mem::take(&mut t.watermark) {
            if let Some(wm) = self.watermark {
                out.push(OwnerChange::Watermark(wm));
            }
        }
        out
    }

    /// Restores one window from a changelog. Unknown goal indexes are ignored.
    pub fn restore_window(
        &mut self,
        goal: usize,
        group: GroupKey,
        start: Timestamp,
        state: WindowState,
    ) {
        let Some(g) = self.goals.goals.get(goal) else {
            return;
        };
        let gs = &mut self.states[goal];
        gs.closing
            .insert((state.end.saturating_add(g.grace), group.clone(), start));
        if let (Some(pacing), Some((_, every))) = (state.pacing.as_ref(), gs.rule.as_ref()) {
            let window = crate::window::Window {
                start,
                end: state.end,
            };
            gs.book.restore(g, every, window, pacing.next);
        }
        let windows = &mut gs.groups.entry(group).or_default().windows;
        if windows.insert(start, state).is_none() {
            *gs.groups_per_window.entry(start).or_default() += 1;
        }
    }

    /// Restores an upstream partition's clock from a changelog.
    pub fn restore_upstream(
        &mut self,
        partition: u32,
        stream_time: Option<Timestamp>,
        idle: bool,
        earliest: Option<Timestamp>,
    ) {
        let idx = partition as usize;
        if idx >= self.upstream.len() {
            self.upstream.resize(idx + 1, Upstream::default());
        }
        self.upstream[idx] = Upstream {
            stream_time,
            idle,
            earliest,
        };
    }

    /// Restores the watermark from a changelog.
    pub fn restore_watermark(&mut self, watermark: Timestamp) {
        self.watermark = Some(watermark);
        self.restore_expected_spans();
    }
}
