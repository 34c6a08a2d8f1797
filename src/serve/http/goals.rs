//! `/v1/goals` and `/v1/goals/{id}`: the goals, and one goal's open windows on every instance.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{encode_query, error, guard, local_scope, paths, AppState, QueryParams, QUERY_TIMEOUT};
use crate::serve::hub::{self, sort_views, By, GoalView, Hub, Order, Query, WindowView};

#[derive(Serialize)]
pub(super) struct GoalsBody {
    instance: String,
    goals: Vec<GoalView>,
}

pub(super) async fn goals(State(state): State<AppState>) -> Json<GoalsBody> {
    Json(GoalsBody {
        instance: state.hub.instance().to_string(),
        goals: state.hub.goals().goals.iter().map(GoalView::of).collect(),
    })
}

#[derive(Deserialize)]
pub(super) struct GoalParams {
    /// `local`: only this instance's windows; default `all`.
    scope: Option<String>,
    /// `group` (default) or `progress`.
    order: Option<String>,
    /// Windows to return; default [`DEFAULT_WINDOWS`].
    limit: Option<usize>,
    /// Windows to skip first; default 0.
    offset: Option<usize>,
    /// `true`: only each group's current (newest open) window; default `false`.
    current: Option<bool>,
}

/// Windows a `/v1/goals/{id}` answer holds when `limit` is not given.
pub const DEFAULT_WINDOWS: usize = 1_000;

/// The body of `/v1/goals/{id}`.
#[derive(Serialize, Deserialize)]
pub struct GoalBody {
    /// The goal.
    pub goal: GoalView,
    /// Its open windows in the order asked for (by group then window start, by default), from
    /// `offset` on, at most `limit`.
    pub windows: Vec<WindowView>,
    /// How many open windows the goal has in all (on the instances included).
    pub total: usize,
    /// Contributions that came after all their windows had closed, committed since each
    /// included instance started, summed.
    #[serde(default)]
    pub late: u64,
    /// Contributions skipped for the goal's `max_groups` or `max_distinct`, committed since each
    /// included instance started, summed: a result that misses them says so.
    #[serde(default)]
    pub overflow: u64,
    /// The instances whose windows are included.
    pub instances: Vec<String>,
    /// Instances of the group that did not answer (their windows are missing).
    pub unavailable: Vec<String>,
}

/// The order, limit and offset of a goal query.
fn goal_page(params: &GoalParams) -> Result<(Order, usize, usize), Box<Response>> {
    let bad = |m: String| Box::new(error(StatusCode::BAD_REQUEST, m));
    let by = match params.order.as_deref() {
        None | Some("group") => By::Group,
        Some("progress") => By::Progress,
        Some(other) => {
            return Err(bad(format!(
                "order `{other}` is not allowed; use `group` or `progress`"
            )))
        }
    };
    let limit = params.limit.unwrap_or(DEFAULT_WINDOWS);
    let offset = params.offset.unwrap_or(0);
    let max = hub::MAX_WINDOWS;
    if limit == 0 || offset.saturating_add(limit) > max {
        return Err(bad(format!(
            "limit {limit} with offset {offset} is out of range; allowed limit >= 1 and \
             offset + limit <= {max}"
        )));
    }
    let order = Order {
        by,
        current: params.current.unwrap_or(false),
    };
    Ok((order, limit, offset))
}

/// Asks the worker for the first `limit` windows of goal `index` in `order`.
async fn ask_worker(
    hub: &Hub,
    index: usize,
    order: Order,
    limit: usize,
) -> Result<hub::Answer, Response> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let query = Query {
        goal: index,
        order,
        limit,
        reply,
    };
    if !hub.query(query) {
        return Err(guard::busy(
            "the processing loop has stopped or is busy; retry shortly",
        ));
    }
    match tokio::time::timeout(QUERY_TIMEOUT, answer).await {
        Ok(Ok(a)) => Ok(a),
        _ => Err(guard::busy(
            "the processing loop did not answer in time (restoring or committing)",
        )),
    }
}

pub(super) async fn goal(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(params): QueryParams<GoalParams>,
) -> Response {
    let (local, (order, limit, offset)) = match (local_scope(&params.scope), goal_page(&params)) {
        (Ok(l), Ok(p)) => (l, p),
        (Err(r), _) | (_, Err(r)) => return *r,
    };
    let goals = state.hub.goals().clone();
    let Some(index) = goals.goals.iter().position(|g| *g.id == *id) else {
        let known: Vec<&str> = goals.goals.iter().map(|g| &*g.id).collect();
        return error(
            StatusCode::NOT_FOUND,
            format!("no goal `{id}`; goals: {}", known.join(", ")),
        );
    };
    // Every instance answers its first offset + limit; the page is cut from their union.
    let wanted = offset + limit;
    let answer = match ask_worker(&state.hub, index, order, wanted).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (mut windows, mut total) = (answer.windows, answer.total);
    let (mut late, mut overflow) = (answer.late, answer.overflow);
    let mut instances = vec![state.hub.instance().to_string()];
    let mut unavailable = Vec::new();
    if let Some(peers) = state.peers.as_ref().filter(|_| !local) {
        let order_name = match order.by {
            By::Progress => "progress",
            By::Group => "group",
        };
        let path = format!(
            "{}?scope=local&order={order_name}&current={}&limit={wanted}",
            paths::GOAL.replace("{id}", &encode_query(&id)),
            order.current
        );
        for (instance, result) in peers.fetch_all::<GoalBody>(&path).await {
            let checked = result.and_then(|body| {
                check_peer_goal(&body, &id, &instance, wanted)?;
                Ok(body)
            });
            match checked {
                Ok(body) => {
                    windows.extend(body.windows);
                    total = total.saturating_add(body.total);
                    late = late.saturating_add(body.late);
                    overflow = overflow.saturating_add(body.overflow);
                    instances.push(instance);
                }
                Err(e) => {
                    peers.warn(&instance, &e);
                    unavailable.push(instance);
                }
            }
        }
    }
    sort_views(&mut windows, order);
    let windows: Vec<WindowView> = windows.into_iter().skip(offset).take(limit).collect();
    instances.sort();
    Json(GoalBody {
        goal: GoalView::of(&goals.goals[index]),
        windows,
        total,
        late,
        overflow,
        instances,
        unavailable,
    })
    .into_response()
}

/// Checks a peer's answer to a goal query: its windows are of the goal and the peer, and no
/// more than asked.
fn check_peer_goal(
    body: &GoalBody,
    goal: &str,
    instance: &str,
    wanted: usize,
) -> Result<(), String> {
    if body.windows.len() > wanted || body.total < body.windows.len() {
        return Err(format!(
            "{} windows of {} answered, at most {wanted} asked",
            body.windows.len(),
            body.total
        ));
    }
    body.windows
        .iter()
        .try_for_each(|w| w.check(goal, instance))
        .map_err(|e| e.to_string())
}
