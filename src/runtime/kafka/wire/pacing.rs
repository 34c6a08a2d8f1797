//! The look-ahead status of a window in its changelog record (`PacingState`).

use std::collections::BTreeMap;

use super::state::{aggregate_from_pb, aggregate_to_pb};
use super::{invalid, pb, WireError};
use crate::aggregate::Aggregate;
use crate::engine::{Pacing, StatusState, StatusTracker};
use crate::model::Timestamp;

const W: &str = "window state";

/// A record holding only an aggregate (the part before the next tick, or a pane).
fn aggregate_record(a: &Aggregate) -> pb::WindowStateRecord {
    pb::WindowStateRecord {
        aggregate: Some(aggregate_to_pb(a)),
        ..Default::default()
    }
}

/// Encodes a window's look-ahead status; panes in ascending order, so equal states encode to
/// equal bytes.
pub(super) fn pacing_to_pb(p: &Pacing) -> pb::PacingState {
    use pb::pacing_state::Status;
    let status = match p.tracker.state {
        StatusState::OnTrack => Status::OnTrack(true),
        StatusState::Pending { since } => Status::PendingSince(since.as_nanos()),
        StatusState::AtRisk => Status::AtRisk(true),
    };
    pb::PacingState {
        before: Some(Box::new(aggregate_record(&p.before))),
        panes: p
            .panes
            .iter()
            .map(|(interval, a)| pb::PaneState {
                interval: *interval,
                aggregate: Some(aggregate_record(a)),
            })
            .collect(),
        next: p.next,
        first: p.first.map(Timestamp::as_nanos),
        status: Some(status),
        last_tick: p.tracker.last_tick.map(Timestamp::as_nanos),
    }
}

/// Decodes a window's look-ahead status. Its aggregates must be of the same metric as the
/// window's `aggregate`, and its panes after tick `next`, each once.
pub(super) fn pacing_from_pb(
    r: &pb::PacingState,
    aggregate: &Aggregate,
) -> Result<Pacing, WireError> {
    use pb::pacing_state::Status;
    let same_metric = |a: Aggregate| {
        if std::mem::discriminant(&a) == std::mem::discriminant(aggregate) {
            Ok(a)
        } else {
            Err(invalid(W, "a look-ahead aggregate of another metric"))
        }
    };
    let before = r.before.as_deref().and_then(|b| b.aggregate.as_ref());
    let before = same_metric(aggregate_from_pb(before)?)?;
    let mut panes = BTreeMap::new();
    for pane in &r.panes {
        if pane.interval <= r.next || panes.keys().next_back() >= Some(&pane.interval) {
            return Err(invalid(
                W,
                format!(
                    "pane {} out of order: panes follow tick {} in ascending order",
                    pane.interval, r.next
                ),
            ));
        }
        let a = aggregate_from_pb(pane.aggregate.as_ref().and_then(|a| a.aggregate.as_ref()))?;
        panes.insert(pane.interval, same_metric(a)?);
    }
    let state = match r.status {
        None => return Err(invalid(W, "a look-ahead status without its state")),
        Some(Status::OnTrack(_)) => StatusState::OnTrack,
        Some(Status::PendingSince(since)) => StatusState::Pending {
            since: Timestamp::from_nanos(since),
        },
        Some(Status::AtRisk(_)) => StatusState::AtRisk,
    };
    Ok(Pacing {
        before,
        panes,
        next: r.next,
        first: r.first.map(Timestamp::from_nanos),
        tracker: StatusTracker {
            state,
            last_tick: r.last_tick.map(Timestamp::from_nanos),
        },
    })
}
