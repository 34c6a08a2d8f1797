//! The Router: the per-input-partition half of the engine.
//!
//! `gate.rs` holds the type gate that spares most goals a filter check for most events.

mod gate;

use std::sync::Arc;

use smallvec::SmallVec;

use self::gate::TypeGate;
use super::dedupe::{AddedIds, DedupeMemory};
use crate::aggregate::Delta;
use crate::goals::{FieldRef, GoalSet, Measure, Metric};
use crate::limits::Limits;
use crate::model::money::parse_amount;
use crate::model::{SalesEvent, Timestamp};

/// Group values of one contribution, in `group_by` order, borrowed from the event.
pub type GroupValues<'e> = SmallVec<[&'e str; 4]>;

/// One event's contribution to one goal and group. The owner assigns windows from `event_time`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contribution<'e> {
    /// Index of the goal in the goal file.
    pub goal: usize,
    /// The group's values, in `group_by` order.
    pub group: GroupValues<'e>,
    /// What the event adds.
    pub delta: Delta<'e>,
    /// The event's id (for `triggered_by`).
    pub event_id: &'e str,
    /// The event's time.
    pub event_time: Timestamp,
}

/// An upstream partition's stream time, sent to every owner after the contributions of the event
/// that advanced it (or that lowered its earliest time).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The input partition.
    pub partition: u32,
    /// Its stream time: the largest `occurred_at` among its accepted events.
    pub stream_time: Timestamp,
    /// The smallest `occurred_at` among its accepted events: where the log starts, which decides
    /// the first window a roster's members get.
    pub earliest: Timestamp,
}

/// What the router did with an event.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Routed {
    /// Seen within the dedupe horizon: counted, not applied, stream time unchanged.
    Duplicate,
    /// Accepted; `progress` is set when it advanced stream time or lowered the earliest time.
    Accepted {
        /// The new stream time of this partition, if it moved.
        progress: Option<Progress>,
    },
}

/// Counters kept by a router.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// Events accepted.
    pub accepted: u64,
    /// Events dropped as duplicates.
    pub duplicates: u64,
    /// Per goal: events that matched the filter but lacked a group-by field or the goal's field,
    /// or whose attribute value was not a decimal for a numeric metric.
    pub skipped: Vec<u64>,
}

impl RouterStats {
    /// Zero counters for `goals` goals.
    fn zero(goals: usize) -> Self {
        RouterStats {
            skipped: vec![0; goals],
            ..RouterStats::default()
        }
    }
}

/// Validates, deduplicates and matches the events of one input partition.
///
/// Pure: no clock, no I/O. Each event yields its contributions (through the callback) before the
/// [`Progress`] it causes, so owners judge lateness against stream time as it stood before the event.
#[derive(Debug, Clone)]
pub struct Router {
    goals: Arc<GoalSet>,
    gate: TypeGate,
    partition: u32,
    /// Longest group-by or `count_distinct` value (see [`Limits::value_bytes`]).
    value_bytes: usize,
    stream_time: Option<Timestamp>,
    /// The smallest `occurred_at` accepted.
    earliest: Option<Timestamp>,
    dedupe: DedupeMemory,
    /// Evictions of the dedupe memory while restoring (not counted) or already taken.
    evicted_restoring: u64,
    evicted_taken: u64,
    stats: RouterStats,
}

impl Router {
    /// A router for one input partition; an event with a group-by or `count_distinct` value over
    /// `limits.value_bytes` is skipped for the goals that read it.
    pub fn new(goals: Arc<GoalSet>, partition: u32, limits: &Limits) -> Self {
        let n = goals.goals.len();
        Router {
            dedupe: DedupeMemory::new(goals.dedupe_horizon),
            gate: TypeGate::new(&goals),
            goals,
            partition,
            value_bytes: limits.value_bytes,
            stream_time: None,
            earliest: None,
            evicted_restoring: 0,
            evicted_taken: 0,
            stats: RouterStats::zero(n),
        }
    }

    /// Caps the dedupe memory at `max_ids` ids (default [`super::DEFAULT_DEDUPE_MAX_IDS`]). It
    /// starts an empty memory: call it first, before `track_changes`, `restore` or any event.
    pub fn set_dedupe_max_ids(&mut self, max_ids: usize) {
        self.dedupe = DedupeMemory::with_max_ids(self.goals.dedupe_horizon, max_ids);
    }

    /// Ids the dedupe memory forgot early because of its cap (see [`DedupeMemory`]), not counting
    /// those forgotten again while restoring.
    pub fn dedupe_evicted(&self) -> u64 {
        self.dedupe.evicted() - self.evicted_restoring
    }

    /// Like [`Router::dedupe_evicted`], but only those since the last call.
    pub fn take_dedupe_evicted(&mut self) -> u64 {
        let total = self.dedupe_evicted();
        let new = total - self.evicted_taken;
        self.evicted_taken = total;
        new
    }

    /// The partition this router serves.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// This partition's stream time.
    pub fn stream_time(&self) -> Option<Timestamp> {
        self.stream_time
    }

    /// Counters so far.
    pub fn stats(&self) -> &RouterStats {
        &self.stats
    }

    /// Counters since the last call (or since the start), which start again from zero.
    pub fn take_stats(&mut self) -> RouterStats {
        let n = self.stats.skipped.len();
        std::mem::replace(&mut self.stats, RouterStats::zero(n))
    }

    /// The dedupe memory (for snapshots and metrics).
    pub fn dedupe(&self) -> &DedupeMemory {
        &self.dedupe
    }

    /// Turns on tracking of new dedupe entries (see [`Router::take_dedupe_added`]).
    pub fn track_changes(&mut self) {
        self.dedupe.track_changes();
    }

    /// Dedupe entries recorded since the last call, for a changelog.
    pub fn take_dedupe_added(&mut self) -> AddedIds {
        self.dedupe.take_added()
    }

    /// Restores state saved from an earlier run of this partition.
    pub fn restore<S: AsRef<str>>(
        &mut self,
        stream_time: Option<Timestamp>,
        ids: impl IntoIterator<Item = (S, Timestamp)>,
    ) {
        self.stream_time = stream_time;
        let evicted_before = self.dedupe.evicted();
        for (id, t) in ids {
            self.dedupe.remember(id.as_ref(), t);
        }
        // Restored entries are already in the changelog.
        self.dedupe.take_added();
        if let Some(st) = stream_time {
            self.dedupe.expire(st);
        }
        // Entries the cap forgets again now were counted when first forgotten.
        self.evicted_restoring += self.dedupe.evicted() - evicted_before;
    }

    /// Restores the smallest `occurred_at` accepted, from a changelog (`None`: unknown, e.g. a
    /// clock written before it was kept: the next event accepted sets it).
    pub fn restore_earliest(&mut self, earliest: Option<Timestamp>) {
        self.earliest = earliest;
    }

    /// Routes one event: contributions go to `emit`, in goal order.
    pub fn route<'e>(
        &mut self,
        ev: &'e SalesEvent,
        mut emit: impl FnMut(Contribution<'e>),
    ) -> Routed {
        if self
            .dedupe
            .check_and_remember(&ev.event_id, ev.occurred_at, self.stream_time)
        {
            self.stats.duplicates += 1;
            return Routed::Duplicate;
        }
        self.stats.accepted += 1;

        let may_take = self.gate.goals_for(&ev.event_type);
        for (index, goal) in self.goals.goals.iter().enumerate() {
            if !may_take[index] {
                continue;
            }
            let delta = match &goal.measure {
                Measure::Simple {
                    metric,
                    field,
                    filter,
                } => {
                    if !filter.matches(ev) {
                        continue;
                    }
                    match delta_of(*metric, field.as_ref(), ev, self.value_bytes) {
                        Some(d) => d,
                        None => {
                            self.stats.skipped[index] += 1;
                            continue;
                        }
                    }
                }
                Measure::Ratio {
                    numerator,
                    denominator,
                    filter,
                    ..
                } => {
                    if !filter.matches(ev) {
                        continue;
                    }
                    let num = numerator.matches(ev);
                    let den = denominator.matches(ev);
                    if !(num || den) {
                        continue;
                    }
                    Delta::Ratio { num, den }
                }
            };
            let mut group = GroupValues::new();
            for field in &goal.group_by {
                match field.text(ev) {
                    Some(v) if v.len() <= self.value_bytes => group.push(v),
                    _ => break,
                }
            }
            if group.len() != goal.group_by.len() {
                self.stats.skipped[index] += 1;
                continue;
            }
            emit(Contribution {
                goal: index,
                group,
                delta,
                event_id: &ev.event_id,
                event_time: ev.occurred_at,
            });
        }

        let t = ev.occurred_at;
        let later = self.stream_time.is_none_or(|st| t > st);
        let earlier = self.earliest.is_none_or(|e| t < e);
        if later {
            self.stream_time = Some(t);
            self.dedupe.expire(t);
        }
        if earlier {
            self.earliest = Some(t);
        }
        let progress = match (self.stream_time, self.earliest) {
            (Some(stream_time), Some(earliest)) if later || earlier => Some(Progress {
                partition: self.partition,
                stream_time,
                earliest,
            }),
            _ => None,
        };
        Routed::Accepted { progress }
    }

    /// The smallest `occurred_at` accepted so far (see [`Progress::earliest`]).
    pub fn earliest(&self) -> Option<Timestamp> {
        self.earliest
    }
}

fn delta_of<'e>(
    metric: Metric,
    field: Option<&FieldRef>,
    ev: &'e SalesEvent,
    value_bytes: usize,
) -> Option<Delta<'e>> {
    match metric {
        Metric::Count => Some(Delta::Count),
        Metric::Sum | Metric::Avg | Metric::Min | Metric::Max => match field? {
            FieldRef::Amount => ev.amount.map(Delta::Number),
            f => {
                let text = f.text(ev)?;
                parse_amount(text).ok().map(Delta::Number)
            }
        },
        Metric::CountDistinct => field?
            .text_or_amount(ev)
            .filter(|v| v.len() <= value_bytes)
            .map(Delta::Text),
        Metric::Ratio => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::StringField;

    /// Filters of every shape the gate reasons about: one type, a list, no type clause, a type
    /// with another clause, and ratios whose sides name types or not, inside an outer filter.
    const GOALS: &str = r#"
[[goals]]
id = "one-type"
metric = "count"
filter = { event_type = "deal_won" }
window = { tumbling = "1d" }
target = 1

[[goals]]
id = "type-list"
metric = "count"
filter = { event_type = ["deal_won", "deal_lost"] }
window = { tumbling = "1d" }
target = 1

[[goals]]
id = "no-type"
metric = "count"
filter = { region = "East" }
window = { tumbling = "1d" }
target = 1

[[goals]]
id = "everything"
metric = "count"
window = { tumbling = "1d" }
target = 1

[[goals]]
id = "type-and-attribute"
metric = "count"
filter = { event_type = "lead_created", "attributes.segment" = "enterprise" }
window = { tumbling = "1d" }
target = 1

[[goals]]
id = "ratio-typed-sides"
metric = "ratio"
numerator = { event_type = "deal_won" }
denominator = { event_type = ["deal_won", "deal_lost"] }
window = { tumbling = "1d" }
target = 0.5

[[goals]]
id = "ratio-untyped-numerator"
metric = "ratio"
numerator = { region = "East" }
denominator = { event_type = "activity_logged" }
window = { tumbling = "1d" }
target = 0.5

[[goals]]
id = "ratio-in-outer-filter"
metric = "ratio"
numerator = { event_type = "deal_won" }
denominator = { event_type = ["deal_won", "stage_changed"] }
filter = { event_type = ["stage_changed", "lead_created"] }
window = { tumbling = "1d" }
target = 0.5

[[goals]]
id = "ratio-untyped-sides-outer-type"
metric = "ratio"
numerator = { region = "East" }
denominator = { region = ["East", "West"] }
filter = { event_type = "activity_logged" }
window = { tumbling = "1d" }
target = 0.5
"#;

    /// Whether a goal takes the event, by its filters alone (what routing did before the gate).
    fn takes(goal: &crate::goals::Goal, ev: &SalesEvent) -> bool {
        match &goal.measure {
            Measure::Simple { filter, .. } => filter.matches(ev),
            Measure::Ratio {
                numerator,
                denominator,
                filter,
                ..
            } => filter.matches(ev) && (numerator.matches(ev) || denominator.matches(ev)),
        }
    }

    #[test]
    fn the_type_gate_routes_exactly_as_the_filters_do() {
        let goals = Arc::new(GoalSet::from_toml(GOALS).unwrap());
        let mut router = Router::new(goals.clone(), 0, &Limits::DEFAULT);
        let types = [
            "deal_won",
            "deal_lost",
            "lead_created",
            "stage_changed",
            "activity_logged",
            "something_else",
        ];
        let mut n = 0;
        let mut taken_by = vec![0; goals.goals.len()];
        for t in types {
            for region in ["East", "West", ""] {
                for segment in ["enterprise", "smb"] {
                    n += 1;
                    let mut ev = SalesEvent {
                        event_id: format!("e{n}"),
                        event_type: t.into(),
                        occurred_at: Timestamp::from_nanos(n * 1_000_000_000),
                        ..SalesEvent::default()
                    };
                    ev.set_string(StringField::Region, region);
                    ev.set_attribute("segment", segment);
                    let mut routed = Vec::new();
                    router.route(&ev, |c| routed.push(c.goal));
                    let expected: Vec<usize> = (0..goals.goals.len())
                        .filter(|&i| takes(&goals.goals[i], &ev))
                        .collect();
                    assert_eq!(routed, expected, "{t} {region} {segment}");
                    for i in routed {
                        taken_by[i] += 1;
                    }
                }
            }
        }
        // Every goal took some event and turned away some other, so each shape was tried both ways.
        for (i, taken) in taken_by.iter().enumerate() {
            let id = &goals.goals[i].id;
            assert!(*taken > 0, "{id} took nothing");
            assert!(
                *taken < n as usize || &**id == "everything",
                "{id} took everything"
            );
        }
    }

    #[test]
    fn a_group_or_distinct_value_over_the_limit_is_skipped_for_that_goal_only() {
        let goals = Arc::new(
            GoalSet::from_toml(
                r#"
[[goals]]
id = "per-rep"
metric = "count"
group_by = ["rep_id"]
window = { tumbling = "1d" }
target = 1

[[goals]]
id = "distinct-reps"
metric = "count_distinct"
field = "rep_id"
window = { tumbling = "1d" }
target = 1

[[goals]]
id = "all"
metric = "count"
window = { tumbling = "1d" }
target = 1
"#,
            )
            .unwrap(),
        );
        let mut router = Router::new(goals, 0, &Limits::DEFAULT);
        let max = Limits::DEFAULT.value_bytes;
        for (i, len) in [max, max + 1].into_iter().enumerate() {
            let mut ev = SalesEvent {
                event_id: format!("e{i}"),
                event_type: "activity_logged".into(),
                occurred_at: Timestamp::from_nanos(i as i64 + 1),
                ..SalesEvent::default()
            };
            ev.set_string(StringField::RepId, "r".repeat(len));
            let mut routed = Vec::new();
            router.route(&ev, |c| routed.push(c.goal));
            if len <= max {
                assert_eq!(routed, [0, 1, 2], "a value at the limit counts");
            } else {
                assert_eq!(routed, [2], "only the goal that does not read rep_id");
            }
        }
        assert_eq!(router.stats().skipped, [1, 1, 0]);
        assert_eq!(router.stats().accepted, 2);
    }

    #[test]
    fn the_type_gate_lets_through_only_the_types_a_goal_can_take() {
        let goals = GoalSet::from_toml(GOALS).unwrap();
        let gate = TypeGate::new(&goals);
        let ids = |t: &str| -> Vec<&str> {
            let may = gate.goals_for(t);
            goals
                .goals
                .iter()
                .enumerate()
                .filter(|(i, _)| may[*i])
                .map(|(_, g)| &*g.id)
                .collect()
        };
        assert_eq!(
            ids("deal_won"),
            [
                "one-type",
                "type-list",
                "no-type",
                "everything",
                "ratio-typed-sides",
                "ratio-untyped-numerator"
            ]
        );
        assert_eq!(
            ids("stage_changed"),
            [
                "no-type",
                "everything",
                "ratio-untyped-numerator",
                "ratio-in-outer-filter"
            ]
        );
        assert_eq!(
            ids("activity_logged"),
            [
                "no-type",
                "everything",
                "ratio-untyped-numerator",
                "ratio-untyped-sides-outer-type"
            ]
        );
        assert_eq!(
            ids("lead_created"),
            [
                "no-type",
                "everything",
                "type-and-attribute",
                "ratio-untyped-numerator"
            ]
        );
        assert_eq!(
            ids("something_else"),
            ["no-type", "everything", "ratio-untyped-numerator"]
        );
    }
}
