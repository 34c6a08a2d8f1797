//! `/v1/attainments`: recent attainment events of every instance.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{encode_query, error, local_scope, paths, AppState, QueryParams};
use crate::model::Timestamp;
use crate::serve::hub::{self, RecentAttainment};

#[derive(Deserialize)]
pub(super) struct AttainmentParams {
    goal: Option<String>,
    since: Option<String>,
    limit: Option<usize>,
    scope: Option<String>,
}

/// The body of `/v1/attainments`.
#[derive(Serialize, Deserialize)]
pub struct AttainmentsBody {
    /// Oldest first.
    pub attainments: Vec<RecentAttainment>,
    /// Instances that did not answer.
    pub unavailable: Vec<String>,
}

pub(super) async fn attainments(
    State(state): State<AppState>,
    QueryParams(params): QueryParams<AttainmentParams>,
) -> Response {
    let local = match local_scope(&params.scope) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let since = match params.since.as_deref().map(Timestamp::parse_rfc3339) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("since: {e}; expected an RFC 3339 time such as 2026-01-31T23:00:00Z"),
            )
        }
    };
    let limit = params.limit.unwrap_or(100);
    if limit == 0 || limit > hub::RECENT_ATTAINMENTS {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "limit {limit} is out of range; allowed 1..={}",
                hub::RECENT_ATTAINMENTS
            ),
        );
    }
    if let Some(g) = &params.goal {
        if !state.hub.goals().goals.iter().any(|x| *x.id == **g) {
            return error(StatusCode::NOT_FOUND, format!("no goal `{g}`"));
        }
    }
    let mut items: Vec<RecentAttainment> = state
        .hub
        .recent(params.goal.as_deref(), since, limit)
        .iter()
        .map(|a| (**a).clone())
        .collect();
    let mut unavailable = Vec::new();
    if !local {
        if let Some(peers) = &state.peers {
            let mut query = format!("{}?scope=local&limit={limit}", paths::ATTAINMENTS);
            if let Some(g) = &params.goal {
                query.push_str(&format!("&goal={}", encode_query(g)));
            }
            if let Some(s) = &params.since {
                query.push_str(&format!("&since={}", encode_query(s)));
            }
            for (instance, result) in peers.fetch_all::<AttainmentsBody>(&query).await {
                match result.and_then(|body| check_peer_attainments(body, &instance, limit)) {
                    Ok(body) => items.extend(body.attainments),
                    Err(e) => {
                        peers.warn(&instance, &e);
                        unavailable.push(instance);
                    }
                }
            }
        }
    }
    items.sort_by(|a, b| {
        (&a.committed_at, &a.instance, a.seq).cmp(&(&b.committed_at, &b.instance, b.seq))
    });
    let skip = items.len().saturating_sub(limit);
    items.drain(..skip);
    Json(AttainmentsBody {
        attainments: items,
        unavailable,
    })
    .into_response()
}

/// Checks a peer's attainment events: its own, committed at a time, no more than asked.
pub(super) fn check_peer_attainments(
    body: AttainmentsBody,
    instance: &str,
    limit: usize,
) -> Result<AttainmentsBody, String> {
    if body.attainments.len() > limit {
        return Err(format!(
            "{} attainment events answered, at most {limit} asked",
            body.attainments.len()
        ));
    }
    for a in &body.attainments {
        if a.instance != instance {
            return Err(format!("an attainment event of instance `{}`", a.instance));
        }
        if Timestamp::parse_rfc3339(&a.committed_at).is_err() {
            return Err(format!(
                "committed_at `{}` is not an RFC 3339 time",
                a.committed_at
            ));
        }
    }
    Ok(body)
}
