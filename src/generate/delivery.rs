//! The delivery layer: the simulation's events in near event-time order, some held back (late)
//! and some sent twice (redeliveries), within the lateness budget.

use std::collections::VecDeque;

use super::rng::{Rng, SplitMix64};
use super::simulation::Simulation;
use super::{GenerateConfig, LATE_PER_MILLE, MAX_LATENESS, REDELIVERY_PER_MILLE};
use crate::model::{SalesEvent, Timestamp};

/// A deterministic, realistic stream of sales events; see the [module documentation](super).
pub struct Generator {
    config: GenerateConfig,
    pub(super) sim: Simulation,
    /// Randomness of the delivery layer, separate so that disorder never changes event content.
    rng: Rng,
    pub(super) ready: VecDeque<Delivery>,
    pub(super) pending: Vec<Pending>,
    /// `occurred_at` of the latest simulated event pulled (the simulation runs in time order).
    horizon: Timestamp,
    pulled: u64,
    emitted: u64,
}

impl Generator {
    /// A generator for `config`.
    pub fn new(config: GenerateConfig) -> Self {
        let mut seeder = SplitMix64(config.seed);
        let sim_rng = Rng::from_seeder(&mut seeder);
        let rng = Rng::from_seeder(&mut seeder);
        Generator {
            sim: Simulation::new(config.seed, config.start, sim_rng),
            config,
            rng,
            ready: VecDeque::new(),
            pending: Vec::new(),
            horizon: Timestamp::MIN,
            pulled: 0,
            emitted: 0,
        }
    }

    /// Pulls the next event of the simulation (in event-time order) through the delivery layer.
    fn refill(&mut self) {
        let event = self.sim.next_event();
        let at = event.occurred_at;
        self.horizon = at;
        // Anything whose lateness budget would be exceeded by this event goes out first.
        self.release(|p| p.deadline < at);
        let first = self.pulled == 0;
        self.pulled += 1;
        if !first && self.rng.chance(LATE_PER_MILLE) {
            self.pending.push(Pending {
                after: self.rng.range(1, 6) as u32,
                deadline: at.saturating_add(MAX_LATENESS),
                event,
                redelivery: false,
            });
            return;
        }
        self.ready.push_back(Delivery {
            event,
            redelivery: false,
        });
        self.release(|p| {
            p.after -= 1;
            p.after == 0
        });
    }

    /// Moves the held-back events for which `due` says so to the ready queue, in the order they
    /// were held; `due` sees every held event once.
    fn release(&mut self, mut due: impl FnMut(&mut Pending) -> bool) {
        let mut i = 0;
        while i < self.pending.len() {
            if due(&mut self.pending[i]) {
                let p = self.pending.remove(i);
                self.ready.push_back(Delivery {
                    event: p.event,
                    redelivery: p.redelivery,
                });
            } else {
                i += 1;
            }
        }
    }
}

impl Iterator for Generator {
    type Item = SalesEvent;

    fn next(&mut self) -> Option<SalesEvent> {
        if self.emitted >= self.config.events {
            return None;
        }
        let delivery = loop {
            if let Some(d) = self.ready.pop_front() {
                break d;
            }
            self.refill();
        };
        if !delivery.redelivery && self.rng.chance(REDELIVERY_PER_MILLE) {
            let after = self.rng.range(1, 24) as u32;
            let deadline = delivery.event.occurred_at.saturating_add(MAX_LATENESS);
            let copy = delivery.event.clone();
            if deadline < self.horizon {
                // An event already queued for delivery lies beyond the lateness budget of the copy,
                // so the copy goes out right away (everything emitted so far is within budget).
                self.ready.push_front(Delivery {
                    event: copy,
                    redelivery: true,
                });
            } else {
                self.pending.push(Pending {
                    after,
                    deadline,
                    event: copy,
                    redelivery: true,
                });
            }
        }
        self.emitted += 1;
        Some(delivery.event)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.config.events - self.emitted).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

/// An event on its way out.
pub(super) struct Delivery {
    event: SalesEvent,
    redelivery: bool,
}

/// An event held back: released after `after` more simulated events, or earlier when the next
/// simulated event lies beyond `deadline`.
pub(super) struct Pending {
    after: u32,
    deadline: Timestamp,
    event: SalesEvent,
    redelivery: bool,
}
