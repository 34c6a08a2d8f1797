//! A deterministic synthetic stream of CRM sales events, for demos, load tests and integration tests.
//!
//! # What it looks like
//!
//! A fixed cast sells a fixed catalogue:
//!
//! * 3 regions (`East`, `West`, `Central`), 6 teams (`team-east-1` … `team-central-2`), 24 reps
//!   (`rep-01` … `rep-24`, four per team), 300 accounts (`acct-0001` … `acct-0300`, each in one region
//!   and one segment: `smb`, `mid_market` or `enterprise`);
//! * 7 products with list prices in USD: `GTX Basic` 550, `GTX Pro` 4821, `MG Special` 55,
//!   `MG Advanced` 3393, `GTX Plus Pro` 5482, `GTX Plus Basic` 1096, `GTK 500` 26768.
//!
//! The funnel:
//!
//! 1. `lead_created` (`lead_id`, `rep_id`, `team_id`, `region`; attributes `source` ∈ web / referral /
//!    event / outbound and `segment`). Leads arrive at about 36 per business day.
//! 2. Between half a day and eight business days later about 42 % of leads (35 % of web leads, 60 % of
//!    referrals) become an `opportunity_created` (adds `opportunity_id`, `account_id`, `product`,
//!    `lead_id`, `stage` = `prospecting`, `currency` = `USD` and `amount` = list price × quantity less a
//!    discount of 0–15 %, exact to the cent). The others are silently dropped.
//! 3. The opportunity walks `prospecting → qualification → proposal → negotiation` with
//!    `stage_changed` (`previous_stage` → `stage`), logs 0–3 `activity_logged` per stage (attribute
//!    `activity` ∈ call / email / meeting / demo) and one `quote_sent` (with `amount`) in `proposal`.
//! 4. It ends in `deal_won` (`stage` = `closed_won`, final `amount`, sometimes 1–5 % below the quote) or
//!    `deal_lost` (`stage` = `closed_lost`, `amount`, attribute `loss_reason` ∈ price / competitor /
//!    no_decision / timing), with `previous_stage` set to the last open stage.
//!
//! Every event of an opportunity carries `rep_id`, `team_id`, `region`, `account_id`,
//! `opportunity_id`, `product`, `stage`, `currency` and the `segment` attribute. Win rates vary by rep
//! (from about 30 % to 60 %), product (`GTK 500` is hardest, `MG Special` easiest) and segment, so KPIs
//! differ across reps, teams and regions; the overall win rate is about 45 %. An opportunity lives from
//! a few days to about five weeks, typically two to four weeks.
//!
//! # Time
//!
//! Event time starts at [`GenerateConfig::start`] (the first event is exactly there) and then advances
//! on a business clock: Monday to Friday, 08:00 to 18:00 UTC. About 1 % of events (some
//! `activity_logged`) fall outside those hours. The pipeline fills over the first four weeks and then
//! runs at about 800 events per week, so 10,000 events span roughly three months (88 to 101 days over
//! the first 300 seeds; with the default start they end in early April), and monthly windows and the
//! first quarter fill and close.
//!
//! The default start, 2000-01-03, lies far enough back that the streams goalpost's tests, benchmarks
//! and examples use end in the past: a million events span about 23 years. Events ahead of the wall
//! clock would be rejected as `future_timestamp` by `goalpost run` and by default by
//! `goalpost replay`. A longer stream or a later start can run past today: replay it with
//! `--max-future-from stream --max-future 7d` (or `--max-future off`).
//!
//! # Delivery: disorder and redelivery
//!
//! Events are emitted nearly in event-time order, with two deliberate imperfections:
//!
//! * **Late events.** About 2 % of events ([`LATE_PER_MILLE`]) are held back for one to six later
//!   events, so they arrive after events that happened after them.
//! * **Redeliveries.** About 0.5 % of events ([`REDELIVERY_PER_MILLE`]) are emitted a second time, an
//!   exact copy with the same `event_id`, at most a few dozen events after the original (usually 1 to
//!   24). Deduplicating by `event_id` removes them.
//!
//! Counting both, 2–3 % of emitted events have an `occurred_at` earlier than some event emitted before
//! them. No event, late or redelivered, is ever emitted more than [`MAX_LATENESS`] (30 minutes) behind
//! the largest `occurred_at` emitted before it, so a watermark `grace` of 30 minutes (or the
//! conventional 1 hour) never drops a generated event. An opportunity's steps are always more than 30
//! minutes apart, so each opportunity's events (and each lead's `lead_created` before its
//! `opportunity_created`) arrive in order.
//!
//! `event_id`s are `evt-{seed in hex}-{n:08}`, unique per distinct event; lead and opportunity ids are
//! `lead-{n:06}` and `opp-{n:06}`. [`GenerateConfig::events`] counts emitted events, redeliveries
//! included.
//!
//! # Determinism
//!
//! The same [`GenerateConfig`] yields the same events on every platform: randomness comes from an
//! in-module xoshiro256** seeded by SplitMix64, every quantity is an integer (amounts are built from
//! integer cents), and all state lives in ordered containers. Memory is bounded: only the leads and
//! opportunities in flight (a few hundred, at most [`MAX_OPEN_OPPORTUNITIES`] opportunities) and a
//! handful of held-back events are kept.

mod cast;
mod clock;
mod delivery;
mod rng;
mod simulation;
#[cfg(test)]
mod tests;

use crate::model::{Duration, Timestamp};
pub use delivery::Generator;

/// The largest amount by which an emitted event's `occurred_at` lags the largest `occurred_at`
/// emitted before it.
pub const MAX_LATENESS: Duration = Duration::from_secs(30 * 60);

/// Chance, in thousandths, that an event is held back and delivered late.
pub const LATE_PER_MILLE: u32 = 20;

/// Chance, in thousandths, that an event is delivered a second time.
pub const REDELIVERY_PER_MILLE: u32 = 5;

/// Most opportunities open at once; further leads are not converted while the pipeline is this full.
pub const MAX_OPEN_OPPORTUNITIES: usize = 1_000;

/// Settings for the synthetic sales stream.
#[derive(Clone, Debug)]
pub struct GenerateConfig {
    /// Seed of the deterministic random sequence.
    pub seed: u64,
    /// How many events to produce.
    pub events: u64,
    /// Event time of the first event. Default 2000-01-03T00:00:00Z (a Monday).
    pub start: Timestamp,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            seed: 42,
            events: 10_000,
            // 2000-01-03T00:00:00Z, a Monday: so that generated streams end in the past.
            start: Timestamp::from_nanos(946_857_600 * clock::NANOS_PER_SEC),
        }
    }
}
