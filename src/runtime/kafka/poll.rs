//! What the consumer polls: the partitions an instance reads ([`Topics`], [`Part`]), and poll
//! batches decoded on a thread of their own ([`Slots`], [`decode_batch`]) while the worker
//! handles the batch before.

use std::sync::Mutex;

use rdkafka::message::{BorrowedMessage, Headers, Message};

use super::config::InputConfig;
use crate::codec::{self, Format};
use crate::model::{SalesEvent, Timestamp};

/// A partition this instance reads, without its topic name (no allocation per record).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    /// An input partition, by upstream index.
    Input(u32),
    /// A repartition partition (its owner's index).
    Repartition(i32),
}

/// The partitions an instance may read: every input partition (by upstream index) and the
/// repartition topic.
pub struct Topics {
    pub repartition: String,
    /// Upstream index -> input (topic, partition).
    pub inputs: Vec<(String, i32)>,
    /// Input topic -> upstream index of its partition 0.
    input_bases: Vec<(String, u32)>,
}

impl Topics {
    /// The partitions of the input topics, numbered in topic order, and `repartition`.
    pub fn new<'a>(
        repartition: String,
        inputs: impl Iterator<Item = (&'a String, &'a i32)>,
    ) -> Self {
        let mut parts = Vec::new();
        let mut input_bases = Vec::new();
        for (topic, n) in inputs {
            input_bases.push((topic.clone(), parts.len() as u32));
            parts.extend((0..*n).map(|p| (topic.clone(), p)));
        }
        Topics {
            repartition,
            inputs: parts,
            input_bases,
        }
    }

    /// The partition a record came from, if this instance reads it.
    pub fn part(&self, topic: &str, partition: i32) -> Option<Part> {
        if topic == self.repartition {
            return Some(Part::Repartition(partition));
        }
        let &(_, base) = self.input_bases.iter().find(|(t, _)| t == topic)?;
        let id = base + u32::try_from(partition).ok()?;
        (self.inputs.get(id as usize)?.0 == topic).then_some(Part::Input(id))
    }

    /// The topic and partition of a [`Part`].
    pub fn name(&self, part: Part) -> (&str, i32) {
        match part {
            Part::Input(up) => {
                let (t, p) = &self.inputs[up as usize];
                (t, *p)
            }
            Part::Repartition(p) => (&self.repartition, p),
        }
    }
}

/// A polled record and the assignment epoch it was polled in.
pub type Polled<'c> = (BorrowedMessage<'c>, u64);

/// A poll batch and its decoding.
#[derive(Default)]
pub struct Slot<'c> {
    pub polled: Vec<Polled<'c>>,
    /// Records handled already, to be released.
    pub handled: Vec<Polled<'c>>,
    /// Polled but not decoded yet.
    pending: bool,
    pub decoded: Decoded,
}

/// An input record's index in [`Decoded::events`] and the result of decoding it.
pub type DecodedInput = (usize, Result<(), codec::DecodeError>);

/// A poll batch as the decode thread leaves it.
#[derive(Default)]
pub struct Decoded {
    /// Per polled record: its partition and, for input records, its index in `events` and the
    /// result of decoding it.
    pub slots: Vec<(Option<Part>, Option<DecodedInput>)>,
    /// Decoded input events (buffers reused from batch to batch).
    pub events: Vec<SalesEvent>,
}

/// Two poll batches in flight: the newest one, which the decode thread decodes while the worker
/// handles the one before it. Whoever locks a pending slot first decodes it, so the worker never
/// waits for a decode thread that has not started.
pub struct Slots<'c> {
    slots: [Mutex<Slot<'c>>; 2],
    topics: std::sync::Arc<super::poll::Topics>,
    input: InputConfig,
}

impl<'c> Slots<'c> {
    pub fn new(topics: std::sync::Arc<Topics>, input: InputConfig) -> Self {
        Slots {
            slots: Default::default(),
            topics,
            input,
        }
    }

    /// Locks slot `i`.
    pub fn lock(&self, i: usize) -> std::sync::MutexGuard<'_, Slot<'c>> {
        self.slots[i].lock().expect("slot lock")
    }

    /// Puts `fresh` (left empty) into slot `i`, to be decoded.
    pub fn fill(&self, i: usize, fresh: &mut Vec<Polled<'c>>) {
        let mut slot = self.lock(i);
        std::mem::swap(&mut slot.polled, fresh);
        slot.pending = true;
    }

    /// Decodes `slot` if it is pending, and releases the records handled before. Releasing
    /// records costs the worker time too: it is done here, on the decode thread when it gets
    /// there first.
    pub fn decode_pending(&self, slot: &mut Slot<'c>) {
        slot.handled.clear();
        if slot.pending {
            decode_batch(&self.topics, &self.input, &slot.polled, &mut slot.decoded);
            slot.pending = false;
        }
    }

    /// Drops every batch in flight (they are read again after a rebuild).
    pub fn clear(&self) {
        for i in 0..self.slots.len() {
            let mut slot = self.lock(i);
            slot.polled.clear();
            slot.handled.clear();
            slot.pending = false;
        }
    }
}

/// The format of an input record: its `content-type` header, else `default`.
fn format_of(m: &BorrowedMessage<'_>, default: Format) -> Format {
    m.headers()
        .and_then(|h| {
            h.iter()
                .find(|h| h.key.eq_ignore_ascii_case("content-type"))
        })
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(Format::from_name)
        .unwrap_or(default)
}

/// Decodes the input records of a poll batch (on the decode thread, while the worker handles the
/// previous batch): the codec (with the record size limit) and the `max_future` bound.
pub fn decode_batch(
    topics: &Topics,
    input: &InputConfig,
    polled: &[Polled<'_>],
    out: &mut Decoded,
) {
    let limits = input.limits();
    // The wall clock is read at most once per batch, plus once per suspect event.
    let mut future =
        codec::future::FutureBound::new(input.max_future, codec::future::FutureFrom::Wall);
    out.slots.clear();
    let mut n = 0;
    for (m, _) in polled {
        let part = topics.part(m.topic(), m.partition());
        if !matches!(part, Some(Part::Input(_))) {
            out.slots.push((part, None));
            continue;
        }
        if out.events.len() <= n {
            out.events.push(SalesEvent::default());
        }
        let payload = m.payload().unwrap_or_default();
        let ev = &mut out.events[n];
        let result = codec::decode_event(format_of(m, input.format), payload, ev, &limits)
            .and_then(|()| {
                future
                    .as_mut()
                    .map_or(Ok(()), |b| b.check(ev.occurred_at, Timestamp::now))
            });
        out.slots.push((part, Some((n, result))));
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn parts_number_input_partitions_in_topic_order() {
        let inputs: BTreeMap<String, i32> = [("a".to_string(), 2), ("b".to_string(), 3)].into();
        let topics = Topics::new("app-repartition".into(), inputs.iter());
        assert_eq!(topics.inputs.len(), 5);
        assert_eq!(topics.part("a", 1), Some(Part::Input(1)));
        assert_eq!(topics.part("b", 0), Some(Part::Input(2)));
        assert_eq!(topics.part("b", 2), Some(Part::Input(4)));
        assert_eq!(topics.part("b", 3), None, "no such partition");
        assert_eq!(topics.part("c", 0), None, "not an input");
        assert_eq!(
            topics.part("app-repartition", 7),
            Some(Part::Repartition(7))
        );
        assert_eq!(topics.name(Part::Input(2)), ("b", 0));
        assert_eq!(topics.name(Part::Repartition(1)), ("app-repartition", 1));
    }
}
