//! Fault injection on librdkafka's in-process mock cluster (never the proof that the Kafka path
//! works: `tests/kafka*.rs` run against a real broker). Here the mock makes the transaction
//! coordinator answer "fenced" on demand, which a real broker only does in rare situations, to
//! check how `goalpost run` tells a broker disruption from another instance taking over.

#[allow(dead_code)]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use goalpost::goals::GoalSet;
use goalpost::runtime::demo::{
    create_topics, feed_events, mock_cluster_owner, run_config, FeedStats,
};
use goalpost::runtime::kafka::{self, RunOptions, RunReport};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaApiKey;
use rdkafka::types::RDKafkaRespErr;

use support::goals::example_goals;

const PARTITIONS: i32 = 2;

/// Starts the pipeline on a mock cluster preloaded with events, lets it commit for a while, runs
/// `inject` on the cluster, lets it run again, then stops it and returns how it ended.
fn run_with_fault(
    inject: impl FnOnce(&MockCluster<'_, rdkafka::producer::DefaultProducerContext>),
) -> Result<RunReport, String> {
    let holder = mock_cluster_owner().unwrap();
    let mock = holder.client().mock_cluster().unwrap();
    let bootstrap = mock.bootstrap_servers();
    let cfg = run_config(&bootstrap);
    create_topics(&mock, &cfg, PARTITIONS).unwrap();
    // A steady feed, so that transactions keep being committed around the fault.
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let stop = stop.clone();
        let bootstrap = bootstrap.clone();
        std::thread::spawn(move || {
            feed_events(&bootstrap, 5_000, 3, &stop, &Arc::new(FeedStats::default())).unwrap()
        })
    };

    let goals = Arc::new(GoalSet::from_toml(&example_goals()).unwrap());
    let pipeline = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            // The mock cluster cannot describe topic configurations.
            let options = RunOptions {
                skip_changelog_policy_check: true,
                ..RunOptions::default()
            };
            kafka::run(cfg, goals, options, stop, None).map_err(|e| e.to_string())
        })
    };
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !pipeline.is_finished(),
        "the pipeline stopped before the fault: {:?}",
        pipeline.join()
    );
    inject(&mock);
    std::thread::sleep(Duration::from_secs(8));
    stop.store(true, Ordering::Relaxed);
    feeder.join().unwrap();
    pipeline.join().unwrap()
}

/// A broker outage followed by a "fenced" answer to the end of the transaction (what a broker
/// restart can cause): the instance recreates its producer, rebuilds state and goes on.
#[test]
fn fenced_after_a_broker_outage_recreates_the_producer_and_goes_on() {
    let report = run_with_fault(|mock| {
        // The outage first: a transaction ending just before it must not get the answer.
        mock.broker_down(1).unwrap();
        std::thread::sleep(Duration::from_secs(2));
        mock.request_errors(
            RDKafkaApiKey::EndTxn,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED],
        );
        mock.broker_up(1).unwrap();
    })
    .expect("the instance survives");
    assert_eq!(report.producers_recreated, 1, "{report:?}");
    assert!(report.aborts >= 1, "{report:?}");
    assert!(report.counts.read > 0 && report.commits > 2, "{report:?}");
}

/// The same "fenced" answer without any disruption means another instance with the same id took
/// over: this one stops with a clear error instead of fencing it back.
#[test]
fn fenced_without_a_disruption_stops_the_instance() {
    let err = run_with_fault(|mock| {
        mock.request_errors(
            RDKafkaApiKey::EndTxn,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED],
        );
    })
    .expect_err("a fenced instance stops");
    assert!(err.contains("fenced"), "{err}");
}

/// Produce requests failing for a while (what a broker restart can leave a producer with): once
/// three transactions in a row failed to commit, the instance replaces its producer rather than
/// abort once more, rebuilds state, and goes on committing.
#[test]
fn transactions_failing_in_a_row_replace_the_producer_and_it_goes_on() {
    let report = run_with_fault(|mock| {
        let errors = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_RECORD; 200];
        mock.request_errors(RDKafkaApiKey::Produce, &errors);
    })
    .expect("the instance survives");
    assert!(report.producers_recreated >= 1, "{report:?}");
    assert!(report.aborts >= 2, "{report:?}");
    assert!(report.counts.read > 0 && report.commits > 2, "{report:?}");
}
