//! The look-ahead part of the query API, for goals with `status`: a goal's pace and status
//! settings, and each window's current status, expected and projected values.

use std::fmt;

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::views::{decimal_json, Num};
use crate::engine::{StatusState, StatusTracker, WindowState};
use crate::goals::{Goal, Pace};
use crate::model::{ProgressStatus, Timestamp};
use crate::window::{elapsed_fraction, Window};

/// The status names a window view may carry, in the order of [`StatusState`].
pub const STATUS_NAMES: [&str; 3] = ["on_track", "pending", "at_risk"];

/// Decimal places of the `expected` and `projected` values shown (as for `pace`).
const SHOWN_DP: u32 = 4;

/// A goal's pace as the query API shows it: `"linear"`, or its `[elapsed, expected]` points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaceView {
    /// The target accrues evenly over the window.
    Linear,
    /// Piecewise linear through these points, from `[0, 0]` to `[1, 1]`.
    Curve(Vec<[Num; 2]>),
}

impl PaceView {
    /// The view of a pace.
    pub fn of(pace: &Pace) -> PaceView {
        match pace {
            Pace::Linear => PaceView::Linear,
            Pace::Curve(points) => PaceView::Curve(
                points
                    .iter()
                    .map(|(e, x)| [decimal_json(*e), decimal_json(*x)])
                    .collect(),
            ),
        }
    }
}

impl Serialize for PaceView {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PaceView::Linear => s.serialize_str("linear"),
            PaceView::Curve(points) => {
                let mut seq = s.serialize_seq(Some(points.len()))?;
                for p in points {
                    seq.serialize_element(p)?;
                }
                seq.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for PaceView {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PaceVisitor)
    }
}

/// Reads a pace without buffering, so that [`Num`] reads its points from the JSON text.
struct PaceVisitor;

impl<'de> Visitor<'de> for PaceVisitor {
    type Value = PaceView;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"linear\" or a list of [elapsed, expected] points")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PaceView, E> {
        if v == "linear" {
            Ok(PaceView::Linear)
        } else {
            Err(E::custom(format!(
                "pace `{}` is not allowed; expected \"linear\" or a list of points",
                v.chars().take(64).collect::<String>()
            )))
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PaceView, A::Error> {
        let mut points = Vec::new();
        while let Some(p) = seq.next_element::<[Num; 2]>()? {
            points.push(p);
        }
        Ok(PaceView::Curve(points))
    }
}

/// A goal's `status` settings, as the query API shows them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatusView {
    /// The interval between ticks.
    pub every: String,
    /// How far below the expected value an `at_least` group may fall before it is at risk.
    pub tolerance: Num,
    /// How long a group must stay at risk before `at_risk` is reported.
    #[serde(rename = "for")]
    pub hold: String,
}

impl StatusView {
    /// The view of a goal's status settings; `None` without `status`.
    pub fn of(goal: &Goal) -> Option<StatusView> {
        goal.status.as_ref().map(|s| StatusView {
            every: s.every.to_string(),
            tolerance: decimal_json(s.tolerance),
            hold: s.hold.to_string(),
        })
    }
}

/// The name of a tracker's state.
pub fn status_name(state: StatusState) -> &'static str {
    match state {
        StatusState::OnTrack => STATUS_NAMES[0],
        StatusState::Pending { .. } => STATUS_NAMES[1],
        StatusState::AtRisk => STATUS_NAMES[2],
    }
}

/// The look-ahead of `window` of a goal (status, last decided tick, expected and projected),
/// from its current value at `now` (the owner's stream time); `None` when the goal has no
/// `status`.
pub fn look_ahead_of(
    goal: &Goal,
    window: Window,
    ws: &WindowState,
    now: Option<Timestamp>,
) -> Option<ProgressStatus> {
    goal.status.as_ref()?;
    let tracker: StatusTracker = ws.pacing.as_ref().map(|p| p.tracker).unwrap_or_default();
    let elapsed = now.map(|n| elapsed_fraction(&window, n));
    let expected = elapsed.map(|e| crate::engine::expected(goal.target, &goal.pace, e));
    let projected = match (ws.aggregate.value(), elapsed) {
        (Some(v), Some(e)) => crate::engine::projected(goal.direction, v, &goal.pace, e),
        _ => None,
    };
    Some(ProgressStatus {
        status: status_name(tracker.state),
        tick: tracker.last_tick,
        expected: expected.map(|x| x.round_dp(SHOWN_DP)),
        projected: projected.map(|x| x.round_dp(SHOWN_DP)),
    })
}

/// Reads a field that is present (possibly `null`) as `Some`: with `#[serde(default)]`, an
/// absent field stays `None`, so "absent" and "null" remain apart.
pub(super) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
