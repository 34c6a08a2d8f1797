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
use futures_util::stream;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::guard::{self, HostCheck, Limits, Permits};
use super::hub::{sort_views, By, GoalView, Hub, Order, Query, RecentAttainment, WindowView};
use super::paths;
use super::peers::Peers;
use crate::model::Timestamp;

/// How long a query waits for the processing loop, or a peer.
const QUERY_TIMEOUT: StdDuration = StdDuration::from_secs(5);
/// The cookie that carries the token for the dashboard (browsers cannot add headers to page
/// loads and event streams).
const TOKEN_COOKIE: &str = "goalpost_token";
/// The dashboard page.
pub const DASHBOARD_HTML: &str = include_str!("dashboard.html");

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
    /// The secret other instances send; it allows only their `scope=local` queries.
    pub peer_token: Option<Token>,
    /// Caps on connections, requests and event streams.
    pub limits: Limits,
    /// The advertised URL's host, allowed in the `Host` header besides loopback names.
    pub advertised_host: Option<String>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            listen: super::DEFAULT_LISTEN
                .parse()
                .expect("the default listen address"),
            token: None,
            metrics: None,
            peers: None,
            peer_token: None,
            limits: Limits::default(),
            advertised_host: None,
        }
    }
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
    peer_token: Option<Token>,
    permits: Permits,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    peers: Option<Arc<Peers>>,
    /// The other instances' attainment events, relayed by one task for every event stream.
    relayed: Option<tokio::sync::broadcast::Sender<Arc<RecentAttainment>>>,
}

/// Binds the listen address and serves on a thread of its own.
pub fn start(hub: Arc<Hub>, opts: ServeOptions) -> Result<Server, ServeError> {
    let listener = bind(opts.listen)?;
    serve(listener, hub, opts)
}

/// Binds a listen address (before serving, so that the bound port is known).
pub fn bind(listen: SocketAddr) -> Result<std::net::TcpListener, ServeError> {
    let listener = std::net::TcpListener::bind(listen).map_err(|cause| ServeError::Bind {
        addr: listen,
        cause,
    })?;
    listener
        .set_nonblocking(true)
        .map_err(ServeError::Runtime)?;
    Ok(listener)
}

/// Serves on a bound listener, on a thread of its own.
pub fn serve(
    listener: std::net::TcpListener,
    hub: Arc<Hub>,
    opts: ServeOptions,
) -> Result<Server, ServeError> {
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
            tx: tx.clone(),
            since: Default::default(),
            started: wall_clock().to_rfc3339(),
        }),
        _ => None,
    };
    let hosts = HostCheck::new(
        opts.token.is_some(),
        addr.ip().is_loopback(),
        opts.advertised_host,
    );
    let permits = Permits::new(opts.limits);
    let state = AppState {
        hub,
        token: opts.token,
        peer_token: opts.peer_token,
        permits: permits.clone(),
        metrics: opts.metrics,
        peers,
        relayed,
    };
    let app = router(state, hosts);
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
                guard::accept_loop(listener, app, permits).await;
            })
        })
        .map_err(ServeError::Runtime)?;
    tracing::info!(%addr, "HTTP server listening");
    Ok(Server { addr })
}

fn router(state: AppState, hosts: HostCheck) -> Router {
    let protected = Router::new()
        .route(paths::METRICS, get(metrics))
        .route(paths::GOALS, get(goals))
        .route(paths::GOAL, get(goal))
        .route(paths::ATTAINMENTS, get(attainments))
        .route(paths::STREAM, get(stream_attainments))
        .route(paths::OPENAPI, get(openapi))
        .route(paths::DASHBOARD, get(dashboard))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .layer(middleware::from_fn_with_state(
            state.permits.clone(),
            guard::limit,
        ));
    // Outermost first: headers on every answer, then the Host check, then (for all but the
    // probes, which must never get 503 under load) the caps.
    Router::new()
        .route(paths::HEALTHZ, get(|| async { "ok\n" }))
        .route(paths::READYZ, get(readyz))
        .merge(protected)
        .with_state(state)
        .layer(middleware::from_fn_with_state(hosts, guard::check_host))
        .layer(middleware::from_fn(guard::security_headers))
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
    scope: Option<String>,
}

/// Whether a request is one a peer makes: a `scope=local` GET of a goal's windows or of the
/// attainment events.
fn is_peer_query(request: &Request, scope: Option<&str>) -> bool {
    let path = request.uri().path();
    request.method() == axum::http::Method::GET
        && scope == Some("local")
        && (path == paths::ATTAINMENTS || path.starts_with("/v1/goals/"))
}

/// Bearer token check: `Authorization: Bearer <token>`, or the dashboard's cookie; the peer
/// secret only for [`is_peer_query`]. Opening the dashboard as `/?token=<token>` sets that
/// cookie (`SameSite=Lax`; `Secure` when the request came through HTTPS, as
/// `X-Forwarded-Proto` says) and redirects to `/`.
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
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let peer = state
        .peer_token
        .as_ref()
        .is_some_and(|p| bearer.is_some_and(|b| p.matches(b)))
        && is_peer_query(&request, param.scope.as_deref());
    if peer
        || bearer.is_some_and(|b| token.matches(b))
        || cookie_token(headers).is_some_and(|c| token.matches(c))
    {
        return next.run(request).await;
    }
    if request.uri().path() == paths::DASHBOARD {
        if let Some(t) = param.token.as_deref().filter(|t| token.matches(t)) {
            let https = headers
                .get("x-forwarded-proto")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
            let secure = if https { "; Secure" } else { "" };
            let mut response = Redirect::to(paths::DASHBOARD).into_response();
            // Lax, not Strict: a link to `/?token=` from another site (a wiki, a chat) is a
            // cross-site navigation, and a Strict cookie would not be sent on the redirect that
            // follows. Lax still withholds it from cross-site subrequests and POSTs.
            let cookie = format!("{TOKEN_COOKIE}={t}; HttpOnly; SameSite=Lax; Path=/{secure}");
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
    let mut text = state
        .metrics
        .as_ref()
        .map(|m| m.render())
        .unwrap_or_default();
    text.push_str(&state.hub.telemetry.render_progress());
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
    Html(DASHBOARD_HTML)
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
struct GoalParams {
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
    let max = super::hub::MAX_WINDOWS;
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
) -> Result<super::hub::Answer, Response> {
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

async fn goal(
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
fn check_peer_attainments(
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
        // One query for every peer, in parallel and under the fan-out deadline: each from the
        // newest event relayed of it, or from the start of relaying for a peer not heard yet.
        let limit = super::hub::RECENT_ATTAINMENTS;
        let since = self.since.clone();
        let started = self.started.clone();
        let path_of = |instance: &str| {
            let from = since.get(instance).unwrap_or(&started);
            format!(
                "{}?scope=local&limit={limit}&since={}",
                paths::ATTAINMENTS,
                encode_query(from)
            )
        };
        for (instance, result) in self.peers.fetch_each::<AttainmentsBody>(path_of).await {
            let Ok(body) = result.and_then(|b| check_peer_attainments(b, &instance, limit)) else {
                continue;
            };
            let from = self.since.get(&instance).unwrap_or(&self.started).clone();
            for item in body.attainments {
                if item.committed_at > from {
                    let newest = self.since.entry(instance.clone()).or_default();
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
/// instance's at once, the other instances' relayed within about a second. At most
/// `http.max_streams` at once.
async fn stream_attainments(State(state): State<AppState>) -> Response {
    let Ok(permit) = state.permits.streams.clone().try_acquire_owned() else {
        return guard::busy("too many event streams open (http.max_streams); retry later");
    };
    let local = state.hub.subscribe();
    let relayed = state.relayed.as_ref().map(|tx| tx.subscribe());
    let hello = Event::default()
        .event("hello")
        .data(serde_json::json!({ "instance": state.hub.instance() }).to_string());
    // The permit lives as long as the stream.
    let events = stream::unfold(
        (local, relayed, permit),
        |(mut local, mut relayed, permit)| async move {
            let event = match &mut relayed {
                Some(r) => tokio::select! {
                    x = local.recv() => stream_event(x),
                    x = r.recv() => stream_event(x),
                },
                None => stream_event(local.recv().await),
            }?;
            Some((Ok::<_, Infallible>(event), (local, relayed, permit)))
        },
    );
    let all = stream::iter([Ok(hello)]);
    Sse::new(futures_util::StreamExt::chain(all, events))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The wall clock, for commit times shown by the query API (never used by the engine).
pub fn wall_clock() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_nanos(d.as_nanos() as i64)
}
