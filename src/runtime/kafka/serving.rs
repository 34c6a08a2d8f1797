//! The worker's side of the HTTP link ([`super::Serving`]): readiness, committed attainment events
//! and metrics to the hub, state gauges, and window queries answered between poll rounds.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::output::PendingAttainment;
use super::telemetry::Counters;
use super::Serving;
use crate::engine::Owner;
use crate::goals::GoalSet;
use crate::model::Timestamp;
use crate::serve::{Hub, QueryReceiver, Telemetry};

/// How often the state gauges are computed, at most.
const STATE_METRICS_EVERY: Duration = Duration::from_secs(1);
/// Bytes counted per remembered event id in the state size estimate.
const DEDUPE_ID_BYTES: usize = 64;

/// The hub, the queries and the gauges of one instance.
pub struct HubLink {
    /// The shared state.
    pub hub: Arc<Hub>,
    queries: QueryReceiver,
    /// Per input partition (by upstream index): its consumer lag.
    lag_gauges: Vec<metrics::Gauge>,
    last_state_metrics: Instant,
}

impl HubLink {
    /// The link for `serving`, with a lag gauge per input (topic, partition).
    pub fn new(serving: Serving, inputs: &[(String, i32)]) -> Self {
        HubLink {
            hub: serving.hub,
            queries: serving.queries,
            lag_gauges: inputs
                .iter()
                .map(|(t, p)| Telemetry::consumer_lag(t, *p))
                .collect(),
            last_state_metrics: Instant::now(),
        }
    }

    /// The metrics.
    pub fn telemetry(&self) -> &Telemetry {
        &self.hub.telemetry
    }

    /// Sets the consumer lag of input partition `upstream`.
    pub fn set_lag(&self, upstream: u32, lag: i64) {
        if let Some(g) = self.lag_gauges.get(upstream as usize) {
            g.set(lag as f64);
        }
    }

    /// Publishes what a commit made visible: the transaction's attainment events, and the
    /// counts since the last commit.
    pub fn committed(
        &self,
        took: Duration,
        attainments: Vec<PendingAttainment>,
        counts: &Counters,
        published: &mut Counters,
    ) {
        let t = self.telemetry();
        t.txn_committed.increment(1);
        t.txn_duration.record(took.as_secs_f64());
        let mut committed = Vec::with_capacity(attainments.len());
        for (goal, kind, c) in attainments {
            t.attainments[goal][kind as usize].increment(1);
            committed.push(c);
        }
        self.hub
            .publish(committed, crate::serve::http::wall_clock());
        counts.publish(published, t);
    }

    /// State size, assignment and progress gauges, at most once every
    /// [`STATE_METRICS_EVERY`].
    pub fn maybe_state_metrics(&mut self, state: State<'_>) {
        if self.last_state_metrics.elapsed() >= STATE_METRICS_EVERY {
            self.last_state_metrics = Instant::now();
            self.state_metrics(state);
        }
    }

    fn state_metrics(&self, s: State<'_>) {
        let t = self.telemetry();
        let windows: usize = s.owners.values().map(Owner::open_windows).sum();
        let bytes = s
            .owners
            .values()
            .map(Owner::state_bytes_estimate)
            .sum::<usize>()
            + s.remembered_ids * DEDUPE_ID_BYTES;
        t.state_windows.set(windows as f64);
        t.state_bytes.set(bytes as f64);
        t.assigned_input.set(s.routers as f64);
        t.assigned_repartition.set(s.owners.len() as f64);
        for (index, goal) in s.goals.goals.iter().enumerate() {
            if t.has_progress_gauge(index) {
                t.replace_progress(index, &goal.id, latest_progress(s.owners, s.goals, index));
            }
        }
    }

    /// Answers the window queries waiting, from the owners' current state; the late and
    /// overflow counts are those published at the last commit.
    pub fn answer_queries(
        &self,
        owners: &BTreeMap<i32, Owner>,
        goals: &GoalSet,
        instance: &str,
        published: &Counters,
    ) {
        // At most a few per round, each building at most `limit` views: the processing path
        // stays bounded however many dashboards ask.
        for _ in 0..crate::serve::hub::QUERIES_PER_ROUND {
            let Ok(q) = self.queries.try_recv() else {
                break;
            };
            if q.reply.is_closed() {
                // The asker gave up.
                continue;
            }
            let mut answer = match goals.goals.get(q.goal) {
                Some(goal) => crate::serve::hub::window_page(
                    goal,
                    q.goal,
                    owners.values(),
                    instance,
                    q.order,
                    q.limit,
                ),
                None => Default::default(),
            };
            let counts = &published.report.counts;
            answer.late = counts.late.get(q.goal).copied().unwrap_or(0);
            answer.overflow = counts.overflow.get(q.goal).copied().unwrap_or(0);
            // The asker may have given up.
            let _ = q.reply.send(answer);
        }
    }
}

/// What the state gauges are computed from.
pub struct State<'a> {
    pub owners: &'a BTreeMap<i32, Owner>,
    pub goals: &'a GoalSet,
    /// The number of routers here.
    pub routers: usize,
    /// Event ids the routers here remember.
    pub remembered_ids: usize,
}

/// Per group of goal `index`: the progress of its latest window (value / target), by group name.
/// Groups without an open window have none (and lose their series).
fn latest_progress(
    owners: &BTreeMap<i32, Owner>,
    goals: &GoalSet,
    index: usize,
) -> impl Iterator<Item = (String, f64)> {
    let goal = &goals.goals[index];
    let mut latest: HashMap<String, (Timestamp, f64)> = HashMap::new();
    for owner in owners.values() {
        for (key, start, ws) in owner.windows_of(index) {
            let progress = match ws.aggregate.value() {
                Some(v) if !goal.target.is_zero() => v
                    .checked_div(goal.target)
                    .and_then(|p| p.to_string().parse::<f64>().ok())
                    .unwrap_or(0.0),
                _ => 0.0,
            };
            let e = latest.entry(key.0.join("|")).or_insert((start, progress));
            if start >= e.0 {
                *e = (start, progress);
            }
        }
    }
    latest.into_iter().map(|(g, (_, p))| (g, p))
}
