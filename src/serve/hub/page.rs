//! Answers to window queries: one goal's open windows, ordered and cut to a page, and the same
//! order for views merged from several instances.

use rust_decimal::Decimal;

use super::progress::{goal_progress, progress_of, WindowAt};
use super::views::{decimal_json, MilestoneView, WindowView};
use crate::engine::{GroupKey, Owner, WindowState};
use crate::goals::{Direction, Goal, Metric};
use crate::model::Timestamp;

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

/// The view of one open window; `now` is its owner's stream time. Its fields are those of the
/// window's progress record ([`goal_progress`]), plus the milestones' thresholds, the time left
/// and the pace.
fn window_view(
    goal: &Goal,
    key: &GroupKey,
    start: Timestamp,
    ws: &WindowState,
    now: Option<Timestamp>,
    instance: &str,
) -> WindowView {
    let p = goal_progress(
        WindowAt {
            goal,
            key,
            start,
            state: ws,
            now,
        },
        true,
    );
    let additive = matches!(goal.metric(), Metric::Count | Metric::Sum);
    let pace = match (p.value, now) {
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
            .map(|(m, t)| MilestoneView {
                fraction: decimal_json(*m),
                threshold: decimal_json(*t),
                reached: p.milestones_reached.contains(&m.normalize()),
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut view = WindowView {
        goal_id: p.goal_id.to_string(),
        group: p
            .group
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        window_start: start.to_rfc3339(),
        window_end: ws.end.to_rfc3339(),
        value: p.value.map(decimal_json),
        target: decimal_json(p.target),
        direction: p.direction.to_string(),
        progress: p.progress.map(decimal_json),
        milestones,
        breached: p.breached,
        time_left_seconds: now.map(|n| ((ws.end.as_nanos() - n.as_nanos()) / 1_000_000_000).max(0)),
        pace: pace.map(decimal_json),
        status: None,
        status_tick: None,
        expected: None,
        projected: None,
        instance: instance.to_string(),
    };
    view.set_look_ahead(p.status);
    view
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
