//! [`Txn`] against librdkafka's in-process mock cluster, with faults injected into the
//! transaction coordinator's answers.

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use super::*;
use crate::runtime::kafka::error::ErrorClass;

const TOPIC: &str = "out";

fn cluster() -> MockCluster<'static, DefaultProducerContext> {
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic(TOPIC, 1, 1).expect("topic");
    mock
}

fn txn(mock: &MockCluster<'static, DefaultProducerContext>, extra: &[(&str, &str)]) -> Txn {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("transactional.id", "txn-test")
        .set("enable.idempotence", "true");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    Txn::new(config, Arc::new(AtomicBool::new(false)), Duration::ZERO).expect("producer")
}

/// Makes the coordinator answer the next EndTxn requests with `errors`.
fn end_txn_fails(mock: &MockCluster<'static, DefaultProducerContext>, errors: &[RDKafkaRespErr]) {
    mock.request_errors(RDKafkaApiKey::EndTxn, errors);
}

fn send_one(t: &mut Txn) {
    t.begin().expect("begin");
    assert!(t.is_open());
    t.send(TOPIC, Some(0), b"k", Some(b"v"), None);
}

#[test]
fn begin_send_commit_closes_the_transaction() {
    let mock = cluster();
    let mut t = txn(&mock, &[]);
    send_one(&mut t);
    t.commit(&TopicPartitionList::new(), None).expect("commit");
    assert!(!t.is_open());
    // The next transaction begins afresh.
    send_one(&mut t);
    t.commit(&TopicPartitionList::new(), None).expect("commit");
}

#[test]
fn an_abort_forgets_the_transaction_and_says_whether_one_was_open() {
    let mock = cluster();
    let mut t = txn(&mock, &[]);
    send_one(&mut t);
    assert!(t.abort("test").expect("abort"));
    assert!(!t.is_open());
    assert!(!t.abort("again").expect("nothing to abort"));
}

#[test]
fn a_record_too_large_fails_the_commit_naming_its_size() {
    let mock = cluster();
    let mut t = txn(&mock, &[("message.max.bytes", "2000")]);
    t.begin().expect("begin");
    t.send(TOPIC, Some(0), b"k", Some(&[0u8; 4000]), None);
    let e = t
        .commit(&TopicPartitionList::new(), None)
        .expect_err("refused record");
    assert!(
        matches!(&e, RunError::RecordTooLarge { size: 4001, limit, .. } if limit == "2000"),
        "{e:?}"
    );
    assert_eq!(e.class(), ErrorClass::Fatal);
    assert!(t.abort("too large").expect("abort"));
}

#[test]
fn a_retriable_coordinator_error_is_retried_until_the_commit_succeeds() {
    let mock = cluster();
    let mut t = txn(&mock, &[]);
    send_one(&mut t);
    let loading = RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS;
    end_txn_fails(&mock, &[loading, loading]);
    t.commit(&TopicPartitionList::new(), None)
        .expect("committed after retries");
    assert!(!t.is_open());
}

#[test]
fn a_fenced_commit_is_fencing_and_without_a_disruption_not_recovered() {
    let mock = cluster();
    let mut t = txn(&mock, &[]);
    send_one(&mut t);
    end_txn_fails(&mock, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED]);
    let e = t
        .commit(&TopicPartitionList::new(), None)
        .expect_err("fenced");
    assert_eq!(e.class(), ErrorClass::Fencing, "{e:?}");
    // No broker connection was lost: another instance took over, and the error stands.
    let e = t.recover(e).expect_err("not recovered");
    assert_eq!(e.class(), ErrorClass::Fencing);
}

#[test]
fn retry_retriable_returns_other_errors_at_once() {
    let mut calls = 0;
    let result = retry_retriable("test", Duration::from_secs(60), || {
        calls += 1;
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::Fail))
    });
    assert!(result.is_err());
    assert_eq!(calls, 1);
}

/// One transaction whose commit fails (a record the producer refused); returns the error.
fn failed_commit(t: &mut Txn) -> RunError {
    send_one(t);
    t.note_send_failed(
        TOPIC,
        KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut),
    );
    let e = t
        .commit(&TopicPartitionList::new(), None)
        .expect_err("a refused record fails the commit");
    assert_eq!(e.class(), ErrorClass::Retriable, "{e}");
    e
}

#[test]
fn commits_failing_in_a_row_replace_the_producer_within_the_recovery_budget() {
    let mock = cluster();
    let mut t = txn(&mock, &[]);
    // Two failures, a commit, two failures: never three in a row, so only aborts.
    for _ in 0..2 {
        let e = failed_commit(&mut t);
        assert_eq!(t.replace_if_failing(&e).expect("no error"), None);
        assert!(t.abort("test").expect("abort"));
    }
    send_one(&mut t);
    t.commit(&TopicPartitionList::new(), None).expect("commit");
    for _ in 0..2 {
        let e = failed_commit(&mut t);
        assert_eq!(t.replace_if_failing(&e).expect("no error"), None);
        assert!(t.abort("test").expect("abort"));
    }
    // The third in a row: a new producer, the open transaction aborted by its initialisation.
    let e = failed_commit(&mut t);
    assert_eq!(t.replace_if_failing(&e).expect("replaced"), Some(true));
    assert!(!t.is_open());
    send_one(&mut t);
    t.commit(&TopicPartitionList::new(), None)
        .expect("the new producer commits");
    // Three replacements within the window at most; then failures are only aborted.
    for round in 2..=4 {
        for _ in 0..2 {
            let e = failed_commit(&mut t);
            assert_eq!(t.replace_if_failing(&e).expect("no error"), None);
            assert!(t.abort("test").expect("abort"));
        }
        let e = failed_commit(&mut t);
        let replaced = t.replace_if_failing(&e).expect("no error");
        if round <= MAX_RECOVERIES {
            assert_eq!(replaced, Some(true), "round {round}");
        } else {
            assert_eq!(replaced, None, "round {round}");
            assert!(t.abort("test").expect("abort"));
        }
    }
}

#[test]
fn a_send_offsets_call_without_an_answer_gives_the_producer_up_and_a_new_one_commits() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let mock = cluster();
    let mut t = txn(&mock, &[]);
    t.send_offsets_deadline = Duration::from_secs(2);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", "txn-test-group")
        .create()
        .expect("consumer");
    let cgm = consumer.group_metadata().map(Arc::new);
    assert!(cgm.is_some());
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(TOPIC, 0, rdkafka::Offset::Offset(1))
        .unwrap();
    send_one(&mut t);
    // No broker answers: the call does not return within the deadline.
    mock.broker_down(1).expect("broker down");
    let started = Instant::now();
    let e = t.commit(&offsets, cgm.as_ref()).expect_err("no answer");
    assert!(started.elapsed() < Duration::from_secs(10), "{e}");
    assert_eq!(e.class(), ErrorClass::Retriable, "{e}");
    assert!(e.to_string().contains("no answer within 2 s"), "{e}");
    // Replaced at once (not after three failures); the new producer commits.
    mock.broker_up(1).expect("broker up");
    assert_eq!(t.replace_if_failing(&e).expect("replaced"), Some(true));
    assert!(!t.is_open());
    send_one(&mut t);
    t.commit(&offsets, cgm.as_ref())
        .expect("the new producer commits with the offsets");
}
