//! Attainment events: what goalpost publishes about goals.

use std::fmt;
use std::sync::Arc;

use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use super::time::{Timestamp, Window};

/// What an attainment event reports.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttainmentKind {
    /// An `at_least` goal's value reached a milestone fraction of its target.
    Milestone,
    /// An `at_most` goal's value went above its target.
    Breached,
    /// A window closed; carries the outcome.
    Final,
    /// A group has been behind its pace for the goal's `status.for` (look-ahead status).
    AtRisk,
    /// A group reported at risk is back on pace.
    OnTrack,
}

impl AttainmentKind {
    /// All kinds, in output order of the summary.
    pub const ALL: [AttainmentKind; 5] = [
        AttainmentKind::Milestone,
        AttainmentKind::Breached,
        AttainmentKind::Final,
        AttainmentKind::AtRisk,
        AttainmentKind::OnTrack,
    ];

    /// How many kinds there are.
    pub const COUNT: usize = Self::ALL.len();

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            AttainmentKind::Milestone => "milestone",
            AttainmentKind::Breached => "breached",
            AttainmentKind::Final => "final",
            AttainmentKind::AtRisk => "at_risk",
            AttainmentKind::OnTrack => "on_track",
        }
    }

    /// Parses the wire name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for AttainmentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a window ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// The target was met (`at_least`: value >= target; `at_most`: value <= target).
    Attained,
    /// The target was not met.
    Missed,
    /// A ratio goal saw fewer denominator events than `min_denominator`.
    InsufficientData,
}

impl Outcome {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Attained => "attained",
            Outcome::Missed => "missed",
            Outcome::InsufficientData => "insufficient_data",
        }
    }

    /// Parses the wire name.
    pub fn from_name(s: &str) -> Option<Self> {
        [
            Outcome::Attained,
            Outcome::Missed,
            Outcome::InsufficientData,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One attainment event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attainment {
    /// Deterministic id from goal, group, window, kind and milestone (see [`attainment_id`]).
    pub attainment_id: String,
    /// The goal's id.
    pub goal_id: Arc<str>,
    /// What happened.
    pub kind: AttainmentKind,
    /// The group: each `group_by` entry as written in the goal file, with this group's value.
    pub group: Vec<(Arc<str>, String)>,
    /// The window the value belongs to.
    pub window: Window,
    /// The KPI value; `None` only for a ratio window that saw no denominator event.
    pub value: Option<Decimal>,
    /// The goal's target.
    pub target: Decimal,
    /// value / target; `None` when the target is zero or there is no value.
    pub progress: Option<Decimal>,
    /// The milestone fraction reached (milestone events only).
    pub milestone: Option<Decimal>,
    /// The outcome (final events only).
    pub outcome: Option<Outcome>,
    /// The event whose contribution crossed the threshold (milestone and breached events only).
    pub triggered_by: Option<String>,
    /// Milestone and breached: the triggering event's time. Final: the window end. At risk and
    /// on track: the tick.
    pub event_time: Timestamp,
    /// At risk and on track: the value expected at the tick (target × pace).
    pub expected: Option<Decimal>,
    /// At risk and on track: the value projected at the window's end, when there is one.
    pub projected: Option<Decimal>,
    /// At risk and on track: the tick at which the status was evaluated (`value` is as of it).
    pub tick: Option<Timestamp>,
}

/// The deterministic id of an attainment event: the first 16 bytes of SHA-256 over goal, group,
/// window, kind, milestone and tick, in hex. Equal inputs give equal ids on every runtime, so
/// consumers can deduplicate by it.
pub fn attainment_id(
    goal_id: &str,
    group: &[(Arc<str>, String)],
    window: &Window,
    kind: AttainmentKind,
    milestone: Option<Decimal>,
    tick: Option<Timestamp>,
) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(goal_id.as_bytes());
    field(&(group.len() as u64).to_be_bytes());
    for (k, v) in group {
        field(k.as_bytes());
        field(v.as_bytes());
    }
    field(&window.start.as_nanos().to_be_bytes());
    field(&window.end.as_nanos().to_be_bytes());
    field(kind.as_str().as_bytes());
    if let Some(m) = milestone {
        field(m.normalize().to_string().as_bytes());
    }
    if let Some(t) = tick {
        field(&t.as_nanos().to_be_bytes());
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(32);
    for b in &digest[..16] {
        use std::fmt::Write;
        let _ = write!(out, "{b:02x}");
    }
    out
}
