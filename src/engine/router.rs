//! The Router: the per-input-partition half of the engine.

use std::sync::Arc;

use smallvec::SmallVec;

use super::dedupe::{AddedIds, DedupeMemory};
use crate::aggregate::Delta;
use crate::goals::{FieldRef, GoalSet, Measure, Metric};
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
/// that advanced it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The input partition.
    pub partition: u32,
    /// Its stream time: the largest `occurred_at` among its accepted events.
    pub stream_time: Timestamp,
}

/// What the router did with an event.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Routed {
    /// Seen within the dedupe horizon: counted, not applied, stream time unchanged.
    Duplicate,
    /// Accepted; `progress` is set when it advanced stream time.
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

/// Validates, deduplicates and matches the events of one input partition.
///
/// Pure: no clock, no I/O. Each event yields its contributions (through the callback) before the
/// [`Progress`] it causes, so owners judge lateness against stream time as it stood before the event.
#[derive(Debug, Clone)]
pub struct Router {
    goals: Arc<GoalSet>,
    partition: u32,
    stream_time: Option<Timestamp>,
    dedupe: DedupeMemory,
    stats: RouterStats,
}

impl Router {
    /// A router for one input partition.
    pub fn new(goals: Arc<GoalSet>, partition: u32) -> Self {
        let n = goals.goals.len();
        Router {
            dedupe: DedupeMemory::new(goals.dedupe_horizon),
            goals,
            partition,
            stream_time: None,
            stats: RouterStats {
                skipped: vec![0; n],
                ..RouterStats::default()
            },
        }
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
        for (id, t) in ids {
            self.dedupe.remember(id.as_ref(), t);
        }
        // Restored entries are already in the changelog.
        self.dedupe.take_added();
        if let Some(st) = stream_time {
            self.dedupe.expire(st);
        }
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

        for (index, goal) in self.goals.goals.iter().enumerate() {
            let delta = match &goal.measure {
                Measure::Simple {
                    metric,
                    field,
                    filter,
                } => {
                    if !filter.matches(ev) {
                        continue;
                    }
                    match delta_of(*metric, field.as_ref(), ev) {
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
                    Some(v) => group.push(v),
                    None => break,
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

        if self.stream_time.is_none_or(|st| ev.occurred_at > st) {
            self.stream_time = Some(ev.occurred_at);
            self.dedupe.expire(ev.occurred_at);
            Routed::Accepted {
                progress: Some(Progress {
                    partition: self.partition,
                    stream_time: ev.occurred_at,
                }),
            }
        } else {
            Routed::Accepted { progress: None }
        }
    }
}

fn delta_of<'e>(metric: Metric, field: Option<&FieldRef>, ev: &'e SalesEvent) -> Option<Delta<'e>> {
    match metric {
        Metric::Count => Some(Delta::Count),
        Metric::Sum | Metric::Avg | Metric::Min | Metric::Max => match field? {
            FieldRef::Amount => ev.amount.map(Delta::Number),
            f => {
                let text = f.text(ev)?;
                parse_amount(text).ok().map(Delta::Number)
            }
        },
        Metric::CountDistinct => field?.text_or_amount(ev).map(Delta::Text),
        Metric::Ratio => None,
    }
}
