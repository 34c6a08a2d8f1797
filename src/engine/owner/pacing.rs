//! Look-ahead status of one window: its contributions split at the next undecided tick, and the
//! decision at each tick (see `docs/architecture.md`, "Look-ahead status").
//!
//! The status at tick `T` is decided once the watermark reaches `T + grace`, from the
//! contributions with `event_time < T` only, so every runtime decides it from the same events.
//! Until then, contributions at or after the next undecided tick wait in panes, one per tick
//! interval, and are folded in as the ticks are decided: the state held per window is the window's
//! aggregate, the part before the next tick, and the panes between undecided ticks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::aggregate::{Aggregate, Delta};
use crate::engine::status::{Evaluation, StatusRule, StatusTracker, Transition};
use crate::goals::{Goal, Metric};
use crate::model::Timestamp;
use crate::window::{ticks, TickSpec, Window};

/// The status part of one window of one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pacing {
    /// Contributions with `event_time` before the tick `next`.
    pub before: Aggregate,
    /// Contributions from tick `next` on, by tick interval: key `i` holds
    /// `[tick(i - 1), tick(i))`, `i > next` (the last key holds everything from the last tick).
    pub panes: BTreeMap<u32, Aggregate>,
    /// Index of the next undecided tick.
    pub next: u32,
    /// The earliest `event_time` applied.
    pub first: Option<Timestamp>,
    /// At-risk / on-track hysteresis.
    pub tracker: StatusTracker,
}

impl Pacing {
    /// No contribution yet, no tick decided.
    pub fn new(metric: Metric) -> Self {
        Pacing {
            before: Aggregate::empty(metric),
            panes: BTreeMap::new(),
            next: 0,
            first: None,
            tracker: StatusTracker::default(),
        }
    }

    /// Folds in a contribution at `t`, given the window's ticks.
    pub(super) fn apply(
        &mut self,
        metric: Metric,
        delta: &Delta<'_>,
        t: Timestamp,
        ticks: &[Timestamp],
    ) {
        self.first = Some(self.first.map_or(t, |f| f.min(t)));
        let interval = ticks.partition_point(|tick| *tick <= t) as u32;
        if interval <= self.next {
            self.before.apply(delta);
        } else {
            self.panes
                .entry(interval)
                .or_insert_with(|| Aggregate::empty(metric))
                .apply(delta);
        }
    }

    /// Decides tick `next` (at `tick`): evaluates the value before it when `evaluated`, then folds
    /// the next interval in. Returns the evaluation and the transition it fires, if any.
    pub(super) fn decide(
        &mut self,
        rule: &StatusRule,
        window: Window,
        tick: Timestamp,
        evaluated: bool,
    ) -> Option<(Evaluation, Transition)> {
        let fired = match (evaluated, self.before.value()) {
            (true, Some(value)) => {
                let elapsed = crate::window::elapsed_fraction(&window, tick);
                let evaluation = rule.evaluate(value, elapsed);
                let transition = self.tracker.observe(tick, evaluation.condition, rule.hold);
                transition.map(|t| (evaluation, t))
            }
            _ => None,
        };
        self.next += 1;
        if let Some(pane) = self.panes.remove(&(self.next)) {
            self.before.merge(&pane);
        }
        fired
    }

    /// Whether a contribution of this group at or before `tick` has been applied.
    pub(super) fn seen_before(&self, tick: Timestamp) -> bool {
        self.first.is_some_and(|f| f < tick)
    }
}

/// The tick schedule of one window start of a goal with `status`: its ticks and the next one to
/// decide, shared by every group holding the window.
#[derive(Clone, Debug)]
struct WindowTicks {
    end: Timestamp,
    ticks: Arc<[Timestamp]>,
    next: u32,
}

/// The tick schedules of a goal's open windows and when each is next due.
#[derive(Clone, Debug, Default)]
pub(super) struct TickBook {
    windows: BTreeMap<Timestamp, WindowTicks>,
    /// (due, window start) of each window's next tick: due = tick + grace.
    due: BTreeSet<(Timestamp, Timestamp)>,
}

/// A tick to decide: the window and the tick.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) struct DueTick {
    pub(super) window: Window,
    pub(super) index: u32,
    pub(super) tick: Timestamp,
}

impl TickBook {
    /// The ticks of `window`, scheduling it from its first tick when it is new.
    pub(super) fn ticks_of(
        &mut self,
        goal: &Goal,
        every: &TickSpec,
        window: Window,
    ) -> Arc<[Timestamp]> {
        self.schedule(goal, every, window, 0);
        self.ticks(window.start)
    }

    /// Schedules a new window start with `next` of its ticks already decided; a window start
    /// already scheduled is left as it is.
    fn schedule(&mut self, goal: &Goal, every: &TickSpec, window: Window, next: u32) {
        if self.windows.contains_key(&window.start) {
            return;
        }
        let list: Arc<[Timestamp]> = ticks(&goal.window, &window, every).collect();
        if let Some(tick) = list.get(next as usize) {
            self.due
                .insert((tick.saturating_add(goal.grace), window.start));
        }
        let wt = WindowTicks {
            end: window.end,
            ticks: list,
            next,
        };
        self.windows.insert(window.start, wt);
    }

    /// The ticks of the window starting at `start` (empty when unknown).
    pub(super) fn ticks(&self, start: Timestamp) -> Arc<[Timestamp]> {
        self.windows
            .get(&start)
            .map_or_else(|| Arc::from([]), |w| w.ticks.clone())
    }

    /// How many ticks of the window starting at `start` have been decided.
    pub(super) fn decided(&self, start: Timestamp) -> u32 {
        self.windows.get(&start).map_or(0, |w| w.next)
    }

    /// The earliest tick due at or before `until`, if any, without taking it.
    pub(super) fn peek_due(&self, until: Timestamp) -> Option<Timestamp> {
        self.due
            .first()
            .map(|(due, _)| *due)
            .filter(|due| *due <= until)
    }

    /// Takes the earliest due tick (see [`TickBook::peek_due`]) and schedules the window's next.
    pub(super) fn take_due(&mut self, grace: crate::model::Duration) -> Option<DueTick> {
        let (_, start) = self.due.pop_first()?;
        let wt = self.windows.get_mut(&start)?;
        let index = wt.next;
        let tick = *wt.ticks.get(index as usize)?;
        wt.next += 1;
        if let Some(next) = wt.ticks.get(wt.next as usize) {
            self.due.insert((next.saturating_add(grace), start));
        }
        Some(DueTick {
            window: Window { start, end: wt.end },
            index,
            tick,
        })
    }

    /// Forgets a window start no group holds any more.
    pub(super) fn forget(&mut self, start: Timestamp, grace: crate::model::Duration) {
        if let Some(wt) = self.windows.remove(&start) {
            if let Some(tick) = wt.ticks.get(wt.next as usize) {
                self.due.remove(&(tick.saturating_add(grace), start));
            }
        }
    }

    /// Restores a window's schedule from a group's state: `next` ticks decided.
    pub(super) fn restore(&mut self, goal: &Goal, every: &TickSpec, window: Window, next: u32) {
        self.schedule(goal, every, window, next);
    }
}

/// The status rule of a goal with `status`.
pub(super) fn rule_of(goal: &Goal) -> Option<(StatusRule, TickSpec)> {
    let spec = goal.status.as_ref()?;
    let every = TickSpec::new(spec.every).ok()?;
    Some((
        StatusRule {
            target: goal.target,
            direction: goal.direction,
            pace: goal.pace.clone(),
            tolerance: spec.tolerance,
            hold: spec.hold,
        },
        every,
    ))
}
