//! The Owner: the per-(goal, group) half of the engine, holding window state.
//!
//! This file holds the state, applies contributions and moves the watermark; `judge.rs` decides
//! milestones, breaches and finals and builds their attainment events, `pacing.rs` holds the
//! look-ahead status of a window and its tick schedule, `ticks.rs` decides due ticks and closes
//! windows in event-time order, `expected.rs` opens the windows a roster expects, `changes.rs`
//! tracks changes for a changelog and restores from one, and `group.rs` is the group key.

mod changes;
mod expected;
mod group;
mod judge;
mod pacing;
mod ticks;

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use hashbrown::HashMap;

use self::changes::Tracking;
use self::group::GroupRef;
use self::pacing::{rule_of, TickBook};
use super::roster::Roster;
use super::router::{Contribution, Progress};
use super::status::StatusRule;
use crate::aggregate::Aggregate;
use crate::goals::GoalSet;
use crate::model::{Attainment, Timestamp};
use crate::window::{TickSpec, Window, WindowSpec};

pub use self::changes::OwnerChange;
pub use self::group::GroupKey;
pub use self::judge::final_outcome;
pub use self::pacing::Pacing;

/// The state of one window of one goal and group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowState {
    /// The window's end (its start is the map key).
    pub end: Timestamp,
    /// The aggregate so far.
    pub aggregate: Aggregate,
    /// Bit i set: milestone i has been reported.
    pub reached: u64,
    /// Whether the breach has been reported.
    pub breached: bool,
    /// Look-ahead status, for goals with `status`.
    pub pacing: Option<Box<Pacing>>,
    /// The latest event time applied to the window (the maximum, so arrival order does not
    /// matter); `None` before any contribution.
    pub last_event: Option<Timestamp>,
}

#[derive(Debug, Default, Clone)]
struct GroupState {
    windows: BTreeMap<Timestamp, WindowState>,
    /// Starts of windows changed since the last [`Owner::take_changes`] (change tracking only).
    dirty: Vec<Timestamp>,
}

#[derive(Debug, Clone)]
struct GoalState {
    groups: HashMap<GroupKey, GroupState>,
    /// Open windows by (close time, group, start).
    closing: BTreeSet<(Timestamp, GroupKey, Timestamp)>,
    /// The last window computed, for single-window specs (most events fall in the same one).
    cached: Option<Window>,
    /// Open windows by start: how many groups each holds (for `max_groups`).
    groups_per_window: HashMap<Timestamp, usize>,
    /// The status rule and tick interval, for goals with `status`.
    rule: Option<(StatusRule, TickSpec)>,
    /// Tick schedules of the open windows, for goals with `status`.
    book: TickBook,
    /// For goals with a roster: the windows its members have been given (see `expected.rs`).
    expected_span: Option<expected::Span>,
}

/// Counters kept by an owner.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerStats {
    /// Per goal: contributions whose windows had all closed.
    pub late: Vec<u64>,
    /// Per goal: contributions skipped, for some or all of their windows, because of the goal's
    /// `max_groups` or `max_distinct` (see [`Applied::Overflow`]).
    pub overflow: Vec<u64>,
    /// Per goal with a roster: contributions of groups not on it, applied all the same.
    pub unlisted: Vec<u64>,
    /// Per goal with a `strict` roster: contributions of groups not on it, skipped.
    pub off_roster: Vec<u64>,
    /// Windows closed (finals emitted).
    pub windows_closed: u64,
    /// Attainment events emitted, by kind (see [`crate::model::AttainmentKind::ALL`]).
    pub attainments: [u64; crate::model::AttainmentKind::COUNT],
}

impl OwnerStats {
    /// Zero counters for `goals` goals.
    fn zero(goals: usize) -> Self {
        OwnerStats {
            late: vec![0; goals],
            overflow: vec![0; goals],
            unlisted: vec![0; goals],
            off_roster: vec![0; goals],
            ..OwnerStats::default()
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Upstream {
    stream_time: Option<Timestamp>,
    idle: bool,
    /// The earliest event time the upstream reported.
    earliest: Option<Timestamp>,
}

/// Where a contribution went.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Applied to at least one open window.
    Applied,
    /// Every window it belongs to had closed: counted as late, not applied.
    Late,
    /// Counted as overflow: not applied to a window (applied to its others, if any) because its
    /// group is new there and the window already holds `max_groups` groups on this owner, or its
    /// `count_distinct` value is new there and the window already holds `max_distinct` values.
    Overflow,
    /// The goal's roster is `strict` and does not list the group: skipped and counted.
    OffRoster,
}

/// Holds the windows of the goals and groups routed to it, closes them as the watermark advances
/// and emits attainment events. Pure: no clock, no I/O.
#[derive(Debug, Clone)]
pub struct Owner {
    goals: Arc<GoalSet>,
    states: Vec<GoalState>,
    upstream: Vec<Upstream>,
    watermark: Option<Timestamp>,
    stats: OwnerStats,
    scratch: Vec<Window>,
    tracking: Option<Tracking>,
    /// Per goal: the members its roster expects in every window, if it has one.
    rosters: Vec<Option<Roster>>,
    /// This owner's partition and the number of owner partitions: roster members are given
    /// windows only by the owner of their group.
    ownership: (u32, u32),
}

impl GoalState {
    /// Removes a window that closed, and its group once the group holds no window.
    fn remove_window(
        &mut self,
        key: &GroupKey,
        start: Timestamp,
        grace: crate::model::Duration,
    ) -> Option<WindowState> {
        let group = self.groups.get_mut(key)?;
        let ws = group.windows.remove(&start)?;
        if let Some(n) = self.groups_per_window.get_mut(&start) {
            *n -= 1;
            if *n == 0 {
                self.groups_per_window.remove(&start);
                self.book.forget(start, grace);
            }
        }
        if group.windows.is_empty() {
            self.groups.remove(key);
        }
        Some(ws)
    }
}

impl Owner {
    /// An owner fed by `upstream_partitions` routers (1 for replay).
    pub fn new(goals: Arc<GoalSet>, upstream_partitions: u32) -> Self {
        let n = goals.goals.len();
        Owner {
            states: goals
                .goals
                .iter()
                .map(|goal| GoalState {
                    groups: HashMap::new(),
                    closing: BTreeSet::new(),
                    cached: None,
                    groups_per_window: HashMap::new(),
                    rule: rule_of(goal),
                    book: TickBook::default(),
                    expected_span: None,
                })
                .collect(),
            goals,
            upstream: vec![Upstream::default(); upstream_partitions.max(1) as usize],
            watermark: None,
            stats: OwnerStats::zero(n),
            scratch: Vec::new(),
            tracking: None,
            rosters: vec![None; n],
            ownership: (0, 1),
        }
    }

    /// Gives the goals their rosters (indexed by goal, `None` for goals without one), and says
    /// which owner partition of how many this is (`(0, 1)` for replay).
    pub fn set_rosters(&mut self, rosters: Vec<Option<Roster>>, ownership: (u32, u32)) {
        let n = self.goals.goals.len();
        self.rosters = rosters;
        self.rosters.resize(n, None);
        self.ownership = ownership;
        self.roster_changed();
    }

    /// The goals' rosters, indexed by goal.
    pub fn rosters(&self) -> &[Option<Roster>] {
        &self.rosters
    }

    /// The roster of goal `goal`, to change it (a record of a roster topic); call
    /// [`Owner::roster_changed`] after changing it.
    pub fn roster_mut(&mut self, goal: usize) -> Option<&mut Roster> {
        self.rosters.get_mut(goal)?.as_mut()
    }

    /// Says the rosters changed: members added are given the windows still open at the next
    /// watermark advance (or [`Owner::open_expected`]).
    pub fn roster_changed(&mut self) {
        for s in &mut self.states {
            if let Some(span) = s.expected_span.as_mut() {
                span.changed = true;
            }
        }
    }

    /// The earliest event time reported by any upstream partition.
    pub fn earliest(&self) -> Option<Timestamp> {
        self.upstream.iter().filter_map(|u| u.earliest).min()
    }

    /// Whether this owner holds no state at all.
    pub fn is_empty(&self) -> bool {
        self.watermark.is_none()
            && self.open_windows() == 0
            && self.upstream.iter().all(|u| u.stream_time.is_none())
    }

    /// The watermark: the minimum stream time over active upstream partitions, never decreasing.
    pub fn watermark(&self) -> Option<Timestamp> {
        self.watermark
    }

    /// Counters so far.
    pub fn stats(&self) -> &OwnerStats {
        &self.stats
    }

    /// Counters since the last call (or since the start), which start again from zero.
    pub fn take_stats(&mut self) -> OwnerStats {
        let n = self.goals.goals.len();
        std::mem::replace(&mut self.stats, OwnerStats::zero(n))
    }

    /// Number of open windows held.
    pub fn open_windows(&self) -> usize {
        self.states.iter().map(|s| s.closing.len()).sum()
    }

    /// The open windows of one goal: group, window start and state, in no particular order.
    pub fn windows_of(
        &self,
        goal: usize,
    ) -> impl Iterator<Item = (&GroupKey, Timestamp, &WindowState)> + '_ {
        self.states.get(goal).into_iter().flat_map(|g| {
            g.groups
                .iter()
                .flat_map(|(key, gs)| gs.windows.iter().map(move |(start, ws)| (key, *start, ws)))
        })
    }

    /// The latest stream time among the upstream partitions: how far event time has got here.
    pub fn stream_time(&self) -> Option<Timestamp> {
        self.upstream.iter().filter_map(|u| u.stream_time).max()
    }

    /// A rough estimate of the bytes of window state held (for metrics).
    pub fn state_bytes_estimate(&self) -> usize {
        self.states
            .iter()
            .flat_map(|g| g.groups.iter())
            .map(|(key, gs)| {
                let key_bytes: usize = key.0.iter().map(|v| v.len() + 16).sum();
                key_bytes
                    + gs.windows
                        .values()
                        .map(|ws| 64 + ws.aggregate.size_estimate())
                        .sum::<usize>()
            })
            .sum()
    }

    /// Applies one contribution, emitting milestone and breach events into `out`.
    pub fn apply(&mut self, c: &Contribution<'_>, out: &mut Vec<Attainment>) -> Applied {
        if let Some(skip) = self.check_roster(c) {
            return skip;
        }
        let goal = &self.goals.goals[c.goal];
        let state = &mut self.states[c.goal];
        let watermark = self.watermark;
        let grace = goal.grace;
        let is_open = |w: &Window| watermark.is_none_or(|wm| wm < w.end.saturating_add(grace));

        self.scratch.clear();
        windows_containing(
            &goal.window,
            &mut state.cached,
            c.event_time,
            &mut self.scratch,
        );
        self.scratch.retain(is_open);
        if self.scratch.is_empty() {
            self.stats.late[c.goal] += 1;
            return Applied::Late;
        }

        let counts = &mut state.groups_per_window;
        let group = match state.groups.get_mut(&GroupRef(&c.group)) {
            Some(g) => g,
            None if !self
                .scratch
                .iter()
                .any(|w| counts.get(&w.start).is_none_or(|n| *n < goal.max_groups)) =>
            {
                self.stats.overflow[c.goal] += 1;
                return Applied::Overflow;
            }
            None => state
                .groups
                .entry(GroupKey::from_values(&c.group))
                .or_default(),
        };
        let roster = self.rosters[c.goal].as_ref();
        let mut skipped = false;
        let dirty_before = group.dirty.len();
        for w in &self.scratch {
            let ws = match group.windows.entry(w.start) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    let n = counts.entry(w.start).or_default();
                    if *n >= goal.max_groups {
                        skipped = true;
                        continue;
                    }
                    *n += 1;
                    state.closing.insert((
                        w.end.saturating_add(grace),
                        GroupKey::from_values(&c.group),
                        w.start,
                    ));
                    let opening = ticks::Opening {
                        goal,
                        rule: state.rule.as_ref(),
                        expected: roster.is_some_and(|r| r.expects(&c.group, w)),
                        earliest: self.upstream.iter().filter_map(|u| u.earliest).min(),
                    };
                    let ws = opening.open(&mut state.book, &c.group, *w, out, &mut self.stats);
                    e.insert(ws)
                }
            };
            if !ws.aggregate.apply_within(&c.delta, goal.max_distinct) {
                // A new window holds at least this value, so it is never left empty here.
                skipped = true;
                continue;
            }
            ws.last_event = ws.last_event.max(Some(c.event_time));
            if let Some(pacing) = ws.pacing.as_mut() {
                let ticks = state.book.ticks(w.start);
                pacing.apply(goal.metric(), &c.delta, c.event_time, &ticks);
            }
            judge::judge(goal, &c.group, *w, ws, c, out, &mut self.stats);
            if self.tracking.is_some() {
                group.dirty.push(w.start);
            }
        }
        if let Some(t) = self.tracking.as_mut() {
            if dirty_before == 0 && !group.dirty.is_empty() {
                // First change of this group since the last take: remember the group once.
                t.groups.insert((c.goal, GroupKey::from_values(&c.group)));
            }
        }
        if skipped {
            self.stats.overflow[c.goal] += 1;
            return Applied::Overflow;
        }
        Applied::Applied
    }

    /// For a goal with a roster: counts a contribution of a group the roster does not list, and
    /// says to skip it when the roster is `strict`.
    fn check_roster(&mut self, c: &Contribution<'_>) -> Option<Applied> {
        let roster = self.rosters[c.goal].as_ref()?;
        if roster.contains(&c.group) {
            return None;
        }
        let strict = self.goals.goals[c.goal]
            .roster
            .and_then(|r| self.goals.rosters.get(r))
            .is_some_and(|r| r.strict);
        if strict {
            self.stats.off_roster[c.goal] += 1;
            return Some(Applied::OffRoster);
        }
        self.stats.unlisted[c.goal] += 1;
        None
    }

    /// Records an upstream partition's progress and closes the windows the watermark passed.
    pub fn progress(&mut self, p: Progress, out: &mut Vec<Attainment>) {
        let idx = p.partition as usize;
        if idx >= self.upstream.len() {
            self.upstream.resize(idx + 1, Upstream::default());
        }
        let u = &mut self.upstream[idx];
        let before = *u;
        u.idle = false;
        if u.stream_time.is_none_or(|t| p.stream_time > t) {
            u.stream_time = Some(p.stream_time);
        }
        if u.earliest.is_none_or(|t| p.earliest < t) {
            u.earliest = Some(p.earliest);
        }
        if *u != before {
            if let Some(t) = self.tracking.as_mut() {
                t.upstream.insert(p.partition);
            }
        }
        self.advance(out);
    }

    /// Marks an upstream partition idle (it stops holding the watermark back) or active again.
    pub fn set_idle(&mut self, partition: u32, idle: bool, out: &mut Vec<Attainment>) {
        if let Some(u) = self.upstream.get_mut(partition as usize) {
            if u.idle != idle {
                u.idle = idle;
                if let Some(t) = self.tracking.as_mut() {
                    t.upstream.insert(partition);
                }
            }
        }
        self.advance(out);
    }

    fn advance(&mut self, out: &mut Vec<Attainment>) {
        let mut min: Option<Timestamp> = None;
        for u in self.upstream.iter().filter(|u| !u.idle) {
            match u.stream_time {
                None => return,
                Some(t) => min = Some(min.map_or(t, |m| m.min(t))),
            }
        }
        let Some(candidate) = min else { return };
        if self.watermark.is_none_or(|wm| candidate > wm) {
            self.watermark = Some(candidate);
            if let Some(t) = self.tracking.as_mut() {
                t.watermark = true;
            }
            self.open_expected(out);
            self.close_until(candidate, out);
        } else {
            self.open_expected(out);
        }
    }

    /// Closes every open window: the end of input is the end of time. The ticks still undecided
    /// are decided first, from everything applied.
    pub fn close_all(&mut self, out: &mut Vec<Attainment>) {
        self.close_until(Timestamp::MAX, out);
    }
}

/// Puts the windows containing `t` into `out`. Single-window specs reuse the goal's last window
/// when it contains `t`, as most events fall in the same one.
fn windows_containing(
    spec: &WindowSpec,
    cached: &mut Option<Window>,
    t: Timestamp,
    out: &mut Vec<Window>,
) {
    match (spec, *cached) {
        (WindowSpec::Hopping { .. }, _) => spec.windows_for(t, out),
        (_, Some(w)) if w.contains(t) => out.push(w),
        _ => {
            spec.windows_for(t, out);
            *cached = out.first().copied();
        }
    }
}
