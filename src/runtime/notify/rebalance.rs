//! Assignment changes: the consumer's rebalance callbacks (run inside `poll`, on the loop's
//! thread). A revoke commits what the sinks finished and forgets the partitions; an assignment
//! restores the sinks' state from their state topics, then tells them.

use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, TopicPartitionList};

use super::consumer::Shell;
use super::worker::Command;

impl Shell {
    /// Partitions revoked: commit what is finished, forget them, tell the sinks.
    pub(super) fn revoke<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, parts: &[i32]) {
        tracing::info!(partitions = ?parts, "partitions revoked: committing what is delivered");
        for p in parts {
            self.pending.remove(p);
        }
        let done = self
            .drain_reports()
            .and_then(|()| self.commit(consumer, Some(parts)));
        if let Err(e) = done {
            tracing::warn!(error = %e, "cannot commit the revoked partitions; their events are delivered again by their new owner");
        }
        let mut epochs = self.epochs.write().expect("epochs lock");
        for &p in parts {
            self.tracker.revoke(p);
            epochs.remove(&p);
        }
        drop(epochs);
        for q in &mut self.backlog {
            q.retain(
                |c| !matches!(c, Command::Deliver { partition, .. } if parts.contains(partition)),
            );
        }
        for q in &mut self.backlog {
            q.push_back(Command::Revoked(parts.to_vec()));
        }
        self.pump();
    }

    /// Partitions assigned: restore the sinks' state, then tell them.
    pub(super) fn assign(&mut self, parts: &[i32]) {
        tracing::info!(partitions = ?parts, "partitions assigned");
        self.reassigned = true;
        let mut epochs = self.epochs.write().expect("epochs lock");
        for &p in parts {
            epochs.insert(p, self.tracker.assign(p));
        }
        drop(epochs);
        for i in 0..self.sinks.len() {
            if let Some(topic) = self.sinks[i].state_topic.clone() {
                match super::state::read(&self.client, &topic, parts) {
                    Ok(states) => {
                        for (p, records) in states {
                            tracing::info!(sink = %self.sinks[i].name, partition = p, records = records.len(), "state restored");
                            self.backlog[i].push_back(Command::Restore(p, records));
                        }
                    }
                    Err(e) => {
                        self.fatal.get_or_insert(e);
                    }
                }
            }
            self.backlog[i].push_back(Command::Assigned(parts.to_vec()));
        }
        self.pump();
    }
}

/// The group consumer's context: runs the shell's side of each rebalance.
pub struct Ctx {
    /// The shell.
    pub shell: Arc<Mutex<Shell>>,
}

impl ClientContext for Ctx {}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let parts = partitions(tpl);
            self.shell
                .lock()
                .expect("shell lock")
                .revoke(consumer, &parts);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let parts = partitions(tpl);
                self.shell.lock().expect("shell lock").assign(&parts);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}
