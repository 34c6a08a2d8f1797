//! Progress of long reads (replay of a file, state restore): a bar on a terminal, a line every
//! few seconds otherwise (logs, CI, pipes).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration as StdDuration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::replay::ReplayProgress;

static BARS: AtomicBool = AtomicBool::new(false);

/// Allows progress bars (set by the CLI when stderr is a terminal and logs are not JSON).
pub fn enable_bars(enabled: bool) {
    BARS.store(enabled, Ordering::Relaxed);
}

/// Whether progress bars are allowed.
pub fn bars_enabled() -> bool {
    BARS.load(Ordering::Relaxed)
}

/// What is counted toward the total.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Bytes of input.
    Bytes,
    /// Records.
    Records,
}

enum Mode {
    Bar(ProgressBar),
    Lines {
        every: StdDuration,
        last: Instant,
        sink: Box<dyn FnMut(&str) + Send>,
    },
}

/// Reports progress toward an optional total.
pub struct Reporter {
    label: String,
    total: Option<u64>,
    unit: Unit,
    started: Instant,
    done: u64,
    records: u64,
    mode: Mode,
}

impl Reporter {
    /// A bar on stderr when bars are enabled, else a line through `sink` every `every`.
    pub fn new(
        label: &str,
        total: Option<u64>,
        unit: Unit,
        every: StdDuration,
        sink: Box<dyn FnMut(&str) + Send>,
    ) -> Reporter {
        let mode = if bars_enabled() {
            let bar = match total {
                Some(t) => ProgressBar::new(t),
                None => ProgressBar::new_spinner(),
            };
            bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(10));
            let template = match (total.is_some(), unit) {
                (true, Unit::Bytes) => {
                    "{msg} [{bar:40}] {percent}% {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
                }
                (true, Unit::Records) => {
                    "{msg} [{bar:40}] {percent}% {pos}/{len} records, eta {eta}"
                }
                (false, _) => "{msg} {spinner} {pos} {elapsed}",
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(label.to_string());
            Mode::Bar(bar)
        } else {
            Mode::Lines {
                every,
                last: Instant::now(),
                sink,
            }
        };
        Reporter {
            label: label.to_string(),
            total,
            unit,
            started: Instant::now(),
            done: 0,
            records: 0,
            mode,
        }
    }

    /// Records progress: `done` units of the total, `records` records.
    pub fn set(&mut self, done: u64, records: u64) {
        self.done = done;
        self.records = records;
        match &mut self.mode {
            Mode::Bar(bar) => bar.set_position(if self.total.is_some() { done } else { records }),
            Mode::Lines { every, last, .. } => {
                if last.elapsed() >= *every {
                    *last = Instant::now();
                    let line = self.line();
                    if let Mode::Lines { sink, .. } = &mut self.mode {
                        sink(&line);
                    }
                }
            }
        }
    }

    /// The progress line: label, share of the total, records and rate.
    pub fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let share = match (self.total, self.unit) {
            (Some(t), Unit::Bytes) if t > 0 => format!(
                "{:.0}% ({} of {} MB), ",
                100.0 * self.done.min(t) as f64 / t as f64,
                self.done >> 20,
                t >> 20
            ),
            (Some(t), Unit::Records) if t > 0 => format!(
                "{:.0}% ({} of {t}), ",
                100.0 * self.done.min(t) as f64 / t as f64,
                self.done
            ),
            _ => String::new(),
        };
        format!(
            "{}: {share}{} records, {:.0} records/s",
            self.label,
            self.records,
            self.records as f64 / secs
        )
    }

    /// Ends the report (a bar is cleared).
    pub fn finish(&mut self) {
        if let Mode::Bar(bar) = &self.mode {
            bar.finish_and_clear();
        }
    }
}

impl ReplayProgress for Reporter {
    fn update(&mut self, records: u64, bytes: u64) {
        self.set(bytes, records);
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn without_a_terminal_progress_is_reported_in_lines() {
        enable_bars(false);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let mut r = Reporter::new(
            "replay",
            Some(4 << 20),
            Unit::Bytes,
            StdDuration::ZERO,
            Box::new(move |l| sink.lock().unwrap().push(l.to_string())),
        );
        r.set(1 << 20, 1000);
        r.set(2 << 20, 2000);
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].starts_with("replay: 25% (1 of 4 MB), 1000 records"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].starts_with("replay: 50% (2 of 4 MB), 2000 records"),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn lines_are_spaced_out() {
        enable_bars(false);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let mut r = Reporter::new(
            "restore",
            None,
            Unit::Records,
            StdDuration::from_secs(3600),
            Box::new(move |l| sink.lock().unwrap().push(l.to_string())),
        );
        for i in 0..100 {
            r.set(i, i);
        }
        assert!(lines.lock().unwrap().is_empty());
        assert!(
            r.line().starts_with("restore: 99 records, "),
            "{}",
            r.line()
        );
    }
}
