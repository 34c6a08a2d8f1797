//! The events file both replays read: the CSV rows as events, a little out of order, with copies.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use crate::support::crm_data::*;

/// What [`write_events`] wrote.
pub(crate) struct EventsFile {
    /// The events, each once, in the order written.
    pub(crate) events: Vec<Event>,
    /// Lines written: every event plus the copies.
    pub(crate) lines: usize,
    /// Events written twice.
    pub(crate) copies: u64,
    /// How the events were put out of order.
    pub(crate) shuffled: Disorder,
}

/// Writes the events of the CSV rows to `path` as JSON lines: sorted by time, then some
/// neighbours swapped ([`disorder`]) and some events sent twice ([`with_duplicates`]).
pub(crate) fn write_events(
    opportunities: &[Opportunity],
    teams: &HashMap<String, Team>,
    path: &Path,
) -> EventsFile {
    let mut events = to_events(opportunities, teams);
    let shuffled = disorder(&mut events);
    let (lines, copies) = with_duplicates(&events);
    let mut text = lines.join("\n");
    text.push('\n');
    fs::write(path, text).unwrap();
    let lines = lines.len();
    EventsFile {
        events,
        lines,
        copies,
        shuffled,
    }
}
