//! The `goalpost` command line.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use goalpost::codec::future::{FutureBound, FutureFrom, MaxFuture};
use goalpost::codec::{json, proto, Format};
use goalpost::generate::{GenerateConfig, Generator};
use goalpost::goals::GoalSet;
use goalpost::model::Timestamp;
use goalpost::runtime::replay::{self, JsonDeadLetters, JsonLines};
use goalpost::runtime::rosters::{base_dir, load_rosters, RosterSource};
use mimalloc::MiMalloc;

#[path = "cli/check.rs"]
mod check;

/// mimalloc: the fold allocates and frees small strings and batch buffers at a high rate, which
/// glibc's allocator served with lock contention and page faults from trimming (see
/// docs/decisions.md, "Implementation").
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

#[derive(Parser)]
#[command(
    name = "goalpost",
    version,
    about = "Event-sourced KPI stream processor: sales events in, goal attainment out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum FormatArg {
    Json,
    Proto,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Json => Format::Json,
            FormatArg::Proto => Format::Proto,
        }
    }
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum FutureFromArg {
    Wall,
    Stream,
}

impl From<FutureFromArg> for FutureFrom {
    fn from(f: FutureFromArg) -> Self {
        match f {
            FutureFromArg::Wall => FutureFrom::Wall,
            FutureFromArg::Stream => FutureFrom::Stream,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Fold events from a file or stdin into attainment events (JSON lines).
    Replay {
        /// The goal file (TOML).
        #[arg(long)]
        goals: PathBuf,
        /// Input events; `-` or absent for stdin.
        #[arg(long)]
        events: Option<PathBuf>,
        /// Input format: JSON lines, or length-delimited protobuf.
        #[arg(long, value_enum, default_value = "json")]
        format: FormatArg,
        /// Where attainment events go; absent for stdout.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Where rejected records go (JSON lines); absent: to stderr.
        #[arg(long)]
        dead_letter: Option<PathBuf>,
        /// Reject events whose occurred_at lies more than this ahead (as `future_timestamp`): a
        /// duration such as 1h, or `off`.
        #[arg(long, default_value = "1h", value_name = "DURATION|off")]
        max_future: MaxFuture,
        /// What --max-future is measured against: the wall clock, or stream time (the latest
        /// accepted event; the first event against the wall clock), for historical files. With
        /// `stream`, give --max-future too, longer than the longest quiet period of the data.
        #[arg(
            long,
            value_enum,
            default_value = "wall",
            requires_if("stream", "max_future")
        )]
        max_future_from: FutureFromArg,
        /// Most event ids remembered for deduplication; beyond it the oldest are forgotten early
        /// (counted in the summary as `dedupe evicted`).
        #[arg(long, default_value_t = goalpost::engine::DEFAULT_DEDUPE_MAX_IDS,
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
        dedupe_max_ids: usize,
    },
    /// Consume events from Kafka, fold them and publish attainment events, exactly once.
    Run {
        /// The service configuration (TOML); see the README.
        #[arg(long)]
        config: PathBuf,
        /// Process up to the input end offsets seen at start, commit and exit 0.
        #[arg(long)]
        until_caught_up: bool,
        /// With --until-caught-up: then close every window, as replay does at end of input.
        #[arg(long, requires = "until_caught_up")]
        close_all_at_end: bool,
        /// Log as JSON lines instead of human-readable text.
        #[arg(long)]
        log_json: bool,
    },
    /// Deliver attainment events to webhooks and Alertmanager (`[notify]`), at least once.
    Notify {
        /// The service configuration (TOML), the same file as `run`'s; see the README.
        #[arg(long)]
        config: PathBuf,
        /// Log as JSON lines instead of human-readable text.
        #[arg(long)]
        log_json: bool,
    },
    /// Validate a goal file and print its goals; with --config, validate a service configuration
    /// too, print a summary of it (secrets redacted) and check the goal file it names.
    Check {
        /// The goal file (TOML).
        #[arg(long, required_unless_present = "config", conflicts_with = "config")]
        goals: Option<PathBuf>,
        /// A `goalpost run` configuration (TOML): validated and summarised, and its goal file
        /// checked.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Write a deterministic stream of realistic sales events.
    Generate {
        /// Seed of the random sequence.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Number of events.
        #[arg(long, default_value_t = 10_000)]
        events: u64,
        /// Event time of the first event: a date (2000-01-03) or an RFC 3339 timestamp. The
        /// default lies far enough back that a million events end in the past.
        #[arg(long, default_value = "2000-01-03")]
        start: String,
        /// Output format: JSON lines, or length-delimited protobuf.
        #[arg(long, value_enum, default_value = "json")]
        format: FormatArg,
    },
    /// Run the whole service in one process on an in-process mock Kafka cluster, with live output.
    Demo {
        /// Events fed per second.
        #[arg(long, default_value_t = 2000)]
        rate: u64,
        /// Stop after this many seconds; absent: run until Ctrl-C.
        #[arg(long)]
        seconds: Option<u64>,
        /// The goal file (TOML); absent: the example goals.
        #[arg(long)]
        goals: Option<PathBuf>,
        /// Partitions of the input topic.
        #[arg(long, default_value_t = 3)]
        partitions: i32,
        /// Seed of the event generator.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Where the dashboard, query API and metrics are served (loopback only).
        #[arg(long, default_value = goalpost::serve::DEFAULT_LISTEN)]
        listen: std::net::SocketAddr,
        /// Do not serve HTTP.
        #[arg(long)]
        no_http: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay {
            goals,
            events,
            format,
            output,
            dead_letter,
            max_future,
            max_future_from,
            dedupe_max_ids,
        } => cmd_replay(
            &goals,
            events.as_deref(),
            format.into(),
            output.as_deref(),
            dead_letter.as_deref(),
            replay::ReplayOptions {
                dedupe_max_ids,
                future: FutureBound::new(max_future, max_future_from.into()),
                ..replay::ReplayOptions::default()
            },
        ),
        Command::Check { goals, config } => check::cmd_check(goals.as_deref(), config.as_deref()),
        Command::Run {
            config,
            until_caught_up,
            close_all_at_end,
            log_json,
        } => cmd_run(&config, until_caught_up, close_all_at_end, log_json),
        Command::Notify { config, log_json } => cmd_notify(&config, log_json),
        Command::Generate {
            seed,
            events,
            start,
            format,
        } => cmd_generate(seed, events, &start, format.into()),
        Command::Demo {
            rate,
            seconds,
            goals,
            partitions,
            seed,
            listen,
            no_http,
        } => goalpost::runtime::demo::main(goalpost::runtime::demo::DemoArgs {
            rate,
            seconds,
            goals,
            partitions,
            seed,
            listen: (!no_http).then_some(listen),
        })
        .map_err(anyhow::Error::from),
    };
    if let Err(e) = result {
        // A closed stdout (e.g. `| head`) ends the run quietly.
        if e.chain().any(|c| {
            c.downcast_ref::<io::Error>()
                .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
        }) {
            std::process::exit(0);
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn load_goals(path: &Path) -> Result<GoalSet> {
    GoalSet::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}

fn cmd_replay(
    goals_path: &Path,
    events: Option<&Path>,
    format: Format,
    output: Option<&Path>,
    dead_letter: Option<&Path>,
    mut options: replay::ReplayOptions,
) -> Result<()> {
    let goals = Arc::new(load_goals(goals_path)?);
    options.rosters = load_rosters(&goals, base_dir(goals_path), RosterSource::Replay)?;
    let total = match events {
        Some(p) if p != Path::new("-") => std::fs::metadata(p).ok().map(|m| m.len()),
        _ => None,
    };
    let input: Box<dyn BufRead> = match events {
        None => Box::new(BufReader::with_capacity(1 << 16, io::stdin().lock())),
        Some(p) if p == Path::new("-") => {
            Box::new(BufReader::with_capacity(1 << 16, io::stdin().lock()))
        }
        Some(p) => Box::new(BufReader::with_capacity(
            1 << 16,
            File::open(p).with_context(|| format!("cannot open events file `{}`", p.display()))?,
        )),
    };
    let out: Box<dyn Write> = match output {
        None => Box::new(BufWriter::with_capacity(1 << 16, io::stdout().lock())),
        Some(p) => {
            Box::new(BufWriter::new(File::create(p).with_context(|| {
                format!("cannot create output file `{}`", p.display())
            })?))
        }
    };
    let dl: Box<dyn Write> = match dead_letter {
        None => Box::new(io::stderr()),
        Some(p) => Box::new(BufWriter::new(File::create(p).with_context(|| {
            format!("cannot create dead-letter file `{}`", p.display())
        })?)),
    };
    let mut out = JsonLines::new(out);
    let mut dead_letters = JsonDeadLetters::new(dl, format);
    goalpost::runtime::progress::enable_bars(io::stderr().is_terminal());
    let mut progress = goalpost::runtime::progress::Reporter::new(
        "replay",
        total,
        goalpost::runtime::progress::Unit::Bytes,
        std::time::Duration::from_secs(5),
        Box::new(|line| eprintln!("{line}")),
    );
    let summary = replay::replay(
        goals,
        input,
        format,
        options,
        &mut out,
        &mut dead_letters,
        &mut progress,
    )?;
    progress.finish();
    out.into_inner()?;
    dead_letters.into_inner()?;
    eprintln!("{summary}");
    Ok(())
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(io::stderr().is_terminal())
        .with_writer(io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn cmd_run(
    config: &Path,
    until_caught_up: bool,
    close_all_at_end: bool,
    log_json: bool,
) -> Result<()> {
    use goalpost::runtime::kafka::{self, RunConfig, RunOptions};
    init_logging(log_json);
    goalpost::runtime::progress::enable_bars(io::stderr().is_terminal() && !log_json);
    let cfg = RunConfig::load(config)?;
    let goals = Arc::new(load_goals(&cfg.goals)?);
    cfg.check_goals(&goals, config)?;
    let shutdown = kafka::shutdown_flag().context("cannot install signal handlers")?;
    let metrics = if cfg.http.enabled {
        Some(goalpost::serve::install_recorder()?)
    } else {
        None
    };
    let serving = goalpost::serve::start_for_run(&cfg.serve_instance(), goals.clone(), metrics)?
        .map(|(serving, _server)| serving);
    let report = kafka::run(
        cfg,
        goals,
        RunOptions {
            until_caught_up,
            close_all_at_end,
            skip_changelog_policy_check: false,
        },
        shutdown,
        serving,
    )?;
    eprintln!(
        "read {}  accepted {}  duplicates {}  rejected {}  attainment events {}  transactions committed {}  aborted {}  local contributions {}  overflow {}  dedupe evicted {}",
        report.counts.read, report.counts.accepted, report.counts.duplicates, report.counts.rejected_total(), report.attainments, report.commits, report.aborts, report.local_contributions, report.counts.overflow_total(), report.dedupe_evicted
    );
    if report.internal_skipped > 0 {
        eprintln!(
            "{} record(s) of the repartition or changelog topic could not be read: skipped and dead-lettered",
            report.internal_skipped
        );
    }
    if report.producers_recreated > 0 {
        eprintln!(
            "the transactional producer was recreated {} time(s) after failing during a broker disruption",
            report.producers_recreated
        );
    }
    Ok(())
}

fn cmd_notify(config: &Path, log_json: bool) -> Result<()> {
    use goalpost::runtime::kafka::{self, RunConfig};
    init_logging(log_json);
    let cfg = RunConfig::load(config)?;
    let shutdown = kafka::shutdown_flag().context("cannot install signal handlers")?;
    let report = goalpost::runtime::notify::run(cfg, shutdown)?;
    eprintln!(
        "read {}  unreadable {}  dead letters {}  commits {}",
        report.read, report.unreadable, report.dead_letters, report.commits
    );
    Ok(())
}

fn parse_start(text: &str) -> Result<Timestamp> {
    if let Ok(t) = Timestamp::parse_rfc3339(text) {
        return Ok(t);
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let dt = d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
        if let Some(t) = Timestamp::from_datetime(&dt) {
            return Ok(t);
        }
    }
    bail!("--start `{text}` is not a date (2026-01-05) or an RFC 3339 timestamp (2026-01-05T09:00:00Z)")
}

fn cmd_generate(seed: u64, events: u64, start: &str, format: Format) -> Result<()> {
    let start = parse_start(start)?;
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut buf = Vec::with_capacity(1024);
    let mut body = Vec::with_capacity(1024);
    if format == Format::Json && io::stdout().is_terminal() && events > 1000 {
        eprintln!("hint: pipe this into `goalpost replay --goals FILE`");
    }
    for ev in Generator::new(GenerateConfig {
        seed,
        events,
        start,
    }) {
        buf.clear();
        match format {
            Format::Json => {
                json::encode_event(&ev, &mut buf);
                buf.push(b'\n');
            }
            Format::Proto => {
                body.clear();
                proto::encode_event(&ev, &mut body);
                proto::write_length_prefix(body.len(), &mut buf);
                buf.extend_from_slice(&body);
            }
        }
        out.write_all(&buf)?;
    }
    out.flush()?;
    Ok(())
}
