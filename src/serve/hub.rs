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

use crate::codec::json;
use crate::engine::Owner;
use crate::goals::{Direction, Goal, GoalSet, Measure, Metric};
use crate::model::{Attainment, Timestamp};

use super::metrics::Telemetry;

/// Attainment events kept for `/v1/attainments`, per instance.
pub const RECENT_ATTAINMENTS: usize = 2_000;

/// A decimal written as an exact JSON number.
fn decimal_json(d: Decimal) -> Box<RawValue> {
    RawValue::from_string(d.normalize().to_string()).expect("a decimal is a JSON number")
}

/// One milestone of an open window.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MilestoneView {
    /// The fraction of the target, e.g. 0.5.
    pub fraction: Box<RawValue>,
    /// The value at which it is reached.
    pub threshold: Box<RawValue>,
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
    pub value: Option<Box<RawValue>>,
    /// The goal's target.
    pub target: Box<RawValue>,
    /// `at_least` or `at_most`.
    pub direction: String,
    /// value / target; `null` when the target is 0 or there is no value.
    pub progress: Option<Box<RawValue>>,
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
    pub pace: Option<Box<RawValue>>,
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
    pub target: Box<RawValue>,
    /// `at_least` or `at_most`.
    pub direction: String,
    /// Milestone fractions.
    pub milestones: Vec<Box<RawValue>>,
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

/// The views of one goal's open windows held by `owner`.
pub fn window_views(goal: &Goal, index: usize, owner: &Owner, instance: &str) -> Vec<WindowView> {
    let now = owner.stream_time();
    let additive = matches!(goal.metric(), Metric::Count | Metric::Sum);
    owner
        .windows_of(index)
        .map(|(key, start, ws)| {
            let value = ws.aggregate.value();
            let progress = match value {
                Some(v) if !goal.target.is_zero() => v.checked_div(goal.target),
                _ => None,
            };
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
                progress: progress.map(|p| decimal_json(p.round_dp(6))),
                milestones,
                breached: ws.breached,
                time_left_seconds: now
                    .map(|n| ((ws.end.as_nanos() - n.as_nanos()) / 1_000_000_000).max(0)),
                pace: pace.map(decimal_json),
                instance: instance.to_string(),
            }
        })
        .collect()
}

/// Sorts window views by group, then window start: the order every instance answers in.
pub fn sort_views(views: &mut [WindowView]) {
    views.sort_by(|a, b| {
        (&a.goal_id, &a.group, &a.window_start).cmp(&(&b.goal_id, &b.group, &b.window_start))
    });
}

/// JSON text embedded as is (checked only when served, not on every publish).
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
        Box::<RawValue>::deserialize(d).map(|r| RawJson(r.get().to_string()))
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
    /// Where the answer goes.
    pub reply: tokio::sync::oneshot::Sender<Vec<WindowView>>,
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
