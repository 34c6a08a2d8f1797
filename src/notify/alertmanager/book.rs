//! The alert book: the active alerts of one attainment partition, and how each attainment event
//! changes them.
//!
//! - `breached` and `at_risk` (when in `fire`) fire their alert of the event's window, unless it
//!   is active already (the same event read twice, or a second `at_risk`): nothing changes then,
//!   `startsAt` included.
//! - `on_track` resolves the at-risk alert of its window.
//! - `final` resolves every alert of its window, then (with `missed_alert`, outcome `missed`)
//!   fires the missed alert, which ends `missed_alert_for` after it fired.
//! - Any event of a window resolves the alerts of the same goal and group whose window ended at
//!   or before its start (an older window), missed alerts excepted: they end on their own.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::alert::{Alert, AlertKey, AlertKind};
use super::rules::Rules;
use super::state::{self, Record};
use crate::model::{Attainment, AttainmentKind, Outcome, Timestamp};

/// How the active alerts changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new alert fires: post it.
    Fired(Alert),
    /// An active alert is resolved (`ends_at` set): post it.
    Resolved(Alert),
    /// An alert that ends on its own has ended: forget it, nothing to post.
    Expired(Alert),
}

impl Change {
    /// The alert to post to Alertmanager, if any.
    pub fn to_post(&self) -> Option<&Alert> {
        match self {
            Change::Fired(a) | Change::Resolved(a) => Some(a),
            Change::Expired(_) => None,
        }
    }

    /// Its state-topic record.
    pub fn state_record(&self) -> Record {
        match self {
            Change::Fired(a) => state::active_record(a),
            Change::Resolved(a) | Change::Expired(a) => state::gone_record(&a.key),
        }
    }
}

#[derive(Debug, Clone)]
struct Active {
    alert: Alert,
    /// Wall clock of the last time it was sent; `None`: never (restored).
    last_sent: Option<Timestamp>,
}

/// The active alerts of one attainment partition.
#[derive(Debug, Clone)]
pub struct AlertBook {
    rules: Arc<Rules>,
    active: BTreeMap<AlertKey, Active>,
}

impl AlertBook {
    /// An empty book.
    pub fn new(rules: Arc<Rules>) -> Self {
        AlertBook {
            rules,
            active: BTreeMap::new(),
        }
    }

    /// Applies an attainment event read at wall-clock time `now` (kept to the millisecond, the
    /// precision of Alertmanager's API); fired alerts count as sent at `now`.
    pub fn apply(&mut self, a: &Attainment, now: Timestamp) -> Vec<Change> {
        let now = Timestamp::from_millis(now.as_millis());
        if !self.rules.wants_goal(&a.goal_id) {
            return Vec::new();
        }
        let mut changes = self.resolve_older(a, now);
        if let Some(kind) = self.rules.fires(a.kind) {
            changes.extend(self.fire(a, kind, now));
        }
        match a.kind {
            AttainmentKind::OnTrack => {
                let key = Rules::key(a, AlertKind::AtRisk);
                changes.extend(self.resolve(&key, now));
            }
            AttainmentKind::Final => {
                changes.extend(self.resolve_window(a, now));
                if a.outcome == Some(Outcome::Missed) && self.rules.missed_for().is_some() {
                    changes.extend(self.fire(a, AlertKind::Missed, now));
                }
            }
            _ => {}
        }
        changes
    }

    /// The alerts due to be sent again at `now` (sent `resend_interval` ago or never), now
    /// counted as sent; alerts that ended by `now` are expired instead.
    pub fn take_due(&mut self, now: Timestamp) -> (Vec<Alert>, Vec<Change>) {
        let ended: Vec<AlertKey> = self
            .active
            .iter()
            .filter(|(_, a)| a.alert.ends_at.is_some_and(|end| end <= now.as_nanos()))
            .map(|(k, _)| k.clone())
            .collect();
        let expired = ended
            .iter()
            .filter_map(|k| self.active.remove(k))
            .map(|a| Change::Expired(a.alert))
            .collect();
        let interval = self.rules.resend_interval;
        let due = self
            .active
            .values_mut()
            .filter(|a| {
                a.last_sent
                    .is_none_or(|t| t.saturating_add(interval) <= now)
            })
            .map(|a| {
                a.last_sent = Some(now);
                a.alert.clone()
            })
            .collect();
        (due, expired)
    }

    /// Takes a record of the state topic: an active alert, or the end of one.
    pub fn restore(&mut self, stored: state::Stored) {
        match stored {
            state::Stored::Active(alert) => {
                let key = alert.key.clone();
                let entry = Active {
                    alert,
                    last_sent: None,
                };
                self.active.insert(key, entry);
            }
            state::Stored::Gone(key) => {
                self.active.remove(&key);
            }
        }
    }

    /// The active alerts.
    pub fn active(&self) -> impl Iterator<Item = &Alert> {
        self.active.values().map(|a| &a.alert)
    }

    /// How many alerts are active.
    pub fn len(&self) -> usize {
        self.active.len()
    }

    /// Whether no alert is active.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    fn fire(&mut self, a: &Attainment, kind: AlertKind, now: Timestamp) -> Option<Change> {
        let key = Rules::key(a, kind);
        if self.active.contains_key(&key) {
            return None;
        }
        let alert = self.rules.alert(a, kind, now);
        let entry = Active {
            alert: alert.clone(),
            last_sent: Some(now),
        };
        self.active.insert(key, entry);
        Some(Change::Fired(alert))
    }

    fn resolve(&mut self, key: &AlertKey, now: Timestamp) -> Option<Change> {
        let mut alert = self.active.remove(key)?.alert;
        alert.ends_at = Some(now.as_nanos().max(alert.starts_at));
        Some(Change::Resolved(alert))
    }

    fn resolve_where(
        &mut self,
        now: Timestamp,
        pick: impl Fn(&AlertKey, &Alert) -> bool,
    ) -> Vec<Change> {
        let keys: Vec<AlertKey> = self
            .active
            .iter()
            .filter(|(k, a)| pick(k, &a.alert))
            .map(|(k, _)| k.clone())
            .collect();
        keys.iter().filter_map(|k| self.resolve(k, now)).collect()
    }

    fn resolve_window(&mut self, a: &Attainment, now: Timestamp) -> Vec<Change> {
        let start = a.window.start.as_nanos();
        self.resolve_where(now, |k, _| {
            k.window_start == start && same_series(k, a) && k.kind != AlertKind::Missed
        })
    }

    fn resolve_older(&mut self, a: &Attainment, now: Timestamp) -> Vec<Change> {
        let start = a.window.start.as_nanos();
        self.resolve_where(now, |k, alert| {
            alert.window_end <= start && same_series(k, a) && k.kind != AlertKind::Missed
        })
    }
}

fn same_series(k: &AlertKey, a: &Attainment) -> bool {
    *k.goal == *a.goal_id
        && k.group.len() == a.group.len()
        && k.group
            .iter()
            .zip(&a.group)
            .all(|((kf, kv), (af, av))| kf == &**af && kv == av)
}
