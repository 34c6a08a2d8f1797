//! The HTTP server: axum on a small tokio runtime of its own thread.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::hub::{sort_views, GoalView, Hub, Query, RecentAttainment, WindowView};
use super::paths;
use super::peers::Peers;
use crate::model::Timestamp;

/// How long a query waits for the processing loop, or a peer.
const QUERY_TIMEOUT: StdDuration = StdDuration::from_secs(5);
/// The cookie that carries the token for the dashboard (browsers cannot add headers to page
/// loads and event streams).
const TOKEN_COOKIE: &str = "goalpost_token";

/// A bearer token. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A token from its text (surrounding whitespace removed); `None` when empty.
    pub fn new(text: &str) -> Option<Token> {
        let t = text.trim();
        (!t.is_empty()).then(|| Token(t.to_string()))
    }

    /// The secret itself, for sending it to peers.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn matches(&self, candidate: &str) -> bool {
        // Constant time in the candidate's content.
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Why the HTTP server could not start.
#[derive(Debug, Error)]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error(
        "cannot listen on {addr}: {cause}; choose a free address (http.listen, or --listen for \
         the demo) or turn the server off (http.enabled = false, or --no-http)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        cause: std::io::Error,
    },
    /// The runtime could not start.
    #[error("cannot start the HTTP runtime: {0}")]
    Runtime(std::io::Error),
    /// The token could not be read.
    #[error("cannot read the HTTP token: {0}")]
    Token(String),
    /// A setting of `[http]` or the metrics recorder is not usable.
    #[error("{0}")]
    Config(String),
}

/// What the server needs besides the hub.
pub struct ServeOptions {
    /// Listen address.
    pub listen: SocketAddr,
    /// Required bearer token, if any.
    pub token: Option<Token>,
    /// Renders `/metrics`; `None` serves an empty exposition.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// The other instances of the application, for queries about what this one does not own.
    pub peers: Option<Peers>,
}

/// A running server; dropping it does not stop it (it ends with the process).
pub struct Server {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
}

#[derive(Clone)]
struct AppState {
    hub: Arc<Hub>,
    token: Option<Token>,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    peers: Option<Arc<Peers>>,
    /// The other instances' attainment events, relayed by one task for every event stream.
    relayed: Option<tokio::sync::broadcast::Sender<Arc<RecentAttainment>>>,
}

/// Binds the listen address and serves on a thread of its own.
pub fn start(hub: Arc<Hub>, opts: ServeOptions) -> Result<Server, ServeError> {
    let listener = std::net::TcpListener::bind(opts.listen).map_err(|cause| ServeError::Bind {
        addr: opts.listen,
        cause,
    })?;
    listener
        .set_nonblocking(true)
        .map_err(ServeError::Runtime)?;
    let addr = listener.local_addr().map_err(ServeError::Runtime)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(8)
        .thread_name("goalpost-http")
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let peers = opts.peers.map(Arc::new);
    let relayed = peers
        .as_ref()
        .map(|_| tokio::sync::broadcast::channel(1024).0);
    let relay = match (&peers, &relayed) {
        (Some(peers), Some(tx)) => Some(Relay {
            peers: peers.clone(),
            token: opts.token.clone(),
            tx: tx.clone(),
            since: Default::default(),
            started: wall_clock().to_rfc3339(),
        }),
        _ => None,
    };
    let state = AppState {
        hub,
        token: opts.token,
        metrics: opts.metrics,
        peers,
        relayed,
    };
    let app = router(state);
    std::thread::Builder::new()
        .name("goalpost-http".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "HTTP listener");
                        return;
                    }
                };
                if let Some(relay) = relay {
                    tokio::spawn(relay.run());
                }
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "HTTP server stopped");
                }
            })
        })
        .map_err(ServeError::Runtime)?;
    tracing::info!(%addr, "HTTP server listening");
    Ok(Server { addr })
}

fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route(paths::METRICS, get(metrics))
        .route(paths::GOALS, get(goals))
        .route(paths::GOAL, get(goal))
        .route(paths::ATTAINMENTS, get(attainments))
        .route(paths::STREAM, get(stream_attainments))
        .route(paths::OPENAPI, get(openapi))
        .route(paths::DASHBOARD, get(dashboard))
        .layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route(paths::HEALTHZ, get(|| async { "ok\n" }))
        .route(paths::READYZ, get(readyz))
        .merge(protected)
        .with_state(state)
}

fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == TOKEN_COOKIE)
        .map(|(_, v)| v)
}

#[derive(Deserialize)]
struct TokenParam {
    token: Option<String>,
}

/// Bearer token check: `Authorization: Bearer <token>`, or the dashboard's cookie. Opening the
/// dashboard as `/?token=<token>` sets that cookie and redirects to `/`.
async fn auth(
    State(state): State<AppState>,
    QueryParams(param): QueryParams<TokenParam>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = &state.token else {
        return next.run(request).await;
    };
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer.is_some_and(|b| token.matches(b.trim()))
        || cookie_token(headers).is_some_and(|c| token.matches(c))
    {
        return next.run(request).await;
    }
    if request.uri().path() == paths::DASHBOARD {
        if let Some(t) = param.token.as_deref().filter(|t| token.matches(t)) {
            let mut response = Redirect::to(paths::DASHBOARD).into_response();
            let cookie = format!("{TOKEN_COOKIE}={t}; HttpOnly; SameSite=Lax; Path=/");
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
            return response;
        }
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(ErrorBody {
            error: "a bearer token is required: send `Authorization: Bearer <token>`".into(),
        }),
    )
        .into_response()
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(ErrorBody { error: message })).into_response()
}

/// Query parameters. A query string that does not even parse (`limit=abc`) gets the same JSON
/// error body as every other 400, naming the parameter, instead of axum's plain-text rejection.
struct QueryParams<T>(T);

impl<T, S> FromRequestParts<S> for QueryParams<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(params)) => Ok(Self(params)),
            Err(rejection) => Err(error(StatusCode::BAD_REQUEST, rejection.body_text())),
        }
    }
}

#[derive(Serialize)]
struct Ready {
    ready: bool,
    instance: String,
}

async fn readyz(State(state): State<AppState>) -> Response {
    let ready = state.hub.is_ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Ready {
            ready,
            instance: state.hub.instance().to_string(),
        }),
    )
        .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let text = state
        .metrics
        .as_ref()
        .map(|m| m.render())
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/yaml")],
        include_str!("../../docs/openapi.yaml"),
    )
        .into_response()
}

async fn dashboard() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}

#[derive(Serialize)]
struct GoalsBody {
    instance: String,
    goals: Vec<GoalView>,
}

async fn goals(State(state): State<AppState>) -> Json<GoalsBody> {
    Json(GoalsBody {
        instance: state.hub.instance().to_string(),
        goals: state.hub.goals().goals.iter().map(GoalView::of).collect(),
    })
}

#[derive(Deserialize)]
struct ScopeParam {
    /// `local`: only this instance's windows; default `all`.
    scope: Option<String>,
}

/// The body of `/v1/goals/{id}`.
#[derive(Serialize, Deserialize)]
pub struct GoalBody {
    /// The goal.
    pub goal: GoalView,
    /// Its open windows, sorted by group then window start.
    pub windows: Vec<WindowView>,
    /// The instances whose windows are included.
    pub instances: Vec<String>,
    /// Instances of the group that did not answer (their windows are missing).
    pub unavailable: Vec<String>,
}

fn local_scope(scope: &Option<String>) -> Result<bool, Box<Response>> {
    match scope.as_deref() {
        None | Some("all") => Ok(false),
        Some("local") => Ok(true),
        Some(other) => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("scope `{other}` is not allowed; use `all` or `local`"),
        ))),
    }
}

async fn goal(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(params): QueryParams<ScopeParam>,
) -> Response {
    let local = match local_scope(&params.scope) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let goals = state.hub.goals().clone();
    let Some(index) = goals.goals.iter().position(|g| *g.id == *id) else {
        let known: Vec<&str> = goals.goals.iter().map(|g| &*g.id).collect();
        return error(
            StatusCode::NOT_FOUND,
            format!("no goal `{id}`; goals: {}", known.join(", ")),
        );
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    if !state.hub.query(Query { goal: index, reply }) {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the processing loop has stopped or is busy; retry shortly".into(),
        );
    }
    let mut windows = match tokio::time::timeout(QUERY_TIMEOUT, answer).await {
        Ok(Ok(w)) => w,
        _ => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the processing loop did not answer in time (restoring or committing)".into(),
            )
        }
    };
    let mut instances = vec![state.hub.instance().to_string()];
    let mut unavailable = Vec::new();
    if !local {
        if let Some(peers) = &state.peers {
            let path = format!(
                "{}?scope=local",
                paths::GOAL.replace("{id}", &encode_query(&id))
            );
            for (instance, result) in peers
                .fetch_all::<GoalBody>(&path, state.token.clone())
                .await
            {
                match result {
                    Ok(body) => {
                        windows.extend(body.windows);
                        instances.push(instance);
                    }
                    Err(e) => {
                        tracing::warn!(instance, error = %e, "peer did not answer a goal query");
                        unavailable.push(instance);
                    }
                }
            }
        }
    }
    sort_views(&mut windows);
    instances.sort();
    Json(GoalBody {
        goal: GoalView::of(&goals.goals[index]),
        windows,
        instances,
        unavailable,
    })
    .into_response()
}

#[derive(Deserialize)]
struct AttainmentParams {
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

async fn attainments(
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
    if limit == 0 || limit > super::hub::RECENT_ATTAINMENTS {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "limit {limit} is out of range; allowed 1..={}",
                super::hub::RECENT_ATTAINMENTS
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
            for (instance, result) in peers
                .fetch_all::<AttainmentsBody>(&query, state.token.clone())
                .await
            {
                match result {
                    Ok(body) => items.extend(body.attainments),
                    Err(e) => {
                        tracing::warn!(instance, error = %e, "peer did not answer");
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

/// Percent-encodes a query value.
fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How often the relay asks the other instances for their new attainment events.
const RELAY_EVERY: StdDuration = StdDuration::from_secs(1);

/// One task per server relays the other instances' attainment events to every event stream.
struct Relay {
    peers: Arc<Peers>,
    token: Option<Token>,
    tx: tokio::sync::broadcast::Sender<Arc<RecentAttainment>>,
    /// Per other instance: the newest commit time relayed.
    since: std::collections::BTreeMap<String, String>,
    started: String,
}

impl Relay {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(RELAY_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.tx.receiver_count() == 0 {
                // Nobody listens: relay only what commits from now on.
                self.started = wall_clock().to_rfc3339();
                self.since.clear();
                continue;
            }
            self.relay_once().await;
        }
    }

    async fn relay_once(&mut self) {
        let members = {
            let p = self.peers.clone();
            match tokio::task::spawn_blocking(move || p.members()).await {
                Ok(Ok(m)) => m,
                _ => return,
            }
        };
        for peer in members {
            let since = self
                .since
                .get(&peer.instance)
                .cloned()
                .unwrap_or_else(|| self.started.clone());
            let url = format!(
                "{}{}?scope=local&limit={}&since={}",
                peer.url.trim_end_matches('/'),
                paths::ATTAINMENTS,
                super::hub::RECENT_ATTAINMENTS,
                encode_query(&since)
            );
            let token = self.token.clone();
            let fetched = tokio::task::spawn_blocking(move || {
                super::peers::get_json::<AttainmentsBody>(&url, token.as_ref())
            })
            .await;
            if let Ok(Ok(body)) = fetched {
                for item in body.attainments {
                    if item.committed_at > since {
                        let newest = self.since.entry(peer.instance.clone()).or_default();
                        if item.committed_at > *newest {
                            newest.clone_from(&item.committed_at);
                        }
                        // No receiver left is fine.
                        let _ = self.tx.send(Arc::new(item));
                    }
                }
            }
        }
    }
}

fn attainment_event(item: &RecentAttainment) -> Event {
    let data = serde_json::to_string(item).unwrap_or_default();
    Event::default().event("attainment").data(data)
}

fn stream_event(
    r: Result<Arc<RecentAttainment>, tokio::sync::broadcast::error::RecvError>,
) -> Option<Event> {
    match r {
        Ok(item) => Some(attainment_event(&item)),
        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => Some(
            Event::default()
                .event("lagged")
                .data(format!("{{\"skipped\":{n}}}")),
        ),
        Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
    }
}

/// Server-sent events: a `hello` event, then every `attainment` event as it commits: this
/// instance's at once, the other instances' relayed within about a second.
async fn stream_attainments(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let local = state.hub.subscribe();
    let relayed = state.relayed.as_ref().map(|tx| tx.subscribe());
    let hello = Event::default()
        .event("hello")
        .data(serde_json::json!({ "instance": state.hub.instance() }).to_string());
    let events = stream::unfold((local, relayed), |(mut local, mut relayed)| async move {
        let event = match &mut relayed {
            Some(r) => tokio::select! {
                x = local.recv() => stream_event(x),
                x = r.recv() => stream_event(x),
            },
            None => stream_event(local.recv().await),
        }?;
        Some((Ok(event), (local, relayed)))
    });
    let all = stream::iter([Ok(hello)]);
    Sse::new(futures_util::StreamExt::chain(all, events)).keep_alive(KeepAlive::default())
}

/// The wall clock, for commit times shown by the query API (never used by the engine).
pub fn wall_clock() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_nanos(d.as_nanos() as i64)
}
