//! Idle input partitions: marked idle so that they stop holding back the watermark, and the
//! consumer lag of each partition.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

use super::poll::Part;
use super::repartition::Item;
use super::worker::Worker;

/// Whether an input partition is idle: it had no record for `idle_timeout` (`quiet`) and nothing
/// is left to read on it, as of the end offset of the last fetch. Unknown offsets are not idle.
fn is_idle(quiet: bool, next: i64, marks: Option<(i64, i64)>) -> bool {
    // Records before the log start offset are gone (retention): nothing to read there.
    quiet && matches!(marks, Some((low, high)) if next.max(low) >= high)
}

/// Records between the consumer's next offset and the end offset.
fn lag(next: i64, (low, high): (i64, i64)) -> i64 {
    (high - next.max(low)).max(0)
}

impl Worker {
    /// Marks quiet input partitions idle so they stop holding back the watermark. A partition is
    /// idle when it had no record for `idle_timeout` *and* nothing is left to read on it (its
    /// cached end offset, from the last fetch, is not ahead of us). A partition that merely cannot
    /// be fetched (broker unreachable, consumer behind) never counts as idle, so an outage does not
    /// move the watermark past data still to come.
    pub fn check_idle<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        let timeout = Duration::from_nanos(self.cfg.app.idle_timeout.as_nanos() as u64);
        let mut any = false;
        let topics = self.topics.clone();
        for (upstream, (topic, partition)) in topics.inputs.iter().enumerate() {
            let upstream = upstream as u32;
            let Some(task) = self.routers.get_mut(&upstream) else {
                continue;
            };
            if task.records_since_check > 0 {
                task.records_since_check = 0;
                task.last_record = Instant::now();
            }
            let next_offset = self.next_offsets.get(&Part::Input(upstream)).copied();
            let marks = cached_watermarks(consumer, topic, *partition);
            if let (Some(hub), Some(next), Some(marks)) = (&self.hub, next_offset, marks) {
                hub.set_lag(upstream, lag(next, marks));
            }
            let quiet = task.last_record.elapsed() >= timeout;
            if task.idle_sent || !is_idle(quiet, next_offset.unwrap_or(0), marks) {
                continue;
            }
            task.idle_sent = true;
            any = true;
            let (out, counts) = (&mut self.attainments, &mut self.counts);
            self.repart
                .deliver_all(&mut self.owners, upstream, || Item::Idle, out, counts);
        }
        if any && self.txn.begin().is_err() {
            self.needs_reset = true;
        }
        if !self.attainments.is_empty() && !self.needs_reset {
            self.emit_attainments();
        }
    }
}

/// The log start and end offsets of a partition as of the consumer's last fetch response (no
/// network call); `None` while unknown.
pub fn cached_watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Option<(i64, i64)> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid while `consumer` lives; `topic` is a NUL-terminated
    // string that outlives the call; librdkafka only writes the two out-parameters.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some((low, high))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_is_idle_only_when_quiet_and_read_to_its_known_end() {
        assert!(is_idle(true, 10, Some((0, 10))));
        assert!(!is_idle(false, 10, Some((0, 10))), "not quiet");
        assert!(!is_idle(true, 9, Some((0, 10))), "records left");
        assert!(
            !is_idle(true, 10, None),
            "end unknown: an outage is not idleness"
        );
        // Everything before the log start is gone: nothing to read.
        assert!(is_idle(true, 0, Some((10, 10))));
    }

    #[test]
    fn lag_counts_from_the_log_start_when_records_are_gone() {
        assert_eq!(lag(5, (0, 10)), 5);
        assert_eq!(lag(0, (8, 10)), 2);
        assert_eq!(lag(12, (0, 10)), 0);
    }
}
