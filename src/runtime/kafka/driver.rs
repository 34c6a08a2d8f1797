//! The poll loop: rounds of polled records, decoded on the `goalpost-decode` thread while the
//! worker handles the round before; between rounds, rebuilds, recoveries, queries, periodic
//! commits, idle checks and the end of `--until-caught-up`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};

use super::catchup::{GroupCheck, Targets};
use super::error::RunError;
use super::poll::{Polled, Slots};
use super::rebalance::Ctx;
use super::worker::Worker;
use super::RunOptions;

/// Records taken from the consumer per round, at most: decoded together, then handled in order.
const MAX_POLL_BATCH: usize = 1_024;
/// How long a round waits for a first record when no batch is waiting to be handled.
const POLL_WAIT: Duration = Duration::from_millis(50);
/// Records handled between two reads of the clock (a read costs more than a record).
const CLOCK_EVERY: u32 = 16;
/// How often idle partitions and state gauges are checked.
const IDLE_CHECK_EVERY: Duration = Duration::from_millis(100);
/// The pause before a rebuild that could not be done is tried again.
const RESET_RETRY: Duration = Duration::from_secs(1);

/// What the loop does after the checks that come before a round.
enum Next {
    /// Handle the round.
    Go,
    /// Start the next round (the batches in flight were dropped).
    Restart,
    /// Wait a little, then start the next round (the batches in flight were dropped).
    RetryLater,
}

/// The loop's state.
pub struct Driver<'a> {
    pub consumer: &'a BaseConsumer<Ctx>,
    pub worker: &'a Mutex<Worker>,
    pub epoch: &'a AtomicU64,
    pub options: RunOptions,
    pub targets: Targets,
    pub commit_interval: Duration,
    last_idle_check: Instant,
    group: GroupCheck,
    ticks: u32,
}

impl<'a> Driver<'a> {
    pub fn new(
        consumer: &'a BaseConsumer<Ctx>,
        worker: &'a Mutex<Worker>,
        epoch: &'a AtomicU64,
        options: RunOptions,
        targets: Targets,
        commit_interval: Duration,
    ) -> Self {
        Driver {
            consumer,
            worker,
            epoch,
            options,
            targets,
            commit_interval,
            last_idle_check: Instant::now(),
            group: GroupCheck::new(),
            ticks: 0,
        }
    }

    fn lock(&self) -> MutexGuard<'a, Worker> {
        self.worker.lock().expect("worker lock")
    }

    /// Runs rounds until shutdown or, with `--until-caught-up`, the end; then commits what is
    /// open.
    pub fn run(&mut self, shutdown: &AtomicBool) -> Result<(), RunError> {
        let topics = self.lock().topics.clone();
        let input = self.lock().cfg.input.clone();
        let slots = Slots::new(topics, input);
        std::thread::scope(|scope| {
            let (to_decoder, jobs) = std::sync::mpsc::channel::<usize>();
            std::thread::Builder::new()
                .name("goalpost-decode".into())
                .spawn_scoped(scope, || {
                    for i in jobs {
                        slots.decode_pending(&mut slots.lock(i));
                    }
                })
                .map_err(|cause| RunError::Thread {
                    name: "decode",
                    cause,
                })?;
            self.rounds(&slots, &to_decoder, shutdown)?;
            self.finish()
        })
    }

    /// The rounds. The decode thread ends with them (when `to_decoder` is dropped).
    fn rounds(
        &mut self,
        slots: &Slots<'a>,
        to_decoder: &Sender<usize>,
        shutdown: &AtomicBool,
    ) -> Result<(), RunError> {
        let mut fresh: Vec<Polled<'a>> = Vec::with_capacity(MAX_POLL_BATCH);
        // The slot filled in the previous round (handled in this one) and its size.
        let (mut ready, mut ready_len) = (0, 0);
        loop {
            if shutdown.load(Ordering::Relaxed) {
                tracing::info!("shutdown requested: committing and leaving the group");
                return Ok(());
            }
            let waits = ready_len == 0;
            self.poll_round(&mut fresh, waits);
            let mut w = self.lock();
            match self.before_round(&mut w, slots)? {
                Next::Go => {}
                Next::Restart => {
                    ready_len = 0;
                    continue;
                }
                Next::RetryLater => {
                    ready_len = 0;
                    drop(w);
                    std::thread::sleep(RESET_RETRY);
                    continue;
                }
            }
            w.poll_rosters()?;
            w.answer_queries();
            let newest = 1 - ready;
            let fresh_len = fresh.len();
            if fresh_len > 0 {
                slots.fill(newest, &mut fresh);
                // The decode thread ends with this loop only.
                let _ = to_decoder.send(newest);
            }
            let clock_checked = self.handle_slot(&mut w, slots, ready)?;
            ready = newest;
            ready_len = fresh_len;
            if w.needs_reset || w.fatal.is_some() {
                slots.clear();
                ready_len = 0;
                continue;
            }
            let polled_nothing = fresh_len == 0;
            if self.after_round(
                &mut w,
                waits && polled_nothing,
                polled_nothing,
                clock_checked,
            )? {
                return Ok(());
            }
        }
    }

    /// A round: waits for one record (unless `waits` is false: a batch is waiting to be
    /// handled), then takes what else is already fetched. Each record is tagged with the
    /// assignment epoch it was polled in (rebalances run inside poll).
    fn poll_round(&self, fresh: &mut Vec<Polled<'a>>, waits: bool) {
        fresh.clear();
        let mut wait = if waits { POLL_WAIT } else { Duration::ZERO };
        while fresh.len() < MAX_POLL_BATCH {
            match self.consumer.poll(wait) {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "consumer error");
                    break;
                }
                Some(Ok(m)) => fresh.push((m, self.epoch.load(Ordering::Acquire))),
            }
            wait = Duration::ZERO;
        }
    }

    /// A producer recovery or a rebuild, if one is due: every batch in flight was fetched
    /// before it, and is read again from the committed offsets.
    fn before_round(&self, w: &mut Worker, slots: &Slots<'a>) -> Result<Next, RunError> {
        if let Some(e) = w.fatal.take() {
            slots.clear();
            // Recovered: state is rebuilt from the changelog in the next round.
            w.recover_producer(e)?;
            return Ok(Next::Restart);
        }
        w.update_ready();
        if !w.needs_reset {
            return Ok(Next::Go);
        }
        slots.clear();
        match w.reset(self.consumer) {
            Ok(()) => Ok(Next::Restart),
            Err(e @ RunError::Wire(_)) => Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "cannot rebuild state yet, retrying");
                w.needs_reset = true;
                Ok(Next::RetryLater)
            }
        }
    }

    /// Handles the records of slot `ready`, committing at the interval as it goes. Returns
    /// whether the clock was read.
    fn handle_slot(
        &mut self,
        w: &mut Worker,
        slots: &Slots<'a>,
        ready: usize,
    ) -> Result<bool, RunError> {
        let mut clock_checked = false;
        let mut slot = slots.lock(ready);
        slots.decode_pending(&mut slot);
        let slot = &mut *slot;
        let decoded = &mut slot.decoded;
        for ((m, polled_in), (part, d)) in slot.polled.iter().zip(decoded.slots.drain(..)) {
            let event = d.map(|(i, r)| (&decoded.events[i], r));
            w.handle(m, part, *polled_in, event)?;
            if w.needs_reset || w.fatal.is_some() {
                // The rest is read again after the rebuild.
                break;
            }
            self.ticks = self.ticks.wrapping_add(1);
            if self.ticks % CLOCK_EVERY == 0 {
                clock_checked = true;
                if w.txn.is_open()
                    && w.txn.age() >= self.commit_interval
                    && !w.repart.awaiting_barrier()
                {
                    let cgm = self.consumer.group_metadata().map(Arc::new);
                    w.try_commit(cgm.as_ref());
                }
            }
        }
        std::mem::swap(&mut slot.polled, &mut slot.handled);
        Ok(clock_checked)
    }

    /// Between rounds: the commit of a quiet input or at the interval, idle checks, and the end
    /// of `--until-caught-up`. Returns whether the run is done.
    fn after_round(
        &mut self,
        w: &mut Worker,
        quiet: bool,
        polled_nothing: bool,
        clock_checked: bool,
    ) -> Result<bool, RunError> {
        let now = Instant::now();
        // A quiet input (a wait gave nothing) commits what is open now, not at the interval.
        // Either waits while a barrier is on its way back (briefly; see `Link`).
        let due = now.duration_since(w.txn.started()) >= self.commit_interval;
        if w.txn.is_open() && (quiet || !clock_checked && due) && !w.repart.awaiting_barrier() {
            let cgm = self.consumer.group_metadata().map(Arc::new);
            w.try_commit(cgm.as_ref());
        }
        if now.duration_since(self.last_idle_check) >= IDLE_CHECK_EVERY {
            self.last_idle_check = now;
            w.check_idle(self.consumer);
            w.maybe_state_metrics();
        }
        // Checked when there is nothing to read right now, so the tail of a run does not commit
        // once per record.
        if self.options.until_caught_up && polled_nothing {
            return self.check_caught_up(w);
        }
        Ok(false)
    }

    /// With `--until-caught-up`: whether this instance and the group are done, after a commit
    /// (and, with `--close-all-at-end`, the closing of every window).
    fn check_caught_up(&mut self, w: &mut Worker) -> Result<bool, RunError> {
        let ready = w.assigned_once
            && w.all_input_read(self.consumer, &self.targets)
            && (!self.options.close_all_at_end || w.owns_all())
            && self.group.due();
        if !ready || !self.group.check(self.consumer, &self.targets)? {
            return Ok(false);
        }
        let cgm = self.consumer.group_metadata().map(Arc::new);
        if !w.try_commit(cgm.as_ref()) {
            return Ok(false);
        }
        let caught_up = w.caught_up(cgm.as_ref()).unwrap_or_else(|e| {
            w.fail_or_reset(e);
            false
        });
        if !caught_up {
            return Ok(false);
        }
        if self.options.close_all_at_end {
            w.close_all()?;
            if !w.try_commit(cgm.as_ref()) {
                return Ok(false);
            }
        }
        tracing::info!("caught up with the input end offsets seen at start");
        Ok(true)
    }

    /// After the rounds: whatever fails here is aborted; the next owner of these partitions
    /// redoes it.
    fn finish(&self) -> Result<(), RunError> {
        let mut w = self.lock();
        let cgm = self.consumer.group_metadata().map(Arc::new);
        w.try_commit(cgm.as_ref());
        match w.fatal.take() {
            // A producer recreated after a disruption has aborted the open transaction.
            Some(e) => w.recover_producer(e),
            None => Ok(()),
        }
    }
}
