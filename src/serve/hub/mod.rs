//! The state shared between the processing loop and the HTTP server.
//!
//! The worker owns the engine's state. It answers window queries between poll rounds (so a
//! query never locks the engine), publishes attainment events once their transaction has
//! committed, and says whether it is ready. The HTTP side only reads.

mod look_ahead;
mod page;
mod peer_data;
mod progress;
mod views;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::metrics::Telemetry;
use crate::codec::json;
use crate::goals::GoalSet;
use crate::model::{Attainment, Timestamp};
pub use look_ahead::{look_ahead_of, status_name, PaceView, StatusView, STATUS_NAMES};
pub use page::{sort_views, window_page, Answer, By, Order};
pub use peer_data::{AttainmentJson, PeerDataError, RawJson};
pub use progress::{goal_progress, progress_of, WindowAt};
pub use views::{GoalView, MilestoneView, Num, WindowView};

/// The most window queries the worker answers per poll round; the rest wait for the next.
pub const QUERIES_PER_ROUND: usize = 8;
/// The most windows one `/v1/goals/{id}` answer may hold (`offset` + `limit`).
pub const MAX_WINDOWS: usize = 10_000;

/// Attainment events kept for `/v1/attainments`, per instance.
pub const RECENT_ATTAINMENTS: usize = 2_000;

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
