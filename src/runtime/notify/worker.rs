//! One thread per sink: it takes commands from a bounded channel (backpressure on the consumer
//! loop), calls the sink, and reports what it finished.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::time::{Duration, Instant};

use super::sink::{Delivery, GivenUp, Sink, StateRecord};
use super::telemetry::SinkMetrics;

/// Commands queued to a sink before it blocks the consumer loop.
const QUEUE: usize = 16;
/// How often [`Sink::tick`] is called.
const TICK_EVERY: Duration = Duration::from_secs(1);

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
) -> std::io::Result<SinkHandle> {
    let name = sink.name().to_string();
    let state_topic = sink.state_topic().map(str::to_string);
    let metrics = SinkMetrics::new(&name);
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    let m = metrics.clone();
    std::thread::Builder::new()
        .name(format!("notify-{name}"))
        .spawn(move || serve(index, sink, &rx, &reports, &m))?;
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
) {
    let mut next_tick = Instant::now() + TICK_EVERY;
    loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        let report = match rx.recv_timeout(wait) {
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
