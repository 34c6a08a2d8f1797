//! The printer: a read_committed consumer of the output topic that prints one short line per
//! attainment event, at most so many a second, and counts what it received.

use std::io::{self, Write};
use std::time::{Duration as StdDuration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::numbers::{clock, number, percent, thousands};
use super::{DemoError, Received, APPLICATION_ID};
use crate::codec::{decode_attainment, Format};
use crate::goals::GoalSet;
use crate::model::{Attainment, AttainmentKind, Outcome, Timestamp};
use crate::window::{CalendarUnit, WindowSpec};

pub(super) fn printer_consumer(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
) -> Result<BaseConsumer, DemoError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("{APPLICATION_ID}-printer"))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .map_err(DemoError::kafka("create the printer's consumer"))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(DemoError::kafka("build the printer's assignment"))?;
    }
    consumer
        .assign(&tpl)
        .map_err(DemoError::kafka("assign the output topic to the printer"))?;
    Ok(consumer)
}

pub(super) struct Printer<'g> {
    goals: &'g GoalSet,
    max_per_sec: usize,
    second_started: Instant,
    printed_this_second: usize,
    /// Not printed since the last "… and N more" line, indexed like [`AttainmentKind::ALL`].
    suppressed: [u64; AttainmentKind::COUNT],
    pub(super) received: Received,
}

impl<'g> Printer<'g> {
    pub(super) fn new(goals: &'g GoalSet, max_per_sec: usize) -> Self {
        Printer {
            goals,
            max_per_sec,
            second_started: Instant::now(),
            printed_this_second: 0,
            suppressed: [0; AttainmentKind::COUNT],
            received: Received::default(),
        }
    }

    /// Reads what is available (waiting up to `timeout` for the first record) and prints it.
    pub(super) fn poll(
        &mut self,
        consumer: &BaseConsumer,
        timeout: StdDuration,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        let mut wait = timeout;
        let mut printed = false;
        loop {
            match consumer.poll(wait) {
                None => break,
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => tracing::warn!(error = %e, "demo printer: consumer error"),
                Some(Ok(m)) => {
                    printed |= self.record(m.payload().unwrap_or_default(), out)?;
                }
            }
            wait = StdDuration::ZERO;
        }
        if self.second_started.elapsed() >= StdDuration::from_secs(1) {
            self.flush_suppressed(out)?;
        }
        if printed {
            out.flush()?;
        }
        Ok(())
    }

    /// Counts one record and prints it unless this second's budget is spent.
    pub(super) fn record(&mut self, payload: &[u8], out: &mut dyn Write) -> io::Result<bool> {
        let Ok(r) = decode_attainment(Format::Json, payload) else {
            self.received.unreadable += 1;
            return Ok(false);
        };
        let (kind, outcome) = (r.kind, r.outcome);
        self.received.count(kind, outcome);
        if self.second_started.elapsed() >= StdDuration::from_secs(1) {
            self.flush_suppressed(out)?;
        }
        if self.printed_this_second >= self.max_per_sec {
            self.suppressed[kind as usize] += 1;
            self.received.not_printed += 1;
            return Ok(false);
        }
        self.printed_this_second += 1;
        writeln!(out, "{}", self.line(&r, kind, outcome))?;
        Ok(true)
    }

    /// Prints "… and N more …" for what this second's budget left out, and starts a new second.
    pub(super) fn flush_suppressed(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let names = [
            ("milestone", "milestones"),
            ("breach", "breaches"),
            ("final", "finals"),
            ("at risk", "at risk"),
            ("on track", "on track"),
        ];
        let parts: Vec<String> = self
            .suppressed
            .iter()
            .zip(names)
            .filter(|(n, _)| **n > 0)
            .map(|(n, (one, many))| {
                format!(
                    "{} more {}",
                    thousands(*n),
                    if *n == 1 { one } else { many }
                )
            })
            .collect();
        if !parts.is_empty() {
            writeln!(out, "{}  … and {}", clock(), parts.join(", "))?;
            out.flush()?;
        }
        self.suppressed = [0; AttainmentKind::COUNT];
        self.printed_this_second = 0;
        self.second_started = Instant::now();
        Ok(())
    }

    fn line(&self, r: &Attainment, kind: AttainmentKind, outcome: Option<Outcome>) -> String {
        let label = label(r, kind, outcome);
        let mut s = format!("{}  {label:<15} {}", clock(), r.goal_id);
        if !r.group.is_empty() {
            let g: Vec<String> = r.group.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!(" {{{}}}", g.join(", ")));
        }
        s.push(' ');
        s.push_str(&self.window_label(&r.goal_id, r.window.start, r.window.end));
        let target = r.target;
        match (r.value, r.expected) {
            (Some(v), Some(e)) => {
                s.push_str(&format!("  value {} (expected {}", number(v), number(e)));
                if let Some(p) = r.projected {
                    s.push_str(&format!(", projected {}", number(p)));
                }
                s.push_str(&format!(" of {})", number(target)));
            }
            (Some(v), None) => {
                s.push_str(&format!("  value {}", number(v)));
                match r.progress {
                    Some(p) => s.push_str(&format!(" ({} of {})", percent(p), number(target))),
                    None => s.push_str(&format!(" (target {})", number(target))),
                }
            }
            (None, _) => s.push_str("  no value"),
        }
        if let Some(t) = &r.triggered_by {
            s.push_str("  by ");
            s.push_str(t);
        }
        s
    }

    /// The window in the goal's own terms: `2026-01` for a calendar month, `week of 2026-01-05`,
    /// `2026-01-01..01-08` for fixed-size windows (UTC).
    fn window_label(&self, goal_id: &str, start: Timestamp, end: Timestamp) -> String {
        match self.goals.get(goal_id).map(|g| &g.window) {
            Some(WindowSpec::Calendar(c)) => {
                let s = start.to_datetime().with_timezone(&c.timezone);
                match c.unit {
                    CalendarUnit::Day => s.format("%Y-%m-%d").to_string(),
                    CalendarUnit::Week => format!("week of {}", s.format("%Y-%m-%d")),
                    CalendarUnit::Month => s.format("%Y-%m").to_string(),
                    CalendarUnit::Quarter if c.fiscal_year_start_month == 1 => {
                        use chrono::Datelike;
                        format!("{}-Q{}", s.year(), (s.month() - 1) / 3 + 1)
                    }
                    CalendarUnit::Quarter => format!("quarter from {}", s.format("%Y-%m-%d")),
                    CalendarUnit::Year if c.fiscal_year_start_month == 1 => {
                        s.format("%Y").to_string()
                    }
                    CalendarUnit::Year => format!("year from {}", s.format("%Y-%m-%d")),
                }
            }
            _ => {
                let (s, e) = (start.to_datetime(), end.to_datetime());
                let midnight =
                    |t: &chrono::DateTime<chrono::Utc>| t.time() == chrono::NaiveTime::MIN;
                if midnight(&s) && midnight(&e) {
                    format!("{}..{}", s.format("%Y-%m-%d"), e.format("%m-%d"))
                } else {
                    format!(
                        "{}..{}",
                        s.format("%Y-%m-%d %H:%M"),
                        e.format("%m-%d %H:%M")
                    )
                }
            }
        }
    }

    pub(super) fn counts_line(&self) -> String {
        let r = &self.received;
        format!(
            "attainment events: {} milestone, {} breached, {} final ({} attained, {} missed, {} no data){}",
            thousands(r.milestones),
            thousands(r.breaches),
            thousands(r.finals),
            thousands(r.attained),
            thousands(r.missed),
            thousands(r.insufficient),
            r.look_ahead_counts()
        )
    }
}

/// The label of an event: its kind, with the milestone or the outcome.
fn label(r: &Attainment, kind: AttainmentKind, outcome: Option<Outcome>) -> String {
    match (kind, outcome) {
        (AttainmentKind::Milestone, _) => match r.milestone {
            Some(m) => format!("milestone {}", percent(m)),
            None => "milestone".to_string(),
        },
        (AttainmentKind::Breached, _) => "breached".to_string(),
        (AttainmentKind::Final, Some(Outcome::InsufficientData)) => "final no-data".to_string(),
        (AttainmentKind::Final, Some(o)) => format!("final {o}"),
        (AttainmentKind::Final, None) => "final".to_string(),
        (AttainmentKind::AtRisk, _) => "at risk".to_string(),
        (AttainmentKind::OnTrack, _) => "on track".to_string(),
    }
}
