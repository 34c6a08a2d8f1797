//! The goal engine: a pure fold from sales events to attainment events.
//!
//! Two halves, shared by every runtime (see `docs/architecture.md`):
//! - [`Router`], one per input partition: dedupe, stream time, goal matching.
//! - [`Owner`], one per repartition partition: windows, watermark, lateness, milestones, finals.
//!
//! [`Pipeline`] wires one router to one owner in process; `goalpost replay` is exactly that.

mod dedupe;
mod owner;
pub mod partition;
mod roster;
mod router;
mod status;

use std::sync::Arc;

pub use dedupe::{AddedIds, DedupeMemory, DEFAULT_DEDUPE_MAX_IDS};
pub use owner::{
    final_outcome, Applied, GroupKey, Owner, OwnerChange, OwnerStats, Pacing, WindowState,
};
pub use roster::{CsvProblem, Member, RecordChange, Roster, RosterError, RosterPlace};
pub use router::{Contribution, GroupValues, Progress, Routed, Router, RouterStats};
pub use status::{
    expected, projected, Condition, Evaluation, StatusRule, StatusState, StatusTracker, Transition,
};

use crate::goals::GoalSet;
use crate::limits::Limits;
use crate::model::{Attainment, SalesEvent};

/// One router feeding one owner: the whole engine for a single ordered input.
#[derive(Debug, Clone)]
pub struct Pipeline {
    router: Router,
    owner: Owner,
}

impl Pipeline {
    /// A pipeline for one input partition, with the default limits and dedupe cap.
    pub fn new(goals: Arc<GoalSet>) -> Self {
        Self::with_limits(goals, &Limits::DEFAULT, DEFAULT_DEDUPE_MAX_IDS)
    }

    /// A pipeline that checks values against `limits` and whose dedupe memory holds at most
    /// `max_ids` ids.
    pub fn with_limits(goals: Arc<GoalSet>, limits: &Limits, max_ids: usize) -> Self {
        let mut router = Router::new(goals.clone(), 0, limits);
        router.set_dedupe_max_ids(max_ids);
        Pipeline {
            router,
            owner: Owner::new(goals, 1),
        }
    }

    /// Folds one validated event, appending attainment events to `out`.
    pub fn process(&mut self, ev: &SalesEvent, out: &mut Vec<Attainment>) -> Routed {
        let owner = &mut self.owner;
        let routed = self.router.route(ev, |c| {
            owner.apply(&c, out);
        });
        if let Routed::Accepted {
            progress: Some(p), ..
        } = routed
        {
            self.owner.progress(p, out);
        }
        routed
    }

    /// Ends the input: closes every open window.
    pub fn finish(&mut self, out: &mut Vec<Attainment>) {
        self.owner.close_all(out);
    }

    /// Gives the goals their rosters, indexed by goal (see [`Owner::set_rosters`]).
    pub fn set_rosters(&mut self, rosters: Vec<Option<Roster>>) {
        self.owner.set_rosters(rosters, (0, 1));
    }

    /// The router half.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The owner half.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }
}

#[cfg(test)]
mod lookahead_tests;
#[cfg(test)]
mod tests;
