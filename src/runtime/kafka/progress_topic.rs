//! The progress topic (`[output] progress_topic`): each window the owners changed in a
//! transaction, as its current progress record, sent in that transaction.

use std::collections::HashMap;

use rdkafka::message::{Header, OwnedHeaders};

use super::txn::Txn;
use crate::codec::{json, proto, Format};
use crate::engine::OwnerChange;
use crate::goals::GoalSet;
use crate::model::{GoalProgress, Timestamp};
use crate::serve::hub::{goal_progress, WindowAt};

/// The progress records of an owner's changes: an open window's new state, or a closed window's
/// last state with its outcome; `now` is the owner's stream time. Other changes have none.
pub fn progress_of_changes(
    goals: &GoalSet,
    changes: &[OwnerChange],
    now: Option<Timestamp>,
) -> Vec<GoalProgress> {
    changes
        .iter()
        .filter_map(|change| {
            let (goal, key, start, state, open) = match change {
                OwnerChange::Window {
                    goal,
                    group,
                    start,
                    state,
                } => (*goal, group, *start, state, true),
                OwnerChange::Closed {
                    goal,
                    group,
                    start,
                    last,
                } => (*goal, group, *start, last, false),
                _ => return None,
            };
            let at = WindowAt {
                goal: &goals.goals[goal],
                key,
                start,
                state,
                now,
            };
            Some(goal_progress(at, open))
        })
        .collect()
}

/// Keeps the last record of each key, in the order of those last records: at most one record
/// per window per transaction, its latest state.
pub fn coalesce(records: Vec<GoalProgress>) -> Vec<(String, GoalProgress)> {
    let keyed: Vec<(String, GoalProgress)> = records.into_iter().map(|p| (p.key(), p)).collect();
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(keyed.len());
    for (i, (key, _)) in keyed.iter().enumerate() {
        last.insert(key.as_str(), i);
    }
    let keep: Vec<bool> = (0..keyed.len())
        .map(|i| last.get(keyed[i].0.as_str()) == Some(&i))
        .collect();
    keyed
        .into_iter()
        .zip(keep)
        .filter_map(|(record, keep)| keep.then_some(record))
        .collect()
}

/// The progress topic and its format.
pub struct ProgressTopic {
    topic: String,
    format: Format,
    buf: Vec<u8>,
}

impl ProgressTopic {
    /// Records go to `topic` in `format` (`[output] format`).
    pub fn new(topic: String, format: Format) -> Self {
        ProgressTopic {
            topic,
            format,
            buf: Vec::new(),
        }
    }

    /// Sends `records`, coalesced (see [`coalesce`]), in the open transaction, keyed by
    /// [`GoalProgress::key`]; returns how many were sent.
    pub fn send(&mut self, records: Vec<GoalProgress>, txn: &mut Txn) -> u64 {
        let records = coalesce(records);
        for (key, p) in &records {
            self.buf.clear();
            match self.format {
                Format::Json => json::encode_progress(p, &mut self.buf),
                Format::Proto => proto::encode_progress(p, &mut self.buf),
            }
            let headers = OwnedHeaders::new().insert(Header {
                key: "content-type",
                value: Some(super::output::content_type(self.format)),
            });
            txn.send(
                &self.topic,
                None,
                key.as_bytes(),
                Some(&self.buf),
                Some(headers),
            );
        }
        records.len() as u64
    }
}

#[cfg(test)]
#[path = "progress_topic_tests.rs"]
mod tests;
