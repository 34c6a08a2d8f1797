//! The windows a roster expects: every member of a goal's roster gets every window of the goal
//! from the one holding the log's earliest event on, with or without events, on the owner of its
//! group.
//!
//! A window is opened for the members once the watermark reaches its start, unless it ended
//! before the earliest event time reported by the routers ([`crate::engine::Progress::earliest`]).
//! Both are event times, so every runtime opens the same windows, however the watermark moves;
//! members added to a roster while running get the windows still open when the change is seen.

use super::ticks::Opening;
use super::{GroupKey, Owner};
use crate::model::{Attainment, Timestamp, Window};

impl Owner {
    /// Opens, for every goal with a roster, the windows its members are expected in and do not
    /// hold yet: every window from the one holding the earliest event time on that started by the
    /// watermark. Windows the watermark has already passed the close of are opened all the same
    /// (and closed right after), so a jump of the watermark skips no window.
    pub fn open_expected(&mut self, out: &mut Vec<Attainment>) {
        let (Some(watermark), Some(earliest)) = (self.watermark, self.earliest()) else {
            return;
        };
        for index in 0..self.states.len() {
            if self.rosters[index].is_none() {
                continue;
            }
            let goal = &self.goals.goals[index];
            let state = &self.states[index];
            let mut ranges = Vec::new();
            match state.expected_span {
                Some(span) if watermark < span.next && earliest >= span.first && !span.changed => {
                    continue
                }
                Some(span) => {
                    if span.changed {
                        ranges.push((
                            earliest.max(watermark.saturating_sub(goal.grace)),
                            watermark,
                        ));
                    }
                    if earliest < span.first {
                        ranges.push((earliest, span.first));
                    }
                    if span.next <= watermark {
                        ranges.push((span.next, watermark));
                    }
                }
                None => ranges.push((earliest, watermark)),
            }
            let mut windows: Vec<Window> = ranges
                .into_iter()
                .flat_map(|(from, until)| goal.window.windows_between(from, until))
                .filter(|w| w.end > earliest && w.start <= watermark)
                .collect();
            windows.sort_by_key(|w| w.start);
            windows.dedup_by_key(|w| w.start);
            let first = windows.first().map(|w| w.start);
            let next = windows.last().map(|w| goal.window.next_start(w));
            let span = self.states[index].expected_span.get_or_insert(Span {
                first: first.unwrap_or(watermark),
                next: next.unwrap_or(watermark),
                changed: false,
            });
            span.changed = false;
            span.first = first.map_or(span.first, |f| f.min(span.first));
            span.next = next.map_or(span.next, |n| n.max(span.next));
            self.open_windows_for_members(index, &windows, earliest, out);
        }
    }

    /// After a restore (rosters, upstreams and watermark restored): the windows the members had
    /// been given are those from the earliest event time to the watermark, still open (restored)
    /// or closed, so none of them is opened again.
    pub(super) fn restore_expected_spans(&mut self) {
        let (Some(watermark), Some(earliest)) = (self.watermark, self.earliest()) else {
            return;
        };
        for index in 0..self.states.len() {
            if self.rosters[index].is_none() {
                continue;
            }
            let spec = &self.goals.goals[index].window;
            let (mut first, mut last) = (Vec::new(), Vec::new());
            spec.windows_for(earliest, &mut first);
            spec.windows_for(watermark, &mut last);
            let (Some(first), Some(last)) = (first.first(), last.last()) else {
                continue;
            };
            self.states[index].expected_span = Some(Span {
                first: first.start,
                next: spec.next_start(last),
                changed: false,
            });
        }
    }

    fn open_windows_for_members(
        &mut self,
        index: usize,
        windows: &[Window],
        earliest: Timestamp,
        out: &mut Vec<Attainment>,
    ) {
        let goal = &self.goals.goals[index];
        let owns = self.ownership_check(index);
        let Some(roster) = self.rosters[index].as_ref() else {
            return;
        };
        let state = &mut self.states[index];
        for w in windows {
            for member in roster.expected_in(w) {
                let group: Vec<&str> = member.values.iter().map(String::as_str).collect();
                if !owns(&group) {
                    continue;
                }
                let key = GroupKey::from_values(&group);
                let gs = state.groups.entry(key.clone()).or_default();
                if gs.windows.contains_key(&w.start) {
                    continue;
                }
                let n = state.groups_per_window.entry(w.start).or_default();
                if *n >= goal.max_groups {
                    self.stats.overflow[index] += 1;
                    if gs.windows.is_empty() {
                        state.groups.remove(&key);
                    }
                    continue;
                }
                *n += 1;
                let opening = Opening {
                    goal,
                    rule: state.rule.as_ref(),
                    expected: true,
                    earliest: Some(earliest),
                };
                let ws = opening.open(&mut state.book, &group, *w, out, &mut self.stats);
                gs.windows.insert(w.start, ws);
                state
                    .closing
                    .insert((w.end.saturating_add(goal.grace), key.clone(), w.start));
                if let Some(t) = self.tracking.as_mut() {
                    gs.dirty.push(w.start);
                    t.groups.insert((index, key));
                }
            }
        }
    }

    /// Whether this owner owns a group of goal `index`.
    fn ownership_check(&self, index: usize) -> impl Fn(&[&str]) -> bool {
        let (me, partitions) = self.ownership;
        let hash = crate::engine::partition::goal_hash(&self.goals.goals[index].id);
        move |group: &[&str]| {
            partitions <= 1
                || crate::engine::partition::owner_partition_after(hash, group, partitions) == me
        }
    }
}

/// The windows of a goal with a roster that its members have been given: from the window
/// starting at `first` to the one before `next`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) struct Span {
    /// Start of the first window opened for the members.
    pub(super) first: Timestamp,
    /// Start of the first window after the last one opened.
    pub(super) next: Timestamp,
    /// The roster changed: members added get the windows still open.
    pub(super) changed: bool,
}
