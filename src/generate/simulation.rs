//! The simulation: a queue of due work, popped in event-time order.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::cast::*;
use super::clock::*;
use super::rng::Rng;
use super::MAX_OPEN_OPPORTUNITIES;
use crate::model::{Decimal, SalesEvent, StringField, Timestamp};

pub(super) struct Simulation {
    rng: Rng,
    seed: u64,
    /// Sub-second part of `start`, added to every event time so the first event is exactly `start`.
    subsec_nanos: i64,
    pub(super) queue: BinaryHeap<Scheduled>,
    next_seq: u64,
    next_event: u64,
    next_lead: u64,
    next_opportunity: u64,
    open_opportunities: usize,
}

/// A piece of work due at `due` (seconds); ties are broken by scheduling order.
pub(super) struct Scheduled {
    due: i64,
    seq: u64,
    task: Task,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    /// Reversed, so the max-heap pops the earliest work first.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .due
            .cmp(&self.due)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

enum Task {
    /// The arrival of the next lead.
    NewLead,
    /// A lead waiting to be converted or dropped.
    Lead(Lead),
    /// An open opportunity's next step.
    Opportunity(Box<Opportunity>),
}

struct Lead {
    id: String,
    rep: usize,
    account: usize,
}

struct Opportunity {
    id: String,
    lead_id: String,
    account_id: String,
    rep: usize,
    segment: usize,
    product: usize,
    /// Current amount in cents.
    amount_cents: i64,
    /// Index into [`STAGES`].
    stage: u8,
    quote_sent: bool,
    activities_left: u8,
    won: bool,
    /// For lost opportunities, the stage at which they are lost.
    lost_at: u8,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Step {
    Activity,
    Quote,
    Advance,
    Win,
    Lose,
}

impl Opportunity {
    fn next_step(&self) -> Step {
        if self.activities_left > 0 {
            Step::Activity
        } else if self.stage == PROPOSAL && !self.quote_sent {
            Step::Quote
        } else if !self.won && self.stage == self.lost_at {
            Step::Lose
        } else if self.stage == NEGOTIATION {
            Step::Win
        } else {
            Step::Advance
        }
    }
}

fn cents(amount_cents: i64) -> Decimal {
    Decimal::new(amount_cents, 2)
}

impl Simulation {
    pub(super) fn new(seed: u64, start: Timestamp, rng: Rng) -> Self {
        let nanos = start.as_nanos();
        let mut sim = Simulation {
            rng,
            seed,
            subsec_nanos: nanos.rem_euclid(NANOS_PER_SEC),
            queue: BinaryHeap::new(),
            next_seq: 0,
            next_event: 0,
            next_lead: 0,
            next_opportunity: 0,
            open_opportunities: 0,
        };
        sim.schedule(nanos.div_euclid(NANOS_PER_SEC), Task::NewLead);
        sim
    }

    fn schedule(&mut self, due: i64, task: Task) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push(Scheduled { due, seq, task });
    }

    /// The next event in event-time order (the lead arrival process never ends).
    pub(super) fn next_event(&mut self) -> SalesEvent {
        loop {
            let Scheduled { due, task, .. } = self.queue.pop().expect("lead arrivals never stop");
            let event = match task {
                Task::NewLead => Some(self.new_lead(due)),
                Task::Lead(lead) => self.convert(due, lead),
                Task::Opportunity(opp) => Some(self.advance(due, opp)),
            };
            if let Some(event) = event {
                return event;
            }
        }
    }

    /// A fresh event with id, type and time.
    fn event(&mut self, event_type: &str, at: i64) -> SalesEvent {
        let n = self.next_event;
        self.next_event += 1;
        SalesEvent {
            event_id: format!("evt-{:x}-{n:08}", self.seed),
            event_type: event_type.to_string(),
            occurred_at: Timestamp::from_nanos(
                at.saturating_mul(NANOS_PER_SEC)
                    .saturating_add(self.subsec_nanos),
            ),
            ..SalesEvent::default()
        }
    }

    fn set_rep(event: &mut SalesEvent, rep: usize) {
        let team = &TEAMS[REPS[rep].team];
        event.set_string(StringField::RepId, REPS[rep].id);
        event.set_string(StringField::TeamId, team.id);
        event.set_string(StringField::Region, REGIONS[team.region]);
    }

    fn new_lead(&mut self, at: i64) -> SalesEvent {
        let rng = &mut self.rng;
        let account = rng.below(ACCOUNTS as u64) as usize;
        let region = account_region(account);
        let candidates: Vec<(usize, u32)> = REPS
            .iter()
            .enumerate()
            .filter(|(_, r)| TEAMS[r.team].region == region)
            .map(|(i, r)| (i, r.lead_weight))
            .collect();
        let rep = rng.pick(&candidates);
        let source = rng.weighted(&SOURCES.map(|(_, w, _)| w));
        let converts = rng.chance(SOURCES[source].2);
        let decide_in = rng.range(BUSINESS_DAY / 2, 8 * BUSINESS_DAY);
        let next_in = rng.range(60, 2 * LEAD_INTERARRIVAL - 60);

        let id = format!("lead-{:06}", self.next_lead + 1);
        self.next_lead += 1;
        let mut event = self.event("lead_created", at);
        Self::set_rep(&mut event, rep);
        event.set_string(StringField::LeadId, id.as_str());
        event.set_attribute("segment", SEGMENTS[account_segment(account)]);
        event.set_attribute("source", SOURCES[source].0);

        if converts {
            self.schedule(
                after_business(at, decide_in),
                Task::Lead(Lead { id, rep, account }),
            );
        }
        self.schedule(after_business(at, next_in), Task::NewLead);
        event
    }

    /// Turns a lead into an opportunity, or drops it when the pipeline is full.
    fn convert(&mut self, at: i64, lead: Lead) -> Option<SalesEvent> {
        if self.open_opportunities >= MAX_OPEN_OPPORTUNITIES {
            return None;
        }
        let rng = &mut self.rng;
        let segment = account_segment(lead.account);
        let product = rng.weighted(&PRODUCTS.map(|p| p.weights[segment]));
        let (lo, hi) = PRODUCTS[product].quantity[segment];
        let quantity = rng.range(lo, hi);
        let discount_pct = if rng.chance(400) { 0 } else { rng.range(1, 15) };
        // list price (whole dollars) × quantity × (100 - discount) / 100, in cents.
        let amount_cents = PRODUCTS[product].list_price * quantity * (100 - discount_pct);
        let win_per_mille = (REPS[lead.rep].win_per_mille
            + PRODUCTS[product].win_adjust
            + SEGMENT_WIN_ADJUST[segment])
            .clamp(200, 700);
        let won = rng.chance(win_per_mille as u32);
        let lost_at = rng.weighted(&LOST_AT_WEIGHTS) as u8;
        let activities_left = rng.weighted(&ACTIVITY_COUNT_WEIGHTS) as u8;

        self.next_opportunity += 1;
        self.open_opportunities += 1;
        let opp = Box::new(Opportunity {
            id: format!("opp-{:06}", self.next_opportunity),
            lead_id: lead.id,
            account_id: format!("acct-{:04}", lead.account + 1),
            rep: lead.rep,
            segment,
            product,
            amount_cents,
            stage: 0,
            quote_sent: false,
            activities_left,
            won,
            lost_at,
        });
        let mut event = self.opportunity_event("opportunity_created", at, &opp);
        event.set_string(StringField::LeadId, opp.lead_id.as_str());
        event.amount = Some(cents(opp.amount_cents));
        self.schedule_next(at, opp);
        Some(event)
    }

    /// An event carrying everything every opportunity event carries.
    fn opportunity_event(&mut self, event_type: &str, at: i64, opp: &Opportunity) -> SalesEvent {
        let mut event = self.event(event_type, at);
        Self::set_rep(&mut event, opp.rep);
        event.set_string(StringField::AccountId, opp.account_id.as_str());
        event.set_string(StringField::OpportunityId, opp.id.as_str());
        event.set_string(StringField::Product, PRODUCTS[opp.product].name);
        event.set_string(StringField::Stage, STAGES[usize::from(opp.stage)]);
        event.set_string(StringField::Currency, "USD");
        event.set_attribute("segment", SEGMENTS[opp.segment]);
        event
    }

    /// Schedules the opportunity's next step after a pause fitting that step.
    fn schedule_next(&mut self, at: i64, opp: Box<Opportunity>) {
        let rng = &mut self.rng;
        let due = match opp.next_step() {
            // Mostly during business hours; now and then an email or call after hours.
            Step::Activity if rng.chance(50) => at + rng.range(HOUR, 2 * DAY),
            Step::Activity => after_business(at, rng.range(HOUR, 3 * BUSINESS_DAY / 2)),
            Step::Quote => after_business(at, rng.range(2 * HOUR, 2 * BUSINESS_DAY)),
            Step::Advance => after_business(at, rng.range(4 * HOUR, 5 * BUSINESS_DAY)),
            Step::Win | Step::Lose => after_business(at, rng.range(BUSINESS_DAY, 6 * BUSINESS_DAY)),
        };
        self.schedule(due, Task::Opportunity(opp));
    }

    /// Performs the opportunity's next step.
    fn advance(&mut self, at: i64, mut opp: Box<Opportunity>) -> SalesEvent {
        match opp.next_step() {
            Step::Activity => {
                opp.activities_left -= 1;
                let activity = self.rng.pick(&ACTIVITIES);
                let mut event = self.opportunity_event("activity_logged", at, &opp);
                event.set_attribute("activity", activity);
                self.schedule_next(at, opp);
                event
            }
            Step::Quote => {
                opp.quote_sent = true;
                let mut event = self.opportunity_event("quote_sent", at, &opp);
                event.amount = Some(cents(opp.amount_cents));
                self.schedule_next(at, opp);
                event
            }
            Step::Advance => {
                let previous = STAGES[usize::from(opp.stage)];
                opp.stage += 1;
                opp.activities_left = self.rng.weighted(&ACTIVITY_COUNT_WEIGHTS) as u8;
                let mut event = self.opportunity_event("stage_changed", at, &opp);
                event.set_string(StringField::PreviousStage, previous);
                self.schedule_next(at, opp);
                event
            }
            Step::Win => {
                if self.rng.chance(350) {
                    let extra_pct = self.rng.range(1, 5);
                    opp.amount_cents = opp.amount_cents * (100 - extra_pct) / 100;
                }
                self.close(at, &opp, "deal_won", "closed_won")
            }
            Step::Lose => {
                let reason = self.rng.pick(&LOSS_REASONS);
                let mut event = self.close(at, &opp, "deal_lost", "closed_lost");
                event.set_attribute("loss_reason", reason);
                event
            }
        }
    }

    fn close(&mut self, at: i64, opp: &Opportunity, event_type: &str, stage: &str) -> SalesEvent {
        self.open_opportunities -= 1;
        let mut event = self.opportunity_event(event_type, at, opp);
        event.set_string(StringField::PreviousStage, STAGES[usize::from(opp.stage)]);
        event.set_string(StringField::Stage, stage);
        event.amount = Some(cents(opp.amount_cents));
        event
    }
}
