//! Moving an owner's event time forward: the due status ticks decided and the windows closed, in
//! event-time order, and new windows caught up with the ticks already decided.

use super::judge;
use super::pacing::{DueTick, Pacing, TickBook};
use super::{GoalState, GroupKey, Owner, OwnerStats, WindowState};
use crate::aggregate::Aggregate;
use crate::engine::roster::Roster;
use crate::engine::status::{Evaluation, StatusRule, Transition};
use crate::goals::Goal;
use crate::model::{Attainment, Timestamp};
use crate::window::{TickSpec, Window};

/// What a new window of a group needs to know to start.
pub(super) struct Opening<'a> {
    pub(super) goal: &'a Goal,
    pub(super) rule: Option<&'a (StatusRule, TickSpec)>,
    /// Whether the goal's roster expects the group in the window.
    pub(super) expected: bool,
    /// The earliest event time of the log so far.
    pub(super) earliest: Option<Timestamp>,
}

impl Opening<'_> {
    /// An empty window of `group`, with the status of the ticks already decided for the window
    /// caught up (a group with no contribution yet is evaluated there only when its roster
    /// expects it and the log had started by the tick).
    pub(super) fn open(
        &self,
        book: &mut TickBook,
        group: &[&str],
        window: Window,
        out: &mut Vec<Attainment>,
        stats: &mut OwnerStats,
    ) -> WindowState {
        let metric = self.goal.metric();
        let pacing = self.rule.map(|(rule, every)| {
            let ticks = book.ticks_of(self.goal, every, window);
            let mut pacing = Pacing::new(metric);
            for &tick in ticks.iter().take(book.decided(window.start) as usize) {
                let evaluated = self.expected && self.earliest.is_some_and(|e| e < tick);
                if let Some((ev, tr)) = pacing.decide(rule, window, tick, evaluated) {
                    judge::emit_status(self.goal, group, window, tick, &ev, tr, out, stats);
                }
            }
            Box::new(pacing)
        });
        WindowState {
            end: window.end,
            aggregate: Aggregate::empty(metric),
            reached: 0,
            breached: false,
            pacing,
            last_event: None,
        }
    }
}

impl Owner {
    /// Decides the ticks due and closes the windows due up to `watermark`, in event-time order
    /// (a tick before a close at the same time).
    pub(super) fn close_until(&mut self, watermark: Timestamp, out: &mut Vec<Attainment>) {
        let earliest = self.earliest();
        for index in 0..self.states.len() {
            let goal = &self.goals.goals[index];
            let roster = self.rosters[index].as_ref();
            let state = &mut self.states[index];
            loop {
                let close = state
                    .closing
                    .first()
                    .map(|c| c.0)
                    .filter(|c| *c <= watermark);
                let tick = state.book.peek_due(watermark);
                match (tick, close) {
                    (Some(t), c) if c.is_none_or(|c| t <= c) => {
                        let Some(due) = state.book.take_due(goal.grace) else {
                            break;
                        };
                        let track = self.tracking.is_some();
                        let at = Deciding {
                            goal,
                            roster,
                            earliest,
                            track,
                        };
                        let changed = at.decide(state, due, out, &mut self.stats);
                        if let Some(t) = self.tracking.as_mut() {
                            t.groups.extend(changed.into_iter().map(|key| (index, key)));
                        }
                    }
                    (_, Some(_)) => {
                        let (_, key, start) = state.closing.pop_first().expect("non-empty");
                        let Some(ws) = state.remove_window(&key, start, goal.grace) else {
                            continue;
                        };
                        self.stats.windows_closed += 1;
                        judge::emit_final(goal, &key, start, &ws, out, &mut self.stats);
                        if let Some(t) = self.tracking.as_mut() {
                            t.closed.push((index, key, start, ws));
                        }
                    }
                    _ => break,
                }
            }
        }
    }
}

/// What deciding a tick of a goal needs besides the goal's state.
struct Deciding<'a> {
    goal: &'a Goal,
    roster: Option<&'a Roster>,
    earliest: Option<Timestamp>,
    /// Whether changes are tracked for a changelog.
    track: bool,
}

impl Deciding<'_> {
    /// Decides one due tick for every group holding its window, emitting the transitions in group
    /// order. Returns the groups whose state changed when tracking.
    fn decide(
        &self,
        state: &mut GoalState,
        due: DueTick,
        out: &mut Vec<Attainment>,
        stats: &mut OwnerStats,
    ) -> Vec<GroupKey> {
        let Deciding {
            goal,
            roster,
            earliest,
            track,
        } = *self;
        let Some((rule, _)) = state.rule.as_ref() else {
            return Vec::new();
        };
        let log_started = earliest.is_some_and(|e| e < due.tick);
        let mut fired: Vec<(GroupKey, Evaluation, Transition)> = Vec::new();
        let mut changed = Vec::new();
        for (key, gs) in state.groups.iter_mut() {
            let Some(ws) = gs.windows.get_mut(&due.window.start) else {
                continue;
            };
            let Some(pacing) = ws.pacing.as_mut() else {
                continue;
            };
            if pacing.next != due.index {
                continue;
            }
            let listed = || {
                let values: Vec<&str> = key.0.iter().map(|v| &**v).collect();
                roster.is_some_and(|r| r.expects(&values, &due.window))
            };
            let evaluated = pacing.seen_before(due.tick) || (log_started && listed());
            if let Some((ev, tr)) = pacing.decide(rule, due.window, due.tick, evaluated) {
                fired.push((key.clone(), ev, tr));
            }
            if track {
                gs.dirty.push(due.window.start);
                changed.push(key.clone());
            }
        }
        fired.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, ev, tr) in fired {
            let values: Vec<&str> = key.0.iter().map(|v| &**v).collect();
            judge::emit_status(goal, &values, due.window, due.tick, &ev, tr, out, stats);
        }
        changed
    }
}
