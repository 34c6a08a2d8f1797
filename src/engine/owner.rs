//! The Owner: the per-(goal, group) half of the engine, holding window state.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use hashbrown::{Equivalent, HashMap};
use rust_decimal::Decimal;

use super::router::{Contribution, Progress};
use crate::aggregate::Aggregate;
use crate::goals::{Direction, Goal, GoalSet};
use crate::model::attainment::attainment_id;
use crate::model::{Attainment, AttainmentKind, Outcome, Timestamp};
use crate::window::{Window, WindowSpec};

/// The values of a group, owned, in `group_by` order. Ordered by value for deterministic output.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupKey(pub Arc<[Box<str>]>);

impl Hash for GroupKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_values(self.0.iter().map(|v| &**v), self.0.len(), state);
    }
}

fn hash_values<'a, H: Hasher>(values: impl Iterator<Item = &'a str>, len: usize, state: &mut H) {
    state.write_usize(len);
    for v in values {
        state.write(v.as_bytes());
        state.write_u8(0xff);
    }
}

/// A borrowed group, looked up without allocating.
struct GroupRef<'a, 'e>(&'a [&'e str]);

impl Hash for GroupRef<'_, '_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_values(self.0.iter().copied(), self.0.len(), state);
    }
}

impl Equivalent<GroupKey> for GroupRef<'_, '_> {
    fn equivalent(&self, key: &GroupKey) -> bool {
        key.0.len() == self.0.len() && key.0.iter().zip(self.0).all(|(a, b)| **a == **b)
    }
}

impl GroupKey {
    /// An owned key from borrowed values.
    pub fn from_values(values: &[&str]) -> Self {
        GroupKey(values.iter().map(|v| Box::from(*v)).collect())
    }
}

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
}

#[derive(Debug, Default, Clone)]
struct GroupState {
    windows: BTreeMap<Timestamp, WindowState>,
    /// Starts of windows changed since the last [`Owner::take_changes`] (change tracking only).
    dirty: Vec<Timestamp>,
}

/// One change of owner state since the last [`Owner::take_changes`], for a changelog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnerChange {
    /// A window's new state, or `None` once it closed.
    Window {
        /// Goal index.
        goal: usize,
        /// The group.
        group: GroupKey,
        /// Window start.
        start: Timestamp,
        /// The state, `None` when the window closed.
        state: Option<WindowState>,
    },
    /// An upstream partition's clock.
    Upstream {
        /// The upstream (input) partition.
        partition: u32,
        /// Its stream time.
        stream_time: Option<Timestamp>,
        /// Whether it is idle.
        idle: bool,
    },
    /// The watermark.
    Watermark(Timestamp),
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
}

/// Counters kept by an owner.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerStats {
    /// Per goal: contributions whose windows had all closed.
    pub late: Vec<u64>,
    /// Per goal: contributions skipped, for some or all of their windows, because of the goal's
    /// `max_groups` or `max_distinct` (see [`Applied::Overflow`]).
    pub overflow: Vec<u64>,
    /// Windows closed (finals emitted).
    pub windows_closed: u64,
    /// Attainment events emitted, by kind (see [`AttainmentKind::ALL`]).
    pub attainments: [u64; 3],
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Upstream {
    stream_time: Option<Timestamp>,
    idle: bool,
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
}

/// What changed since the last `take_changes`, when change tracking is on.
#[derive(Debug, Clone, Default)]
struct Tracking {
    /// Groups (per goal) with a dirty window.
    groups: BTreeSet<(usize, GroupKey)>,
    /// Windows closed: written as tombstones.
    closed: Vec<(usize, GroupKey, Timestamp)>,
    upstream: BTreeSet<u32>,
    watermark: bool,
}

impl Owner {
    /// An owner fed by `upstream_partitions` routers (1 for replay).
    pub fn new(goals: Arc<GoalSet>, upstream_partitions: u32) -> Self {
        let n = goals.goals.len();
        Owner {
            states: (0..n)
                .map(|_| GoalState {
                    groups: HashMap::new(),
                    closing: BTreeSet::new(),
                    cached: None,
                    groups_per_window: HashMap::new(),
                })
                .collect(),
            goals,
            upstream: vec![Upstream::default(); upstream_partitions.max(1) as usize],
            watermark: None,
            stats: OwnerStats {
                late: vec![0; n],
                overflow: vec![0; n],
                ..OwnerStats::default()
            },
            scratch: Vec::new(),
            tracking: None,
        }
    }

    /// Turns on change tracking: [`Owner::take_changes`] then lists every change of state, for
    /// a changelog.
    pub fn track_changes(&mut self) {
        self.tracking.get_or_insert_with(Tracking::default);
    }

    /// The changes since the last call, in a deterministic order; empty without tracking.
    pub fn take_changes(&mut self) -> Vec<OwnerChange> {
        let Some(t) = self.tracking.as_mut() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (goal, key, start) in t.closed.drain(..) {
            out.push(OwnerChange::Window {
                goal,
                group: key,
                start,
                state: None,
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
                        state: Some(ws.clone()),
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
        let windows = &mut gs.groups.entry(group).or_default().windows;
        if windows.insert(start, state).is_none() {
            *gs.groups_per_window.entry(start).or_default() += 1;
        }
    }

    /// Restores an upstream partition's clock from a changelog.
    pub fn restore_upstream(&mut self, partition: u32, stream_time: Option<Timestamp>, idle: bool) {
        let idx = partition as usize;
        if idx >= self.upstream.len() {
            self.upstream.resize(idx + 1, Upstream::default());
        }
        self.upstream[idx] = Upstream { stream_time, idle };
    }

    /// Restores the watermark from a changelog.
    pub fn restore_watermark(&mut self, watermark: Timestamp) {
        self.watermark = Some(watermark);
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
        let goal = &self.goals.goals[c.goal];
        let state = &mut self.states[c.goal];
        let watermark = self.watermark;
        let grace = goal.grace;
        let is_open = |w: &Window| watermark.is_none_or(|wm| wm < w.end.saturating_add(grace));

        self.scratch.clear();
        match (&goal.window, state.cached) {
            (WindowSpec::Hopping { .. }, _) => {
                goal.window.windows_for(c.event_time, &mut self.scratch)
            }
            (_, Some(w)) if w.contains(c.event_time) => self.scratch.push(w),
            _ => {
                goal.window.windows_for(c.event_time, &mut self.scratch);
                state.cached = self.scratch.first().copied();
            }
        }
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
                    e.insert(WindowState {
                        end: w.end,
                        aggregate: Aggregate::empty(goal.metric()),
                        reached: 0,
                        breached: false,
                    })
                }
            };
            if !ws.aggregate.apply_within(&c.delta, goal.max_distinct) {
                // A new window holds at least this value, so it is never left empty here.
                skipped = true;
                continue;
            }
            judge(goal, &c.group, *w, ws, c, out, &mut self.stats);
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
            self.close_until(candidate, out);
        }
    }

    /// Closes every open window: the end of input is the end of time.
    pub fn close_all(&mut self, out: &mut Vec<Attainment>) {
        self.close_until(Timestamp::MAX, out);
    }

    fn close_until(&mut self, watermark: Timestamp, out: &mut Vec<Attainment>) {
        for (index, state) in self.states.iter_mut().enumerate() {
            let goal = &self.goals.goals[index];
            while let Some(first) = state.closing.first() {
                if first.0 > watermark {
                    break;
                }
                let (_, key, start) = state.closing.pop_first().expect("non-empty");
                let Some(group) = state.groups.get_mut(&key) else {
                    continue;
                };
                let Some(ws) = group.windows.remove(&start) else {
                    continue;
                };
                if let Some(n) = state.groups_per_window.get_mut(&start) {
                    *n -= 1;
                    if *n == 0 {
                        state.groups_per_window.remove(&start);
                    }
                }
                if group.windows.is_empty() {
                    state.groups.remove(&key);
                }
                if let Some(t) = self.tracking.as_mut() {
                    t.closed.push((index, key.clone(), start));
                }
                let window = Window { start, end: ws.end };
                let value = ws.aggregate.value();
                let outcome = if ws.aggregate.denominator() < goal.judge_threshold() {
                    Outcome::InsufficientData
                } else {
                    let attained = match (goal.direction, value) {
                        (Direction::AtLeast, Some(v)) => v >= goal.target,
                        (Direction::AtMost, Some(v)) => v <= goal.target,
                        (Direction::AtLeast, None) => false,
                        (Direction::AtMost, None) => true,
                    };
                    if attained {
                        Outcome::Attained
                    } else {
                        Outcome::Missed
                    }
                };
                self.stats.windows_closed += 1;
                let group_values: Vec<&str> = key.0.iter().map(|v| &**v).collect();
                emit(
                    goal,
                    &group_values,
                    window,
                    AttainmentKind::Final,
                    value,
                    None,
                    Some(outcome),
                    None,
                    ws.end,
                    out,
                    &mut self.stats,
                );
            }
        }
    }
}

fn judge(
    goal: &Goal,
    group: &[&str],
    window: Window,
    ws: &mut WindowState,
    c: &Contribution<'_>,
    out: &mut Vec<Attainment>,
    stats: &mut OwnerStats,
) {
    if ws.aggregate.denominator() < goal.judge_threshold() {
        return;
    }
    match goal.direction {
        Direction::AtLeast => {
            let n = goal.thresholds.len();
            let all = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
            if ws.reached == all {
                return;
            }
            let Some(value) = ws.aggregate.value() else {
                return;
            };
            for (i, threshold) in goal.thresholds.iter().enumerate() {
                let bit = 1u64 << i;
                if ws.reached & bit == 0 && value >= *threshold {
                    ws.reached |= bit;
                    emit(
                        goal,
                        group,
                        window,
                        AttainmentKind::Milestone,
                        Some(value),
                        Some(goal.milestones[i]),
                        None,
                        Some(c.event_id),
                        c.event_time,
                        out,
                        stats,
                    );
                }
            }
        }
        Direction::AtMost => {
            if ws.breached {
                return;
            }
            let Some(value) = ws.aggregate.value() else {
                return;
            };
            if value > goal.target {
                ws.breached = true;
                emit(
                    goal,
                    group,
                    window,
                    AttainmentKind::Breached,
                    Some(value),
                    None,
                    None,
                    Some(c.event_id),
                    c.event_time,
                    out,
                    stats,
                );
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn emit(
    goal: &Goal,
    group: &[&str],
    window: Window,
    kind: AttainmentKind,
    value: Option<Decimal>,
    milestone: Option<Decimal>,
    outcome: Option<Outcome>,
    triggered_by: Option<&str>,
    event_time: Timestamp,
    out: &mut Vec<Attainment>,
    stats: &mut OwnerStats,
) {
    let group: Vec<(Arc<str>, String)> = goal
        .group_by_names
        .iter()
        .cloned()
        .zip(group.iter().map(|v| v.to_string()))
        .collect();
    let progress = match value {
        Some(v) if !goal.target.is_zero() => v.checked_div(goal.target),
        _ => None,
    };
    stats.attainments[kind as usize] += 1;
    out.push(Attainment {
        attainment_id: attainment_id(&goal.id, &group, &window, kind, milestone),
        goal_id: goal.id.clone(),
        kind,
        group,
        window,
        value,
        target: goal.target,
        progress,
        milestone,
        outcome,
        triggered_by: triggered_by.map(str::to_string),
        event_time,
    });
}
