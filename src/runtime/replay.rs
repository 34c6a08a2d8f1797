//! `goalpost replay`: the engine over a file or stdin, one input partition, no broker.

use std::fmt;
use std::io::{self, BufRead, Write};
use std::sync::Arc;

use base64::Engine as _;
use thiserror::Error;

use crate::codec::future::FutureBound;
use crate::codec::proto::{Frame, FrameReader};
use crate::codec::{self, json, DecodeError, Format, RejectReason};
use crate::engine::{Pipeline, Roster, Routed};
use crate::goals::GoalSet;
use crate::limits::Limits;
use crate::model::{Attainment, SalesEvent, Timestamp};
use crate::runtime::counts::Counts;

/// Counts of a replay run: the input's [`Counts`] and what the engine made of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Records read, accepted, duplicates and rejected (`read == accepted + duplicates +
    /// rejected`), and per goal late, skipped and overflow.
    pub counts: Counts,
    /// Goal ids, in file order: the order of the per-goal counts.
    pub goals: Vec<String>,
    /// Event ids the dedupe memory forgot before the horizon because of its cap on their number.
    pub dedupe_evicted: u64,
    /// Windows closed.
    pub windows_closed: u64,
    /// Attainment events, by kind, in [`crate::model::AttainmentKind::ALL`] order.
    pub attainments: [u64; crate::model::AttainmentKind::COUNT],
    /// Whether a goal evaluates look-ahead status: only then does the summary count `at_risk`
    /// and `on_track`, so summaries of goal files without `status` stay as they were.
    pub look_ahead: bool,
    /// Per goal, in file order: whether it names a roster. Only those goals' lines show
    /// `unlisted` and `off_roster`, so summaries of goals without a roster stay as they were.
    pub rostered: Vec<bool>,
}

impl Summary {
    /// Zero counts for `goals`.
    pub fn new(goals: &GoalSet) -> Self {
        Summary {
            counts: Counts::new(goals.goals.len()),
            goals: goals.goals.iter().map(|g| g.id.to_string()).collect(),
            look_ahead: goals.goals.iter().any(|g| g.status.is_some()),
            rostered: goals.goals.iter().map(|g| g.roster.is_some()).collect(),
            ..Summary::default()
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        writeln!(
            f,
            "read {}  accepted {}  duplicates {}  rejected {}",
            c.read,
            c.accepted,
            c.duplicates,
            c.rejected_total()
        )?;
        for (reason, n) in c.rejected_by_reason() {
            writeln!(f, "  rejected {reason}: {n}")?;
        }
        for (i, goal) in self.goals.iter().enumerate() {
            let n = |counts: &[u64]| counts.get(i).copied().unwrap_or(0);
            write!(
                f,
                "  goal {goal}: late {}  skipped {}  overflow {}",
                n(&c.late),
                n(&c.skipped),
                n(&c.overflow)
            )?;
            if self.rostered.get(i).copied().unwrap_or(false) {
                write!(
                    f,
                    "  unlisted {}  off_roster {}",
                    n(&c.unlisted),
                    n(&c.off_roster)
                )?;
            }
            writeln!(f)?;
        }
        writeln!(f, "dedupe evicted {}", self.dedupe_evicted)?;
        writeln!(f, "windows closed {}", self.windows_closed)?;
        write!(
            f,
            "attainment events: milestone {}  breached {}  final {}",
            self.attainments[0], self.attainments[1], self.attainments[2]
        )?;
        if self.look_ahead {
            write!(
                f,
                "  at_risk {}  on_track {}",
                self.attainments[3], self.attainments[4]
            )?;
        }
        Ok(())
    }
}

/// Settings of a replay beyond the goal file.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Most event ids the dedupe memory holds (see [`crate::engine::DedupeMemory`]).
    pub dedupe_max_ids: usize,
    /// Events beyond this bound are rejected as `future_timestamp`; `None`: no bound.
    pub future: Option<FutureBound>,
    /// Size limits on records, ids and values.
    pub limits: Limits,
    /// The goals' rosters, indexed by goal (empty: no goal has one).
    pub rosters: Vec<Option<Roster>>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            dedupe_max_ids: crate::engine::DEFAULT_DEDUPE_MAX_IDS,
            future: None,
            limits: Limits::DEFAULT,
            rosters: Vec::new(),
        }
    }
}

/// Why a replay could not run to the end.
#[derive(Debug, Error)]
pub enum ReplayError {
    /// Reading input or writing output failed; the cause is the I/O error (`source()`).
    #[error("I/O error during replay")]
    Io(#[from] io::Error),
}

/// Where rejected records go.
pub trait DeadLetterSink {
    /// Takes one rejected record: its position (line number for JSON, frame number for protobuf),
    /// the reason and the original bytes.
    fn reject(&mut self, position: u64, error: &DecodeError, raw: &[u8]) -> io::Result<()>;
}

/// Writes dead letters as JSON lines:
/// `{"reason","detail","line","raw"}` (or `"raw_base64"` for bytes that are not UTF-8, and
/// `"frame"` instead of `"line"` for protobuf input).
pub struct JsonDeadLetters<W> {
    out: W,
    position_key: &'static str,
    buf: Vec<u8>,
}

impl<W: Write> JsonDeadLetters<W> {
    /// Dead letters for input of `format`.
    pub fn new(out: W, format: Format) -> Self {
        JsonDeadLetters {
            out,
            position_key: match format {
                Format::Json => "line",
                Format::Proto => "frame",
            },
            buf: Vec::new(),
        }
    }

    /// Flushes and returns the writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> DeadLetterSink for JsonDeadLetters<W> {
    fn reject(&mut self, position: u64, error: &DecodeError, raw: &[u8]) -> io::Result<()> {
        let mut record = serde_json::Map::new();
        record.insert("reason".into(), error.reason.as_str().into());
        record.insert("detail".into(), error.detail.clone().into());
        record.insert(self.position_key.into(), position.into());
        match std::str::from_utf8(raw) {
            Ok(text) => record.insert("raw".into(), text.into()),
            Err(_) => record.insert(
                "raw_base64".into(),
                base64::engine::general_purpose::STANDARD.encode(raw).into(),
            ),
        };
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, &record).map_err(io::Error::other)?;
        self.buf.push(b'\n');
        self.out.write_all(&self.buf)
    }
}

/// Writes attainment events as JSON lines.
pub struct JsonLines<W> {
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> JsonLines<W> {
    /// Wraps a writer.
    pub fn new(out: W) -> Self {
        JsonLines {
            out,
            buf: Vec::with_capacity(512),
        }
    }

    /// Writes a batch of attainment events.
    pub fn write_all(&mut self, batch: &[Attainment]) -> io::Result<()> {
        for a in batch {
            self.buf.clear();
            json::encode_attainment(a, &mut self.buf);
            self.buf.push(b'\n');
            self.out.write_all(&self.buf)?;
        }
        Ok(())
    }

    /// Flushes and returns the writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Something told how far a replay has got (a progress bar or periodic log lines).
pub trait ReplayProgress {
    /// Called every few thousand records with the bytes consumed so far.
    fn update(&mut self, records: u64, bytes: u64);
}

impl ReplayProgress for () {
    fn update(&mut self, _: u64, _: u64) {}
}

/// Replays events from `input` through the engine: attainment events to `out`, rejected records to
/// `dead_letters`, every window closed at the end of input. Events beyond `options.future` (if any)
/// are rejected as `future_timestamp`.
pub fn replay<R: BufRead, W: Write>(
    goals: Arc<GoalSet>,
    input: R,
    format: Format,
    options: ReplayOptions,
    out: &mut JsonLines<W>,
    dead_letters: &mut dyn DeadLetterSink,
    progress: &mut dyn ReplayProgress,
) -> Result<Summary, ReplayError> {
    let mut pipeline =
        Pipeline::with_limits(goals.clone(), &options.limits, options.dedupe_max_ids);
    pipeline.set_rosters(options.rosters);
    let mut replay = Replay {
        pipeline,
        future: options.future,
        limits: options.limits,
        summary: Summary::new(&goals),
        ev: SalesEvent::default(),
        batch: Vec::new(),
        bytes_read: 0,
        out,
        dead_letters,
        progress,
    };
    match format {
        Format::Json => replay.json_lines(input)?,
        Format::Proto => replay.proto_frames(input)?,
    }
    Ok(replay.finish()?)
}

/// One replay in progress: the engine, the sinks and the counts so far.
struct Replay<'a, W> {
    pipeline: Pipeline,
    future: Option<FutureBound>,
    limits: Limits,
    summary: Summary,
    /// The decoded event, reused from record to record.
    ev: SalesEvent,
    /// Attainment events of the current record, written out after each record.
    batch: Vec<Attainment>,
    /// Input bytes consumed so far, for progress reports.
    bytes_read: u64,
    out: &'a mut JsonLines<W>,
    dead_letters: &'a mut dyn DeadLetterSink,
    progress: &'a mut dyn ReplayProgress,
}

impl<W: Write> Replay<'_, W> {
    /// Reads JSON lines; blank lines are skipped but still numbered.
    fn json_lines<R: BufRead>(&mut self, mut input: R) -> io::Result<()> {
        let max = self.limits.record_bytes;
        let mut line = Vec::with_capacity(1024);
        let mut line_no: u64 = 0;
        loop {
            line.clear();
            let n = read_line_limited(&mut input, &mut line, max + 2)?;
            if n == 0 {
                return Ok(());
            }
            self.bytes_read += n as u64;
            line_no += 1;
            let body = trim_line(&line);
            if body.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if n > max + 2 {
                let e = DecodeError::new(
                    RejectReason::Oversized,
                    format!("line of {n} bytes exceeds the limit of {max} bytes"),
                );
                self.record(line_no, body, Err(e))?;
            } else {
                self.decode(Format::Json, line_no, body)?;
            }
        }
    }

    /// Reads length-delimited protobuf frames.
    fn proto_frames<R: BufRead>(&mut self, input: R) -> io::Result<()> {
        let max = self.limits.record_bytes;
        let mut frames = FrameReader::new(input, max);
        let mut frame_no: u64 = 0;
        while let Some(frame) = frames.next_frame()? {
            frame_no += 1;
            match frame {
                Frame::Message(body) => {
                    self.bytes_read += body.len() as u64;
                    self.decode(Format::Proto, frame_no, &body)?;
                }
                Frame::Broken(e, raw) => self.record(frame_no, &raw, Err(e))?,
                Frame::Oversized(len) => {
                    let e = DecodeError::new(
                        RejectReason::Oversized,
                        format!("message of {len} bytes exceeds the limit of {max} bytes"),
                    );
                    self.record(frame_no, &[], Err(e))?;
                }
            }
        }
        Ok(())
    }

    /// Decodes one record of `format` into `self.ev` and records the outcome.
    fn decode(&mut self, format: Format, position: u64, body: &[u8]) -> io::Result<()> {
        let decoded = codec::decode_event(format, body, &mut self.ev, &self.limits);
        self.record(position, body, decoded)
    }

    /// Takes one record at `position` (line or frame number): `decoded` says whether `self.ev`
    /// holds its event. Applies the future bound, then rejects it (dead letter) or hands the event
    /// to the engine, and writes the attainment events it caused.
    fn record(
        &mut self,
        position: u64,
        raw: &[u8],
        decoded: Result<(), DecodeError>,
    ) -> io::Result<()> {
        let ev = &self.ev;
        let decoded = decoded.and_then(|()| match self.future.as_mut() {
            Some(bound) => bound.check(ev.occurred_at, Timestamp::now),
            None => Ok(()),
        });
        match decoded {
            Err(e) => {
                self.summary.counts.reject(e.reason);
                self.dead_letters.reject(position, &e, raw)?;
            }
            Ok(()) => {
                let routed = self.pipeline.process(ev, &mut self.batch);
                self.summary.counts.route(routed);
                if let (Routed::Accepted { .. }, Some(bound)) = (routed, self.future.as_mut()) {
                    bound.accepted(ev.occurred_at);
                }
            }
        }
        if !self.batch.is_empty() {
            self.out.write_all(&self.batch)?;
            self.batch.clear();
        }
        let read = self.summary.counts.read;
        if read % 8192 == 0 {
            self.progress.update(read, self.bytes_read);
        }
        Ok(())
    }

    /// Closes every window at the end of input, writes what that caused and returns the counts.
    fn finish(mut self) -> io::Result<Summary> {
        self.pipeline.finish(&mut self.batch);
        self.out.write_all(&self.batch)?;
        let mut summary = self.summary;
        self.progress.update(summary.counts.read, self.bytes_read);

        let owner = self.pipeline.owner().stats();
        summary.counts.add_router(self.pipeline.router().stats());
        summary.counts.add_owner(owner);
        summary.dedupe_evicted = self.pipeline.router().dedupe_evicted();
        summary.windows_closed = owner.windows_closed;
        summary.attainments = owner.attainments;
        let c = &summary.counts;
        debug_assert_eq!(c.read, c.accepted + c.duplicates + c.rejected_total());
        Ok(summary)
    }
}

/// Reads one line (through `\n`) but keeps at most `keep` bytes of it; returns the full length
/// consumed.
fn read_line_limited<R: BufRead>(
    input: &mut R,
    line: &mut Vec<u8>,
    keep: usize,
) -> io::Result<usize> {
    let mut total = 0;
    loop {
        let available = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(total);
        }
        let (chunk, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let room = keep.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len();
        total += used;
        input.consume(used);
        if done {
            return Ok(total);
        }
    }
}

fn trim_line(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &line[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goals::StatusSpec;
    use crate::model::{AttainmentKind, Decimal, Duration};

    fn one_goal() -> GoalSet {
        GoalSet::from_toml(
            "[[goals]]\nid = \"wins\"\nmetric = \"count\"\nfilter = { event_type = \"deal_won\" }\n\
             window = { tumbling = \"1d\" }\ntarget = 4\n",
        )
        .unwrap()
    }

    fn last_line(summary: &Summary) -> String {
        summary.to_string().lines().last().unwrap().to_string()
    }

    #[test]
    fn the_summary_counts_at_risk_and_on_track_only_for_goals_with_status() {
        let mut goals = one_goal();
        let mut summary = Summary::new(&goals);
        assert!(!summary.look_ahead);
        summary.attainments = [1, 2, 3, 0, 0];
        assert_eq!(
            last_line(&summary),
            "attainment events: milestone 1  breached 2  final 3"
        );

        goals.goals[0].status = Some(StatusSpec {
            every: Duration::from_secs(3600),
            tolerance: Decimal::ZERO,
            hold: Duration::ZERO,
        });
        let mut summary = Summary::new(&goals);
        assert!(summary.look_ahead);
        summary.attainments = [1, 2, 3, 4, 5];
        assert_eq!(AttainmentKind::ALL[3], AttainmentKind::AtRisk);
        assert_eq!(AttainmentKind::ALL[4], AttainmentKind::OnTrack);
        assert_eq!(
            last_line(&summary),
            "attainment events: milestone 1  breached 2  final 3  at_risk 4  on_track 5"
        );
    }

    #[test]
    fn the_summary_counts_unlisted_and_off_roster_only_for_goals_with_a_roster() {
        let mut goals = GoalSet::from_toml(
            "[[goals]]\nid = \"wins\"\nmetric = \"count\"\ngroup_by = [\"rep_id\"]\n\
             window = { tumbling = \"1d\" }\ntarget = 4\n\n\
             [[goals]]\nid = \"calls\"\nmetric = \"count\"\n\
             window = { tumbling = \"1d\" }\ntarget = 9\n",
        )
        .unwrap();
        let goal_lines = |summary: &Summary| -> Vec<String> {
            summary
                .to_string()
                .lines()
                .filter(|l| l.starts_with("  goal "))
                .map(str::to_string)
                .collect()
        };
        let mut summary = Summary::new(&goals);
        summary.counts.late = vec![1, 2];
        assert_eq!(
            goal_lines(&summary),
            [
                "  goal wins: late 1  skipped 0  overflow 0",
                "  goal calls: late 2  skipped 0  overflow 0"
            ]
        );

        goals.goals[0].roster = Some(0);
        let mut summary = Summary::new(&goals);
        summary.counts.late = vec![1, 2];
        summary.counts.unlisted = vec![3, 0];
        summary.counts.off_roster = vec![4, 0];
        assert_eq!(
            goal_lines(&summary),
            [
                "  goal wins: late 1  skipped 0  overflow 0  unlisted 3  off_roster 4",
                "  goal calls: late 2  skipped 0  overflow 0"
            ]
        );
    }
}
