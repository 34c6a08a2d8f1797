//! The routers' side of the repartition topic without a broker: where [`Repartition::deliver`]
//! puts each item, and what [`apply_batch`] applies.

use std::sync::Arc;

use smallvec::smallvec;

use super::*;
use crate::aggregate::Delta;
use crate::goals::GoalSet;

const GOALS: &str = r#"
[[goals]]
id = "deals"
metric = "count"
filter = { event_type = "deal_won" }
window = { tumbling = "1d" }
target = 100
"#;

fn owners(partitions: &[i32]) -> BTreeMap<i32, Owner> {
    let goals = Arc::new(GoalSet::from_toml(GOALS).unwrap());
    partitions
        .iter()
        .map(|&p| (p, Owner::new(goals.clone(), 2)))
        .collect()
}

fn contribution(id: &str) -> Contribution<'_> {
    Contribution {
        goal: 0,
        group: smallvec![],
        delta: Delta::Count,
        event_id: id,
        event_time: Timestamp::from_nanos(1_000),
    }
}

/// Two owner partitions; batches are full after one contribution when `split_bytes` is 1.
fn repartition(split_bytes: usize) -> Repartition {
    Repartition::new("app-repartition".into(), 2, split_bytes, "instance")
}

#[test]
fn through_the_topic_a_contribution_is_batched_until_the_batch_is_full() {
    let (mut owned, mut out, mut counts) = (owners(&[0]), Vec::new(), Counters::new(1));
    let mut r = repartition(1 << 20);
    let c = contribution("e1");
    assert!(!r.deliver(
        &mut owned,
        0,
        0,
        Item::Contribution("deals", &c),
        &mut out,
        &mut counts
    ));
    assert!(!r.is_empty());
    assert_eq!(counts.report.local_contributions, 0);
    let mut r = repartition(1);
    assert!(r.deliver(
        &mut owned,
        0,
        0,
        Item::Contribution("deals", &c),
        &mut out,
        &mut counts
    ));
}

#[test]
fn a_local_owner_gets_contributions_progress_and_idleness_directly() {
    let (mut owned, mut out, mut counts) = (owners(&[1]), Vec::new(), Counters::new(1));
    let mut r = repartition(1);
    assert!(r.go_local(1).is_empty());
    assert_eq!(r.link(1), Some(Link::Local));
    let c = contribution("e1");
    assert!(!r.deliver(
        &mut owned,
        0,
        1,
        Item::Contribution("deals", &c),
        &mut out,
        &mut counts
    ));
    r.deliver_all(&mut owned, 0, || Item::Idle, &mut out, &mut counts);
    assert_eq!(counts.report.local_contributions, 1);
    assert_eq!(owned[&1].open_windows(), 1);
    // Owner 0 is not here: its idle marker waits in a batch.
    assert!(!r.is_empty());
    // A change of assignment goes back to the topic.
    r.reassigned();
    assert_eq!(r.link(1), Some(Link::Topic));
}

#[test]
fn while_a_barrier_is_out_full_batches_are_held_and_applied_in_order_when_it_returns() {
    let (mut owned, mut out, mut counts) = (owners(&[0]), Vec::new(), Counters::new(1));
    let mut r = repartition(1);
    r.links[0] = Link::Draining {
        barrier: 7,
        sent: Instant::now(),
    };
    assert!(r.awaiting_barrier());
    let (c1, c2) = (contribution("e1"), contribution("e2"));
    for c in [&c1, &c2] {
        let full = r.deliver(
            &mut owned,
            0,
            0,
            Item::Contribution("deals", c),
            &mut out,
            &mut counts,
        );
        assert!(!full, "held, not sent");
    }
    r.deliver(
        &mut owned,
        1,
        0,
        Item::Progress {
            stream_time: Timestamp::from_nanos(5),
            earliest: Timestamp::from_nanos(2),
        },
        &mut out,
        &mut counts,
    );
    let batches = r.go_local(0);
    assert_eq!(
        batches.len(),
        4,
        "upstream 0's two held batches and its current (empty) one, then upstream 1's"
    );
    let ids: Vec<String> = batches[..2]
        .iter()
        .flat_map(|b| {
            let mut ids = Vec::new();
            wire::read_batch_each(b, |c| ids.push(c.event_id.to_string())).unwrap();
            ids
        })
        .collect();
    assert_eq!(ids, ["e1", "e2"]);
    assert!(r.is_empty());
    assert_eq!(r.link(0), Some(Link::Local));
}

#[test]
fn markers_are_distinct_and_odd() {
    let mut r = repartition(1);
    let (a, b) = (r.next_sentinel(), r.next_sentinel());
    assert_ne!(a, b);
    assert_eq!((a & 1, b & 1), (1, 1), "never 0, which means no marker");
    let header = wire::read_batch_each(&marker_record(a), |_| {}).unwrap();
    assert_eq!(header.sentinel, a);
}

/// What [`apply_batch`] reports into, besides the owner.
struct Sinks {
    counts: Counters,
    warnings: WarnLimit,
    out: Vec<Attainment>,
}

impl Sinks {
    fn new() -> Self {
        Sinks {
            counts: Counters::new(1),
            warnings: WarnLimit::new(Duration::from_secs(10)),
            out: Vec::new(),
        }
    }

    /// A context for `upstreams` input partitions.
    fn context<'a>(
        &'a mut self,
        goal_index: &'a hashbrown::HashMap<String, usize>,
        upstreams: usize,
    ) -> BatchContext<'a> {
        BatchContext {
            goal_index,
            upstreams,
            counts: &mut self.counts,
            warnings: &mut self.warnings,
            out: &mut self.out,
        }
    }
}

#[test]
fn a_batch_read_back_is_applied_whole_or_not_at_all() {
    let goals = Arc::new(GoalSet::from_toml(GOALS).unwrap());
    let index: hashbrown::HashMap<String, usize> = [("deals".to_string(), 0)].into();
    let mut owner = Owner::new(goals, 2);
    let mut sinks = Sinks::new();
    let mut writer = wire::BatchWriter::new(1);
    writer.push("deals", &contribution("e1"));
    writer.push("gone", &contribution("e2"));
    let bytes = writer.finish();
    let cx = sinks.context(&index, 2);
    let (header, applied) = apply_batch(Some(&mut owner), 0, &bytes, cx).unwrap();
    assert_eq!((header.upstream, applied), (1, 1));
    assert_eq!(sinks.counts.report.unknown_goal, 1);
    assert_eq!(owner.open_windows(), 1);
    // From an upstream partition the input does not have: an error, nothing applied.
    let cx = sinks.context(&index, 1);
    assert!(apply_batch(Some(&mut owner), 0, &bytes, cx).is_err());
    assert_eq!(sinks.counts.report.unknown_goal, 1);
}

/// The router's earliest time reaches an owner directly and through the topic; a batch of an
/// older version, without it, reads as its stream time.
#[test]
fn progress_carries_the_earliest_time_both_ways() {
    let (mut owned, mut out, mut counts) = (owners(&[0, 1]), Vec::new(), Counters::new(1));
    let mut r = repartition(1);
    r.go_local(0);
    let progress = || Item::Progress {
        stream_time: Timestamp::from_nanos(50),
        earliest: Timestamp::from_nanos(20),
    };
    r.deliver_all(&mut owned, 0, progress, &mut out, &mut counts);
    assert_eq!(owned[&0].earliest(), Some(Timestamp::from_nanos(20)));
    let batches = r.go_local(1);
    assert_eq!(batches.len(), 1);
    let (index, mut sinks) = (hashbrown::HashMap::new(), Sinks::new());
    let mut apply = |owner: &mut Owner, bytes: &[u8]| {
        apply_batch(Some(owner), 1, bytes, sinks.context(&index, 2)).unwrap();
    };
    let owner = owned.get_mut(&1).unwrap();
    apply(owner, &batches[0]);
    assert_eq!(owner.earliest(), Some(Timestamp::from_nanos(20)));
    let mut old = wire::BatchWriter::new(1);
    old.set_stream_time(Timestamp::from_nanos(70));
    apply(owner, &old.finish());
    assert_eq!(owner.earliest(), Some(Timestamp::from_nanos(20)));
    let mut fresh = Owner::new(Arc::new(GoalSet::from_toml(GOALS).unwrap()), 2);
    apply(&mut fresh, &wire::BatchWriter::new(1).finish());
    assert_eq!(fresh.earliest(), None, "no progress, no earliest time");
    let mut old = wire::BatchWriter::new(1);
    old.set_stream_time(Timestamp::from_nanos(70));
    apply(&mut fresh, &old.finish());
    assert_eq!(fresh.earliest(), Some(Timestamp::from_nanos(70)));
}
