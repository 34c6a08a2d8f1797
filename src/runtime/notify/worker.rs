//! One thread per sink: it takes commands from a bounded channel (backpressure on the consumer
//! loop), calls the sink, and reports what it finished.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::sink::{Delivery, GivenUp, Sink, StateRecord};
use super::telemetry::SinkMetrics;

/// Commands queued to a sink before it blocks the consumer loop.
const QUEUE: usize = 16;
/// How often [`Sink::tick`] is called.
const TICK_EVERY: Duration = Duration::from_secs(1);

/// The assignment epoch of each partition assigned now, written by the consumer loop: a sink
/// thread skips batches of partitions revoked since they were queued (their new owner delivers
/// them).
pub type Epochs = Arc<RwLock<BTreeMap<i32, u64>>>;

/// What the consumer loop asks of a sink thread.
pub enum Command {
    /// Deliver consecutive events of one partition.
    Deliver {
        /// The partition.
        partition: i32,
        /// Its assignment epoch (see [`super::commits::Tracker`]).
        epoch: u64,
        /// The events.
        batch: Vec<Delivery>,
        /// The record time of the last one (ms since the epoch).
        last_record_ms: Option<i64>,
    },
    /// State records of a newly assigned partition, read back from the sink's state topic.
    Restore(i32, Vec<StateRecord>),
    /// Partitions assigned (after their state was restored).
    Assigned(Vec<i32>),
    /// Partitions revoked.
    Revoked(Vec<i32>),
}

/// What a sink thread reports back.
pub struct Report {
    /// The sink's index.
    pub sink: usize,
    /// The batch finished, as (partition, epoch); `None`: a report of state changes only (after
    /// a tick).
    pub batch: Option<(i32, u64)>,
    /// The events given up, for the dead-letter topic.
    pub given_up: Vec<GivenUp>,
    /// State changes, for the sink's state topic.
    pub state: Vec<(i32, StateRecord)>,
}

/// The consumer loop's side of a sink thread.
pub struct SinkHandle {
    /// The sink's name.
    pub name: String,
    /// Its state topic, if any.
    pub state_topic: Option<String>,
    /// Its metrics.
    pub metrics: SinkMetrics,
    /// Its command queue. The thread is not joined: at shutdown one stuck in a retry is left
    /// behind, its events not committed.
    pub commands: SyncSender<Command>,
}

/// Starts the thread of sink `index`; its reports go to `reports`.
pub fn spawn(
    index: usize,
    sink: Box<dyn Sink>,
    reports: Sender<Report>,
    epochs: Epochs,
) -> std::io::Result<SinkHandle> {
    let name = sink.name().to_string();
    let state_topic = sink.state_topic().map(str::to_string);
    let metrics = SinkMetrics::new(&name);
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    let m = metrics.clone();
    std::thread::Builder::new()
        .name(format!("notify-{name}"))
        .spawn(move || serve(index, sink, &rx, &reports, &m, &epochs))?;
    Ok(SinkHandle {
        name,
        state_topic,
        metrics,
        commands: tx,
    })
}

fn serve(
    index: usize,
    mut sink: Box<dyn Sink>,
    rx: &Receiver<Command>,
    reports: &Sender<Report>,
    metrics: &SinkMetrics,
    epochs: &Epochs,
) {
    let mut next_tick = Instant::now() + TICK_EVERY;
    loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        let report = match rx.recv_timeout(wait) {
            Ok(command) if is_stale(&command, epochs) => None,
            Ok(command) => run(index, sink.as_mut(), command, metrics),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let report = if Instant::now() >= next_tick {
            next_tick = Instant::now() + TICK_EVERY;
            sink.tick();
            let state = sink.take_state();
            report
                .or_else(|| {
                    (!state.is_empty()).then(|| Report {
                        sink: index,
                        batch: None,
                        given_up: Vec::new(),
                        state: Vec::new(),
                    })
                })
                .map(|mut r| {
                    r.state.extend(state);
                    r
                })
        } else {
            report
        };
        if let Some(r) = report {
            if reports.send(r).is_err() {
                return;
            }
        }
    }
}

/// Whether `command` delivers a batch of a partition revoked since it was queued.
fn is_stale(command: &Command, epochs: &Epochs) -> bool {
    match command {
        Command::Deliver {
            partition, epoch, ..
        } => epochs.read().expect("epochs lock").get(partition) != Some(epoch),
        _ => false,
    }
}

fn run(index: usize, sink: &mut dyn Sink, command: Command, m: &SinkMetrics) -> Option<Report> {
    match command {
        Command::Deliver {
            partition,
            epoch,
            batch,
            last_record_ms,
        } => {
            let given_up = sink.deliver(&batch);
            m.finished_at(last_record_ms);
            Some(Report {
                sink: index,
                batch: Some((partition, epoch)),
                given_up,
                state: sink.take_state(),
            })
        }
        Command::Restore(partition, records) => {
            for r in records {
                sink.restore(partition, r);
            }
            None
        }
        Command::Assigned(ps) => {
            sink.assigned(&ps);
            None
        }
        Command::Revoked(ps) => {
            sink.revoked(&ps);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::codec::{decode_attainment, Format};

    /// Records every call; gives up on offsets it is told to, and keeps one state record per
    /// delivered event.
    struct Fake {
        calls: Arc<Mutex<Vec<String>>>,
        refuse: i64,
        state: Vec<(i32, StateRecord)>,
    }

    impl Sink for Fake {
        fn name(&self) -> &str {
            "fake"
        }
        fn deliver(&mut self, batch: &[Delivery]) -> Vec<GivenUp> {
            let mut out = Vec::new();
            for d in batch {
                self.calls
                    .lock()
                    .unwrap()
                    .push(format!("deliver {}", d.offset));
                self.state
                    .push((d.partition, (d.offset.to_be_bytes().to_vec(), None)));
                if d.offset == self.refuse {
                    out.push(GivenUp {
                        delivery: d.clone(),
                        attempts: 1,
                        last_error: "no".into(),
                    });
                }
            }
            out
        }
        fn take_state(&mut self) -> Vec<(i32, StateRecord)> {
            std::mem::take(&mut self.state)
        }
        fn restore(&mut self, partition: i32, record: StateRecord) {
            self.calls
                .lock()
                .unwrap()
                .push(format!("restore {partition} {}", record.0.len()));
        }
        fn assigned(&mut self, partitions: &[i32]) {
            self.calls
                .lock()
                .unwrap()
                .push(format!("assigned {partitions:?}"));
        }
        fn revoked(&mut self, partitions: &[i32]) {
            self.calls
                .lock()
                .unwrap()
                .push(format!("revoked {partitions:?}"));
        }
    }

    fn delivery(offset: i64) -> Delivery {
        let json = br#"{"attainment_id":"x","goal_id":"g","kind":"final","group":{},"window_start":"2026-01-01T00:00:00Z","window_end":"2026-01-02T00:00:00Z","value":1,"target":1,"progress":1,"outcome":"attained","event_time":"2026-01-02T00:00:00Z"}"#;
        Delivery {
            attainment: decode_attainment(Format::Json, json).unwrap(),
            json: json.to_vec(),
            partition: 2,
            offset,
        }
    }

    #[test]
    fn runs_commands_in_order_and_reports_what_it_finished() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let fake = Fake {
            calls: calls.clone(),
            refuse: 11,
            state: Vec::new(),
        };
        let (tx, rx) = mpsc::channel();
        let epochs: Epochs = Arc::new(RwLock::new(BTreeMap::from([(2, 7)])));
        let h = spawn(3, Box::new(fake), tx, epochs.clone()).unwrap();
        assert_eq!(h.name, "fake");
        h.commands
            .send(Command::Restore(2, vec![(vec![1, 2], Some(vec![]))]))
            .unwrap();
        h.commands.send(Command::Assigned(vec![2])).unwrap();
        h.commands
            .send(Command::Deliver {
                partition: 2,
                epoch: 7,
                batch: vec![delivery(10), delivery(11)],
                last_record_ms: None,
            })
            .unwrap();
        let r = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!((r.sink, r.batch), (3, Some((2, 7))));
        assert_eq!(r.given_up.len(), 1);
        assert_eq!(r.given_up[0].delivery.offset, 11);
        assert_eq!(r.state.len(), 2, "state taken after the batch");
        // Revoked after it was queued: skipped.
        epochs.write().unwrap().remove(&2);
        h.commands
            .send(Command::Deliver {
                partition: 2,
                epoch: 7,
                batch: vec![delivery(12)],
                last_record_ms: None,
            })
            .unwrap();
        h.commands.send(Command::Revoked(vec![2])).unwrap();
        drop(h);
        // The thread ends once its queue is dropped; its calls came in the order sent.
        while rx.recv_timeout(Duration::from_secs(10)).is_ok() {}
        assert_eq!(
            *calls.lock().unwrap(),
            [
                "restore 2 2",
                "assigned [2]",
                "deliver 10",
                "deliver 11",
                "revoked [2]"
            ]
        );
    }
}
