//! The state shared between the processing loop and the HTTP server.
//!
//! The worker owns the engine's state. It answers window queries between poll rounds (so a
//! query never locks the engine), publishes attainment events once their transaction has
//! committed, and says whether it is ready. The HTTP side only reads.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use thiserror::Error;

use crate::codec::json;
use crate::engine::{GroupKey, Owner, WindowState};
use crate::goals::{Direction, Goal, GoalSet, Measure, Metric};
use crate::model::{Attainment, Timestamp};

use super::metrics::Telemetry;

/// The most window queries the worker answers per poll round; the rest wait for the next.
pub const QUERIES_PER_ROUND: usize = 8;
/// The most windows one `/v1/goals/{id}` answer may hold (`offset` + `limit`).
pub const MAX_WINDOWS: usize = 10_000;

/// Attainment events kept for `/v1/attainments`, per instance.
pub const RECENT_ATTAINMENTS: usize = 2_000;

/// A decimal written as an exact JSON number.
fn decimal_json(d: Decimal) -> Num {
    Num(d.normalize())
}

/// An exact decimal, written and read as a JSON number. Reading refuses anything else (a string,
/// an object, `NaN`), so a peer's answer cannot smuggle markup into a numeric field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Num(pub Decimal);

impl Serialize for Num {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(self.0.to_string()).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        let text = raw.get();
        let is_number = text.starts_with(|c: char| c == '-' || c.is_ascii_digit());
        is_number
            .then(|| crate::model::money::parse_decimal(text).ok())
            .flatten()
            .map(Num)
            .ok_or_else(|| {
                serde::de::Error::custom(format!("`{text}` is not a decimal JSON number"))
            })
    }
}

/// One milestone of an open window.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MilestoneView {
    /// The fraction of the target, e.g. 0.5.
    pub fraction: Num,
    /// The value at which it is reached.
    pub threshold: Num,
    /// Whether it has been reached (and reported) in this window.
    pub reached: bool,
}

/// One open window of one goal and group, as the query API shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WindowView {
    /// The goal.
    pub goal_id: String,
    /// The group: each `group_by` entry as written in the goal file, with this group's value.
    pub group: BTreeMap<String, String>,
    /// First instant of the window (RFC 3339, UTC).
    pub window_start: String,
    /// First instant after the window.
    pub window_end: String,
    /// The KPI value so far; `null` for a ratio without a denominator event yet.
    pub value: Option<Num>,
    /// The goal's target.
    pub target: Num,
    /// `at_least` or `at_most`.
    pub direction: String,
    /// value / target; `null` when the target is 0 or there is no value.
    pub progress: Option<Num>,
    /// Milestones (at_least goals).
    pub milestones: Vec<MilestoneView>,
    /// Whether the target has been breached (at_most goals).
    pub breached: bool,
    /// Event time left in the window: window end minus the latest event time this owner has seen
    /// (seconds; `null` before any event). Event time, not wall time, so replays and backfills
    /// read the same.
    pub time_left_seconds: Option<i64>,
    /// For count and sum goals: the value at the window end if it keeps growing at its pace so
    /// far (value × window length ÷ elapsed event time); `null` for other metrics or before the
    /// window has started.
    pub pace: Option<Num>,
    /// The instance holding this window.
    pub instance: String,
}

/// One goal's definition, as `/v1/goals` shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GoalView {
    /// The goal's id.
    pub id: String,
    /// Its description, if any.
    pub description: Option<String>,
    /// `count`, `sum`, `avg`, `min`, `max`, `count_distinct` or `ratio`.
    pub metric: String,
    /// The field measured, if any.
    pub field: Option<String>,
    /// The `group_by` fields.
    pub group_by: Vec<String>,
    /// The window, described.
    pub window: String,
    /// The target.
    pub target: Num,
    /// `at_least` or `at_most`.
    pub direction: String,
    /// Milestone fractions.
    pub milestones: Vec<Num>,
    /// Allowed lateness.
    pub grace: String,
}

impl GoalView {
    /// The view of a goal.
    pub fn of(goal: &Goal) -> GoalView {
        let (metric, field) = match &goal.measure {
            Measure::Simple { metric, field, .. } => {
                (metric.to_string(), field.as_ref().map(|f| f.to_string()))
            }
            Measure::Ratio { .. } => ("ratio".to_string(), None),
        };
        GoalView {
            id: goal.id.to_string(),
            description: goal.description.clone(),
            metric,
            field,
            group_by: goal.group_by_names.iter().map(|g| g.to_string()).collect(),
            window: goal.window.describe(),
            target: decimal_json(goal.target),
            direction: goal.direction.as_str().to_string(),
            milestones: goal.milestones.iter().map(|m| decimal_json(*m)).collect(),
            grace: goal.grace.to_string(),
        }
    }
}

/// How a goal's windows are sorted in an answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum By {
    /// By group, then window start.
    #[default]
    Group,
    /// Most progress first (windows without progress last), then by group and window start.
    Progress,
}

/// Which of a goal's windows an answer holds, and in what order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Order {
    /// The sort.
    pub by: By,
    /// Only each group's current window (its newest open one): with hopping windows a group
    /// has several open at once, and the most advanced are mostly old ones.
    pub current: bool,
}

/// One window of a goal, before its view is built: what ordering needs, and where it is.
struct Candidate<'a> {
    group: Vec<&'a str>,
    start: Timestamp,
    progress: Option<Decimal>,
    key: &'a GroupKey,
    state: &'a WindowState,
    now: Option<Timestamp>,
}

/// A page of one goal's windows, and how many windows there are in all.
#[derive(Debug, Default)]
pub struct Answer {
    /// The first `limit` windows in the order asked for.
    pub windows: Vec<WindowView>,
    /// All the windows of the goal held here.
    pub total: usize,
    /// Contributions to the goal that came after all their windows had closed, committed since
    /// this instance started (the `goalpost_events_late_total` counter of the goal).
    pub late: u64,
    /// Contributions to the goal skipped for its `max_groups` or `max_distinct`, committed since
    /// this instance started (the `goalpost_events_overflow_total` counter of the goal).
    pub overflow: u64,
}

fn progress_of(goal: &Goal, value: Option<Decimal>) -> Option<Decimal> {
    match value {
        Some(v) if !goal.target.is_zero() => v.checked_div(goal.target).map(|p| p.round_dp(6)),
        _ => None,
    }
}

/// Progress descending, windows without progress last.
fn by_progress(a: Option<Decimal>, b: Option<Decimal>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(a), Some(b)) => b.cmp(&a),
        (a, b) => b.is_some().cmp(&a.is_some()),
    }
}

/// The first `limit` of one goal's open windows held by `owners`, in `order`. Only the views
/// returned are built, so the work per query is bounded by `limit` beyond a pass over the
/// windows.
pub fn window_page<'a>(
    goal: &Goal,
    index: usize,
    owners: impl Iterator<Item = &'a Owner>,
    instance: &str,
    order: Order,
    limit: usize,
) -> Answer {
    // Groups compare like the views' maps: values in the order of their names.
    let mut names: Vec<usize> = (0..goal.group_by_names.len()).collect();
    names.sort_by(|a, b| goal.group_by_names[*a].cmp(&goal.group_by_names[*b]));
    let mut all: Vec<Candidate<'a>> = Vec::new();
    for owner in owners {
        let now = owner.stream_time();
        all.extend(owner.windows_of(index).map(|(key, start, state)| {
            Candidate {
                group: names
                    .iter()
                    .filter_map(|i| key.0.get(*i).map(|v| &**v))
                    .collect(),
                start,
                progress: progress_of(goal, state.aggregate.value()),
                key,
                state,
                now,
            }
        }));
    }
    if order.current {
        // Newest first within a group, then the first of each group.
        all.sort_by(|a, b| a.group.cmp(&b.group).then(b.start.cmp(&a.start)));
        all.dedup_by(|later, first| later.group == first.group);
    }
    let total = all.len();
    let cmp = |a: &Candidate, b: &Candidate| {
        let tie = || (&a.group, a.start).cmp(&(&b.group, b.start));
        match order.by {
            By::Group => tie(),
            By::Progress => by_progress(a.progress, b.progress).then_with(tie),
        }
    };
    if limit < all.len() {
        if limit > 0 {
            all.select_nth_unstable_by(limit - 1, cmp);
        }
        all.truncate(limit);
    }
    all.sort_by(cmp);
    let windows = all
        .iter()
        .map(|c| window_view(goal, c.key, c.start, c.state, c.now, instance))
        .collect();
    Answer {
        windows,
        total,
        ..Answer::default()
    }
}

/// The view of one open window; `now` is its owner's stream time.
fn window_view(
    goal: &Goal,
    key: &GroupKey,
    start: Timestamp,
    ws: &WindowState,
    now: Option<Timestamp>,
    instance: &str,
) -> WindowView {
    let additive = matches!(goal.metric(), Metric::Count | Metric::Sum);
    let value = ws.aggregate.value();
    let pace = match (value, now) {
        (Some(v), Some(now)) if additive && now > start => {
            let elapsed = Decimal::from(now.min(ws.end).as_nanos() - start.as_nanos());
            let length = Decimal::from(ws.end.as_nanos() - start.as_nanos());
            v.checked_mul(length)
                .and_then(|x| x.checked_div(elapsed))
                .map(|p| p.round_dp(4))
        }
        _ => None,
    };
    let milestones = if goal.direction == Direction::AtLeast {
        goal.milestones
            .iter()
            .zip(&goal.thresholds)
            .enumerate()
            .map(|(i, (m, t))| MilestoneView {
                fraction: decimal_json(*m),
                threshold: decimal_json(*t),
                reached: i < 64 && ws.reached & (1u64 << i) != 0,
            })
            .collect()
    } else {
        Vec::new()
    };
    WindowView {
        goal_id: goal.id.to_string(),
        group: goal
            .group_by_names
            .iter()
            .zip(key.0.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        window_start: start.to_rfc3339(),
        window_end: ws.end.to_rfc3339(),
        value: value.map(decimal_json),
        target: decimal_json(goal.target),
        direction: goal.direction.as_str().to_string(),
        progress: progress_of(goal, value).map(decimal_json),
        milestones,
        breached: ws.breached,
        time_left_seconds: now.map(|n| ((ws.end.as_nanos() - n.as_nanos()) / 1_000_000_000).max(0)),
        pace: pace.map(decimal_json),
        instance: instance.to_string(),
    }
}

/// Sorts window views in `order`: the order every instance answers in. With
/// [`Order::current`], keeps only each group's newest window first.
pub fn sort_views(views: &mut Vec<WindowView>, order: Order) {
    if order.current {
        let start = |w: &WindowView| {
            Timestamp::parse_rfc3339(&w.window_start).map_or(i64::MIN, |t| t.as_nanos())
        };
        views.sort_by(|a, b| {
            (&a.goal_id, &a.group)
                .cmp(&(&b.goal_id, &b.group))
                .then_with(|| start(b).cmp(&start(a)))
        });
        views.dedup_by(|later, first| {
            (&later.goal_id, &later.group) == (&first.goal_id, &first.group)
        });
    }
    views.sort_by(|a, b| {
        let tie = || {
            (&a.goal_id, &a.group, &a.window_start).cmp(&(&b.goal_id, &b.group, &b.window_start))
        };
        match order.by {
            By::Group => tie(),
            By::Progress => {
                by_progress(a.progress.map(|p| p.0), b.progress.map(|p| p.0)).then_with(tie)
            }
        }
    });
}

/// An attainment event's JSON text, embedded as is when this instance wrote it. Read from a peer,
/// it is first parsed as an [`AttainmentJson`] (typed fields, numbers as numbers, known kinds
/// and outcomes only) and written anew, so nothing a peer sends is passed through unchecked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawJson(pub String);

impl Serialize for RawJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw: &RawValue = serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let typed = AttainmentJson::deserialize(d)?;
        typed.check().map_err(serde::de::Error::custom)?;
        serde_json::to_string(&typed)
            .map(RawJson)
            .map_err(serde::de::Error::custom)
    }
}

/// The fields of an attainment event as `json::encode_attainment` writes them.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttainmentJson {
    attainment_id: String,
    goal_id: String,
    kind: String,
    group: BTreeMap<String, String>,
    window_start: String,
    window_end: String,
    value: Option<Num>,
    target: Num,
    progress: Option<Num>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    milestone: Option<Num>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    triggered_by: Option<String>,
    event_time: String,
}

/// Why an answer of another instance was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PeerDataError {
    /// A field holds a value outside its allowed set.
    #[error("{field} `{value}` is not allowed; expected {allowed}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// What is allowed.
        allowed: &'static str,
    },
}

fn one_of(
    field: &'static str,
    value: &str,
    ok: bool,
    allowed: &'static str,
) -> Result<(), PeerDataError> {
    if ok {
        Ok(())
    } else {
        Err(PeerDataError::Invalid {
            field,
            value: value.chars().take(64).collect(),
            allowed,
        })
    }
}

fn check_time(field: &'static str, value: &str) -> Result<(), PeerDataError> {
    let ok = Timestamp::parse_rfc3339(value).is_ok();
    one_of(field, value, ok, "an RFC 3339 time")
}

impl AttainmentJson {
    /// Checks the fields a type alone does not: kinds, outcomes, times.
    pub fn check(&self) -> Result<(), PeerDataError> {
        let kinds = crate::model::AttainmentKind::ALL.map(|k| k.as_str());
        one_of(
            "kind",
            &self.kind,
            kinds.contains(&self.kind.as_str()),
            "milestone, breached or final",
        )?;
        if let Some(o) = &self.outcome {
            let ok = crate::model::Outcome::from_name(o).is_some();
            one_of("outcome", o, ok, "attained, missed or insufficient_data")?;
        }
        check_time("window_start", &self.window_start)?;
        check_time("window_end", &self.window_end)?;
        check_time("event_time", &self.event_time)
    }
}

impl WindowView {
    /// Checks a window view read from another instance: its goal, instance and times.
    pub fn check(&self, goal_id: &str, instance: &str) -> Result<(), PeerDataError> {
        one_of(
            "goal_id",
            &self.goal_id,
            self.goal_id == goal_id,
            "the goal asked for",
        )?;
        one_of(
            "instance",
            &self.instance,
            self.instance == instance,
            "the instance asked",
        )?;
        let ok = ["at_least", "at_most"].contains(&self.direction.as_str());
        one_of("direction", &self.direction, ok, "at_least or at_most")?;
        check_time("window_start", &self.window_start)?;
        check_time("window_end", &self.window_end)
    }
}

/// An attainment event of a committed transaction, encoded once.
#[derive(Clone, Debug)]
pub struct Committed {
    /// Its goal.
    pub goal_id: Arc<str>,
    /// The attainment event as JSON.
    pub json: String,
}

impl Committed {
    /// Encodes an attainment event.
    pub fn of(a: &Attainment) -> Committed {
        let mut buf = Vec::with_capacity(384);
        json::encode_attainment(a, &mut buf);
        Committed::from_json(a, buf)
    }

    /// An attainment event already encoded as JSON by [`json::encode_attainment`].
    pub fn from_json(a: &Attainment, json: Vec<u8>) -> Committed {
        Committed {
            goal_id: a.goal_id.clone(),
            json: String::from_utf8(json).expect("encoded JSON is UTF-8"),
        }
    }
}

/// An attainment event as `/v1/attainments` lists it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecentAttainment {
    /// A per-instance sequence number, increasing in commit order.
    pub seq: u64,
    /// When its transaction committed (RFC 3339, wall clock of the instance).
    pub committed_at: String,
    /// The instance that published it.
    pub instance: String,
    /// The attainment event, exactly as published to the attainment topic (JSON).
    pub attainment: RawJson,
    /// Its goal (for filtering).
    #[serde(skip)]
    pub goal_id: String,
    /// Commit time in nanoseconds (for filtering).
    #[serde(skip)]
    pub committed_nanos: i64,
}

/// A request for one goal's open windows, answered by the worker between poll rounds.
pub struct Query {
    /// The goal's index.
    pub goal: usize,
    /// The order of the windows.
    pub order: Order,
    /// The most windows answered (the first ones in `order`).
    pub limit: usize,
    /// Where the answer goes.
    pub reply: tokio::sync::oneshot::Sender<Answer>,
}

/// The worker's end of the query channel.
pub type QueryReceiver = mpsc::Receiver<Query>;

/// State shared by the worker and the HTTP server.
pub struct Hub {
    goals: Arc<GoalSet>,
    instance: String,
    ready: AtomicBool,
    queries: Mutex<mpsc::SyncSender<Query>>,
    recent: Mutex<VecDeque<Arc<RecentAttainment>>>,
    seq: AtomicU64,
    feed: tokio::sync::broadcast::Sender<Arc<RecentAttainment>>,
    /// Metric handles, registered once.
    pub telemetry: Telemetry,
}

impl Hub {
    /// A hub for one instance, and the worker's end of the query channel.
    pub fn new(
        goals: Arc<GoalSet>,
        instance: String,
        telemetry: Telemetry,
    ) -> (Arc<Hub>, QueryReceiver) {
        // Bounded: while the worker is busy (restoring, retrying a commit) queries fail fast.
        let (tx, rx) = mpsc::sync_channel(64);
        let (feed, _) = tokio::sync::broadcast::channel(1024);
        let hub = Hub {
            goals,
            instance,
            ready: AtomicBool::new(false),
            queries: Mutex::new(tx),
            recent: Mutex::new(VecDeque::new()),
            seq: AtomicU64::new(0),
            feed,
            telemetry,
        };
        (Arc::new(hub), rx)
    }

    /// The goals served.
    pub fn goals(&self) -> &Arc<GoalSet> {
        &self.goals
    }

    /// This instance's id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Whether every assigned partition's state is restored.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Set by the worker.
    pub fn set_ready(&self, ready: bool) {
        if self.ready.swap(ready, Ordering::AcqRel) != ready {
            self.telemetry.ready.set(if ready { 1.0 } else { 0.0 });
        }
    }

    /// Sends a window query to the worker; false when it has stopped or has too many waiting.
    pub fn query(&self, q: Query) -> bool {
        self.queries
            .lock()
            .expect("query channel lock")
            .try_send(q)
            .is_ok()
    }

    /// Publishes the attainment events of a committed transaction.
    pub fn publish(&self, attainments: Vec<Committed>, committed_at: Timestamp) {
        if attainments.is_empty() {
            return;
        }
        let mut recent = self.recent.lock().expect("recent attainments lock");
        let at = committed_at.to_rfc3339();
        for a in attainments {
            let item = Arc::new(RecentAttainment {
                seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
                committed_at: at.clone(),
                instance: self.instance.clone(),
                attainment: RawJson(a.json),
                goal_id: a.goal_id.to_string(),
                committed_nanos: committed_at.as_nanos(),
            });
            if recent.len() == RECENT_ATTAINMENTS {
                recent.pop_front();
            }
            recent.push_back(item.clone());
            // No subscriber is fine.
            let _ = self.feed.send(item);
        }
    }

    /// Recent attainment events of this instance, oldest first: those of `goal` if given,
    /// committed after `since` if given, at most `limit` (the newest).
    pub fn recent(
        &self,
        goal: Option<&str>,
        since: Option<Timestamp>,
        limit: usize,
    ) -> Vec<Arc<RecentAttainment>> {
        let recent = self.recent.lock().expect("recent attainments lock");
        let mut out: Vec<Arc<RecentAttainment>> = recent
            .iter()
            .rev()
            .filter(|r| goal.is_none_or(|g| r.goal_id == g))
            .filter(|r| since.is_none_or(|s| r.committed_nanos > s.as_nanos()))
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        out
    }

    /// A live feed of attainment events as they are committed.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<RecentAttainment>> {
        self.feed.subscribe()
    }
}
