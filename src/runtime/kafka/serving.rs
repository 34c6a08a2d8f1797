//! The worker's side of the HTTP link ([`super::Serving`]): readiness, committed attainment events
//! and metrics to the hub, state gauges, and window queries answered between poll rounds.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::output::PendingAttainment;
use super::telemetry::Counters;
use super::Serving;
use crate::engine::{GroupKey, Owner, StatusState};
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
            if goal.status.is_some() {
                let at_risk: usize = s.owners.values().map(|o| groups_at_risk(o, index)).sum();
                t.groups_at_risk[index].set(at_risk as f64);
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

/// The groups of goal `index` on `owner` whose latest open window is at risk. A group lives on
/// one owner, so sums over owners count each group once.
pub(super) fn groups_at_risk(owner: &Owner, index: usize) -> usize {
    let mut latest: HashMap<&GroupKey, (Timestamp, bool)> = HashMap::new();
    for (key, start, ws) in owner.windows_of(index) {
        let at_risk = ws
            .pacing
            .as_ref()
            .is_some_and(|p| p.tracker.state == StatusState::AtRisk);
        let e = latest.entry(key).or_insert((start, at_risk));
        if start >= e.0 {
            *e = (start, at_risk);
        }
    }
    latest.values().filter(|(_, at_risk)| *at_risk).count()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engine::Pipeline;
    use crate::goals::StatusSpec;
    use crate::model::{SalesEvent, StringField};

    /// A count goal by region with daily `window`, status every 6h without tolerance or hold, fed
    /// a win of north just after midnight and one of east at noon.
    fn owner_after(window: &str) -> Pipeline {
        let text = format!(
            "[[goals]]\nid = \"wins\"\nmetric = \"count\"\ngroup_by = [\"region\"]\n\
             window = {window}\ntarget = 4\ngrace = \"0s\"\n"
        );
        let mut goals = GoalSet::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
        goals.goals[0].status = Some(StatusSpec {
            every: crate::model::Duration::from_secs(6 * 3600),
            tolerance: rust_decimal::Decimal::ZERO,
            hold: crate::model::Duration::ZERO,
        });
        let mut p = Pipeline::new(Arc::new(goals));
        let mut out = Vec::new();
        for (id, region, time) in [("a", "north", "00:10"), ("b", "east", "12:00")] {
            let mut ev = SalesEvent {
                event_id: id.into(),
                event_type: "deal_won".into(),
                occurred_at: Timestamp::parse_rfc3339(&format!("2026-01-01T{time}:00Z")).unwrap(),
                ..SalesEvent::default()
            };
            ev.set_string(StringField::Region, region);
            p.process(&ev, &mut out);
        }
        p
    }

    fn at_risk_windows(p: &Pipeline) -> usize {
        p.owner()
            .windows_of(0)
            .filter(|(_, _, ws)| {
                ws.pacing
                    .as_ref()
                    .is_some_and(|p| p.tracker.state == StatusState::AtRisk)
            })
            .count()
    }

    #[test]
    fn groups_at_risk_count_each_groups_latest_window() {
        // By noon north has 1 of the 2 expected: at risk; east had no event before a tick.
        let p = owner_after("{ tumbling = \"1d\" }");
        assert_eq!(groups_at_risk(p.owner(), 0), 1);
        assert_eq!(groups_at_risk(p.owner(), 1), 0, "no such goal");

        // Two-day windows starting every day: north's window from Dec 31 expects 3 by noon (at
        // risk), its latest, from Jan 1, expects 1 (on track): north is not counted.
        let p = owner_after("{ hopping = \"2d\", every = \"1d\" }");
        assert_eq!(at_risk_windows(&p), 1);
        assert_eq!(groups_at_risk(p.owner(), 0), 0);
    }
}
