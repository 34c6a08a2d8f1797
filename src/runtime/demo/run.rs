//! One demo run: the mock cluster, the optional HTTP server, the pipeline and feeder threads,
//! the printer's loop, the drain and the summary.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, Instant};

use rdkafka::consumer::BaseConsumer;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::Producer;

use super::cluster::{create_topics, mock_cluster_owner};
use super::feed::{feed_events, FeedStats};
use super::numbers::thousands;
use super::printer::{printer_consumer, Printer};
use super::{run_config, DemoConfig, DemoError, DemoReport};
use crate::runtime::kafka::{self, RunConfig, RunOptions, RunReport};
use crate::serve::{self, Serving};

/// How often the live summary is written.
const STATUS_EVERY: StdDuration = StdDuration::from_secs(2);
/// How long the printer waits for records per poll.
const PRINTER_POLL: StdDuration = StdDuration::from_millis(100);

/// Runs the demo until `stop` is set or `cfg.duration` has passed: attainment lines go to `out`,
/// live and final summaries to `status`. Returns an error only when the demo could not start.
pub fn run(
    cfg: &DemoConfig,
    stop: Arc<AtomicBool>,
    out: &mut dyn Write,
    status: &mut dyn Write,
) -> Result<DemoReport, DemoError> {
    let started = Instant::now();
    let holder = mock_cluster_owner()?;
    let mock: MockCluster<'_, _> = holder
        .client()
        .mock_cluster()
        .ok_or(DemoError::NoMockCluster)?;
    let bootstrap = mock.bootstrap_servers();
    let run_cfg = run_config(&bootstrap);
    let topics = create_topics(&mock, &run_cfg, cfg.partitions)?;
    announce(cfg, &bootstrap, &topics, status)?;
    let serving = start_http(cfg, &run_cfg, status)?;

    // The printer first, so nothing it should see is missed.
    let consumer = printer_consumer(&bootstrap, &run_cfg.output.topic, cfg.partitions)?;
    let feed = Arc::new(FeedStats::default());
    let threads = Threads::start(cfg, &run_cfg, &bootstrap, serving, &feed)?;
    let mut session = Session {
        cfg,
        started,
        printer: Printer::new(&cfg.goals, cfg.max_lines_per_sec),
        consumer,
        feed,
    };
    // Print until told to stop; a failed write (a closed stdout) also ends it, after the threads.
    let watched = session.watch(&stop, &threads, out, status);

    let (feeder_result, pipeline_result) = threads.stop();
    if let Some(why) = watched? {
        writeln!(status, "demo: {why} early")?;
    }
    if let Err(e) = &feeder_result {
        writeln!(status, "demo: feeder failed: {e}")?;
    }
    session.drain(pipeline_result.as_ref().map(|r| r.attainments).ok(), out)?;
    let Session {
        printer,
        consumer,
        feed,
        ..
    } = session;
    drop(consumer);

    let report = DemoReport {
        fed: feed.delivered.load(Ordering::Relaxed),
        feed_failures: feed.failed.load(Ordering::Relaxed),
        received: printer.received.clone(),
        pipeline: pipeline_result,
        elapsed: started.elapsed(),
    };
    write_summary(&report, &feed, status)?;
    // The clients are gone; the mock cluster goes last.
    drop(mock);
    drop(holder);
    Ok(report)
}

/// Says where the cluster is, what is fed and for how long.
fn announce(
    cfg: &DemoConfig,
    bootstrap: &str,
    topics: &[String],
    status: &mut dyn Write,
) -> io::Result<()> {
    writeln!(
        status,
        "demo: mock Kafka cluster at {bootstrap}; topics {} ({} partitions each)",
        topics.join(", "),
        cfg.partitions
    )?;
    writeln!(
        status,
        "demo: feeding {} events/s (seed {}), {} goal(s); {}",
        cfg.rate,
        cfg.seed,
        cfg.goals.goals.len(),
        match cfg.duration {
            Some(d) => format!("running for {} s", d.as_secs_f64()),
            None => "Ctrl-C to stop".to_string(),
        }
    )?;
    Ok(())
}

/// Starts the dashboard, query API and metrics when `cfg.listen` asks for them.
fn start_http(
    cfg: &DemoConfig,
    run_cfg: &RunConfig,
    status: &mut dyn Write,
) -> Result<Option<Serving>, DemoError> {
    let Some(listen) = cfg.listen else {
        return Ok(None);
    };
    let metrics = serve::install_recorder().ok();
    let telemetry = serve::Telemetry::new(&cfg.goals, &[]);
    let (hub, queries) = serve::Hub::new(cfg.goals.clone(), run_cfg.instance_id(), telemetry);
    let server = serve::http::start(
        hub.clone(),
        serve::ServeOptions {
            listen,
            token: None,
            metrics,
            ..Default::default()
        },
    )
    .map_err(DemoError::Http)?;
    writeln!(
        status,
        "demo: dashboard at http://{}/ (query API under /v1, metrics at /metrics)",
        server.addr
    )?;
    Ok(Some(Serving {
        hub,
        queries,
        advertised_url: None,
    }))
}

/// The pipeline and feeder threads, each with its stop flag.
struct Threads {
    pipeline: JoinHandle<Result<RunReport, String>>,
    pipeline_stop: Arc<AtomicBool>,
    feeder: JoinHandle<Result<(), String>>,
    feeder_stop: Arc<AtomicBool>,
}

impl Threads {
    /// Starts the pipeline, then the feeder; stops the pipeline again if the feeder cannot start.
    fn start(
        cfg: &DemoConfig,
        run_cfg: &RunConfig,
        bootstrap: &str,
        serving: Option<Serving>,
        feed: &Arc<FeedStats>,
    ) -> Result<Threads, DemoError> {
        let pipeline_stop = Arc::new(AtomicBool::new(false));
        let pipeline = {
            let stop = pipeline_stop.clone();
            let goals = cfg.goals.clone();
            let run_cfg = run_cfg.clone();
            std::thread::Builder::new()
                .name("demo-pipeline".into())
                .spawn(move || {
                    let options = RunOptions {
                        skip_changelog_policy_check: true,
                        ..RunOptions::default()
                    };
                    kafka::run(run_cfg, goals, options, stop, serving).map_err(|e| e.to_string())
                })
                .map_err(|cause| DemoError::Spawn {
                    thread: "pipeline",
                    cause,
                })?
        };
        let feeder_stop = Arc::new(AtomicBool::new(false));
        let spawned = {
            let stop = feeder_stop.clone();
            let feed = feed.clone();
            let bootstrap = bootstrap.to_string();
            let (rate, seed) = (cfg.rate, cfg.seed);
            std::thread::Builder::new()
                .name("demo-feeder".into())
                .spawn(move || feed_events(&bootstrap, rate, seed, &stop, &feed))
        };
        match spawned {
            Ok(feeder) => Ok(Threads {
                pipeline,
                pipeline_stop,
                feeder,
                feeder_stop,
            }),
            Err(cause) => {
                pipeline_stop.store(true, Ordering::Relaxed);
                let _ = pipeline.join();
                Err(DemoError::Spawn {
                    thread: "feeder",
                    cause,
                })
            }
        }
    }

    /// Which thread ended on its own, if one did.
    fn finished(&self) -> Option<&'static str> {
        if self.pipeline.is_finished() {
            Some("the pipeline stopped")
        } else if self.feeder.is_finished() {
            Some("the feeder stopped")
        } else {
            None
        }
    }

    /// Stops the feeder, then the pipeline (it commits its last transaction); their results.
    fn stop(self) -> (Result<(), String>, Result<RunReport, String>) {
        self.feeder_stop.store(true, Ordering::Relaxed);
        let feeder = self
            .feeder
            .join()
            .unwrap_or_else(|_| Err("the feeder thread panicked".into()));
        self.pipeline_stop.store(true, Ordering::Relaxed);
        let pipeline = self
            .pipeline
            .join()
            .unwrap_or_else(|_| Err("the pipeline thread panicked".into()));
        (feeder, pipeline)
    }
}

/// What the calling thread watches while the demo runs.
struct Session<'a> {
    cfg: &'a DemoConfig,
    started: Instant,
    printer: Printer<'a>,
    consumer: BaseConsumer,
    feed: Arc<FeedStats>,
}

impl Session<'_> {
    /// Prints attainment lines and the live summary until `stop`, the duration, or a thread's
    /// end; the latter is returned as the reason for stopping early.
    fn watch(
        &mut self,
        stop: &AtomicBool,
        threads: &Threads,
        out: &mut dyn Write,
        status: &mut dyn Write,
    ) -> io::Result<Option<&'static str>> {
        let mut last_status = Instant::now();
        let mut last_fed = 0;
        loop {
            if stop.load(Ordering::Relaxed) {
                writeln!(status, "demo: stopping (signal)")?;
                return Ok(None);
            }
            if self
                .cfg
                .duration
                .is_some_and(|d| self.started.elapsed() >= d)
            {
                return Ok(None);
            }
            if let Some(why) = threads.finished() {
                return Ok(Some(why));
            }
            self.printer.poll(&self.consumer, PRINTER_POLL, out)?;
            if last_status.elapsed() >= STATUS_EVERY {
                let secs = last_status.elapsed().as_secs_f64();
                last_status = Instant::now();
                let fed = self.feed.delivered.load(Ordering::Relaxed);
                self.printer.flush_suppressed(out)?;
                writeln!(
                    status,
                    "[{:>4.0}s] fed {} events ({}/s), event time {}  |  {}",
                    self.started.elapsed().as_secs_f64(),
                    thousands(fed),
                    thousands(((fed - last_fed) as f64 / secs).round() as u64),
                    self.feed.event_date(),
                    self.printer.counts_line()
                )?;
                last_fed = fed;
            }
        }
    }

    /// Prints what is still on its way: until `expected` attainment events have arrived (for up
    /// to 10 s), or for 1 s when the count is unknown.
    fn drain(&mut self, expected: Option<u64>, out: &mut dyn Write) -> io::Result<()> {
        let drain_until =
            Instant::now() + StdDuration::from_secs(if expected.is_some() { 10 } else { 1 });
        while Instant::now() < drain_until
            && expected.is_none_or(|n| self.printer.received.total() < n)
        {
            self.printer.poll(&self.consumer, PRINTER_POLL, out)?;
        }
        self.printer.flush_suppressed(out)?;
        out.flush()?;
        Ok(())
    }
}

fn write_summary(report: &DemoReport, feed: &FeedStats, status: &mut dyn Write) -> io::Result<()> {
    let secs = report.elapsed.as_secs_f64();
    writeln!(status, "demo finished after {secs:.1} s")?;
    let failed = if report.feed_failures > 0 {
        format!(", {} not delivered", thousands(report.feed_failures))
    } else {
        String::new()
    };
    writeln!(
        status,
        "  fed       {} events ({}/s){failed}, event time up to {}",
        thousands(report.fed),
        thousands((report.fed as f64 / secs.max(0.001)).round() as u64),
        feed.event_date()
    )?;
    match &report.pipeline {
        Ok(r) => writeln!(
            status,
            "  pipeline  read {}  accepted {}  duplicates {}  rejected {}  attainment events {}  transactions committed {}  aborted {}",
            thousands(r.counts.read),
            thousands(r.counts.accepted),
            thousands(r.counts.duplicates),
            thousands(r.counts.rejected_total()),
            thousands(r.attainments),
            thousands(r.commits),
            thousands(r.aborts)
        )?,
        Err(e) => writeln!(status, "  pipeline  FAILED: {e}")?,
    }
    let r = &report.received;
    writeln!(
        status,
        "  received  {} attainment events: {} milestone, {} breached, {} final ({} attained, {} missed, {} insufficient data){}{}{}",
        thousands(r.total()),
        thousands(r.milestones),
        thousands(r.breaches),
        thousands(r.finals),
        thousands(r.attained),
        thousands(r.missed),
        thousands(r.insufficient),
        r.look_ahead_counts(),
        if r.not_printed > 0 {
            format!("; {} not printed", thousands(r.not_printed))
        } else {
            String::new()
        },
        if r.unreadable > 0 {
            format!("; {} unreadable", thousands(r.unreadable))
        } else {
            String::new()
        }
    )?;
    Ok(())
}
