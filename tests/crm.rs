//! End-to-end replay of a real dataset.
//!
//! The public "CRM + Sales + Opportunities" sample in `tests/data/crm/` (see its README) is turned
//! into goalpost JSON events, replayed through the `goalpost` binary against a goal file of eight
//! goals (every metric, four time zones, weeks from Sunday, fiscal quarters and years, groups and
//! no group), and every `final` attainment event is checked against values computed here,
//! independently, from the CSV rows with chrono, chrono-tz and rust_decimal: no goalpost code.
//!
//! The event stream is made a little hostile on purpose: events are spread over each local day at
//! offset -05:00, some neighbours are swapped (out of order by up to a day, which the goals' 2-day
//! grace absorbs), and about 1% of the events are sent twice (dedupe must drop the copies).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::Path;
use std::process::Output;
use std::time::Instant;

use chrono::{
    DateTime, Datelike, Days, Months, NaiveDate, NaiveTime, SecondsFormat, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde_json::value::RawValue;

#[allow(dead_code)]
mod support;

use support::bin::goalpost;
use support::crm_data::*;
use support::dirs::TempDir;

// ---------------------------------------------------------------------------------------------
// The goal file, and the same goals described for the independent computation.

const GOALS_TOML: &str = r#"
# Revenue of each regional office per calendar quarter in New York.
[[goals]]
id = "office-quarter-revenue"
metric = "sum"
field = "amount"
filter = { event_type = "deal_won" }
group_by = ["region"]
window = { calendar = "quarter", timezone = "America/New_York" }
target = 400000
milestones = [0.5, 1.0]
grace = "2d"

# Deals won by each agent per UTC month.
[[goals]]
id = "agent-monthly-wins"
metric = "count"
filter = { event_type = "deal_won" }
group_by = ["rep_id"]
window = { calendar = "month", timezone = "UTC" }
target = 10
grace = "2d"

# Win rate of each manager's team per fiscal quarter (fiscal year from April) in India.
[[goals]]
id = "manager-win-rate"
metric = "ratio"
numerator = { event_type = "deal_won" }
denominator = { event_type = ["deal_won", "deal_lost"] }
min_denominator = 20
group_by = ["team_id"]
window = { calendar = "quarter", timezone = "Asia/Kolkata", fiscal_year_start_month = 4 }
target = 0.6
grace = "2d"

# Largest won deal of each product per UTC year.
[[goals]]
id = "product-max-deal-year"
metric = "max"
field = "amount"
filter = { event_type = "deal_won" }
group_by = ["product"]
window = { calendar = "year", timezone = "UTC" }
target = 10000
grace = "2d"

# Distinct customer accounts won by each office per UTC quarter.
[[goals]]
id = "region-accounts-quarter"
metric = "count_distinct"
field = "account_id"
filter = { event_type = "deal_won" }
group_by = ["region"]
window = { calendar = "quarter", timezone = "UTC" }
target = 30
grace = "2d"

# Average won deal, company-wide, per calendar month in New York.
[[goals]]
id = "avg-won-deal-month"
metric = "avg"
field = "amount"
filter = { event_type = "deal_won" }
window = { calendar = "month", timezone = "America/New_York" }
target = 2400
grace = "2d"

# Lost deals per UTC week starting on Sunday: at most 60.
[[goals]]
id = "weekly-losses"
metric = "count"
filter = { event_type = "deal_lost" }
window = { calendar = "week", week_start = "sunday", timezone = "UTC" }
target = 60
direction = "at_most"
grace = "2d"

# Smallest won deal of each office per fiscal year from July in Berlin: at most 40.
[[goals]]
id = "office-min-deal-fy"
metric = "min"
field = "amount"
filter = { event_type = "deal_won" }
group_by = ["region"]
window = { calendar = "year", timezone = "Europe/Berlin", fiscal_year_start_month = 7 }
target = 40
direction = "at_most"
grace = "2d"
"#;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Metric {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    Distinct,
    Ratio,
}

impl Metric {
    /// Whether the value can only grow as events arrive (for these non-negative amounts), so that
    /// milestones and breaches follow from the final value alone.
    fn monotone(self) -> bool {
        matches!(
            self,
            Metric::Count | Metric::Sum | Metric::Max | Metric::Distinct
        )
    }
}

/// Which closed deals a goal reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Picks {
    Won,
    Lost,
    WonOrLost,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GroupBy {
    Nothing,
    Region,
    Rep,
    Team,
    Product,
}

/// Calendar periods; the `u32` is the first month of the fiscal year.
#[derive(Clone, Copy, Debug)]
enum Period {
    Week(Weekday),
    Month,
    Quarter(u32),
    Year(u32),
}

struct Spec {
    id: &'static str,
    metric: Metric,
    picks: Picks,
    group_by: GroupBy,
    tz: Tz,
    period: Period,
    target: &'static str,
    at_most: bool,
    min_denominator: u64,
    milestones: &'static [&'static str],
}

fn specs() -> Vec<Spec> {
    use chrono_tz::{America::New_York, Asia::Kolkata, Europe::Berlin, UTC};
    let spec = |id, metric, picks, group_by, tz, period, target| Spec {
        id,
        metric,
        picks,
        group_by,
        tz,
        period,
        target,
        at_most: false,
        min_denominator: 0,
        milestones: &["1"],
    };
    vec![
        Spec {
            milestones: &["0.5", "1"],
            ..spec(
                "office-quarter-revenue",
                Metric::Sum,
                Picks::Won,
                GroupBy::Region,
                New_York,
                Period::Quarter(1),
                "400000",
            )
        },
        spec(
            "agent-monthly-wins",
            Metric::Count,
            Picks::Won,
            GroupBy::Rep,
            UTC,
            Period::Month,
            "10",
        ),
        Spec {
            min_denominator: 20,
            ..spec(
                "manager-win-rate",
                Metric::Ratio,
                Picks::WonOrLost,
                GroupBy::Team,
                Kolkata,
                Period::Quarter(4),
                "0.6",
            )
        },
        spec(
            "product-max-deal-year",
            Metric::Max,
            Picks::Won,
            GroupBy::Product,
            UTC,
            Period::Year(1),
            "10000",
        ),
        spec(
            "region-accounts-quarter",
            Metric::Distinct,
            Picks::Won,
            GroupBy::Region,
            UTC,
            Period::Quarter(1),
            "30",
        ),
        spec(
            "avg-won-deal-month",
            Metric::Avg,
            Picks::Won,
            GroupBy::Nothing,
            New_York,
            Period::Month,
            "2400",
        ),
        Spec {
            at_most: true,
            milestones: &[],
            ..spec(
                "weekly-losses",
                Metric::Count,
                Picks::Lost,
                GroupBy::Nothing,
                UTC,
                Period::Week(Weekday::Sun),
                "60",
            )
        },
        Spec {
            at_most: true,
            milestones: &[],
            ..spec(
                "office-min-deal-fy",
                Metric::Min,
                Picks::Won,
                GroupBy::Region,
                Berlin,
                Period::Year(7),
                "40",
            )
        },
    ]
}

// ---------------------------------------------------------------------------------------------
// The CSV files.

// ---------------------------------------------------------------------------------------------
// The independent computation.

/// A closed deal, as read from the CSV rows.
struct Deal {
    event_id: String,
    won: bool,
    at: DateTime<Utc>,
    rep: String,
    team: String,
    region: String,
    product: String,
    account: String,
    amount: Decimal,
}

fn deals(opportunities: &[Opportunity], teams: &HashMap<String, Team>) -> Vec<Deal> {
    opportunities
        .iter()
        .filter(|o| o.stage == "Won" || o.stage == "Lost")
        .map(|o| {
            let team = &teams[&o.agent];
            Deal {
                event_id: format!("{}-closed", o.id),
                won: o.stage == "Won",
                at: event_time(o.close.unwrap(), local_hour(&o.id)).0,
                rep: o.agent.clone(),
                team: team.manager.clone(),
                region: team.office.clone(),
                product: o.product.clone(),
                account: o.account.clone(),
                amount: Decimal::from_str_exact(&o.close_value).unwrap(),
            }
        })
        .collect()
}

impl Spec {
    fn picks(&self, d: &Deal) -> bool {
        match self.picks {
            Picks::Won => d.won,
            Picks::Lost => !d.won,
            Picks::WonOrLost => true,
        }
    }

    fn group(&self, d: &Deal) -> Vec<(String, String)> {
        let (key, value) = match self.group_by {
            GroupBy::Nothing => return Vec::new(),
            GroupBy::Region => ("region", &d.region),
            GroupBy::Rep => ("rep_id", &d.rep),
            GroupBy::Team => ("team_id", &d.team),
            GroupBy::Product => ("product", &d.product),
        };
        vec![(key.to_string(), value.clone())]
    }

    /// The calendar period holding `at`: from local midnight of its first day in the goal's zone
    /// to local midnight of the next period's first day.
    fn window(&self, at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let day = at.with_timezone(&self.tz).date_naive();
        let first_of_month = day.with_day(1).unwrap();
        let months_back =
            |fiscal_start: u32, period: u32| (day.month() + 12 - fiscal_start) % period;
        let (first, next) = match self.period {
            Period::Week(start) => {
                let back =
                    (day.weekday().num_days_from_monday() + 7 - start.num_days_from_monday()) % 7;
                let first = day - Days::new(u64::from(back));
                (first, first + Days::new(7))
            }
            Period::Month => (first_of_month, first_of_month + Months::new(1)),
            Period::Quarter(fiscal_start) => {
                let first = first_of_month - Months::new(months_back(fiscal_start, 3));
                (first, first + Months::new(3))
            }
            Period::Year(fiscal_start) => {
                let first = first_of_month - Months::new(months_back(fiscal_start, 12));
                (first, first + Months::new(12))
            }
        };
        let midnight = |d: NaiveDate| {
            self.tz
                .from_local_datetime(&d.and_time(NaiveTime::MIN))
                .single()
                .expect("the zones used here have no DST change at midnight")
                .with_timezone(&Utc)
        };
        (midnight(first), midnight(next))
    }

    fn target(&self) -> Decimal {
        Decimal::from_str_exact(self.target).unwrap()
    }
}

#[derive(Clone, Debug)]
enum Acc {
    Count(u64),
    Sum(Decimal),
    Avg(Decimal, u64),
    Min(Decimal),
    Max(Decimal),
    Distinct(BTreeSet<String>),
    Ratio(u64, u64),
}

impl Acc {
    fn first(metric: Metric, d: &Deal) -> Acc {
        match metric {
            Metric::Count => Acc::Count(1),
            Metric::Sum => Acc::Sum(d.amount),
            Metric::Avg => Acc::Avg(d.amount, 1),
            Metric::Min => Acc::Min(d.amount),
            Metric::Max => Acc::Max(d.amount),
            Metric::Distinct => Acc::Distinct(BTreeSet::from([d.account.clone()])),
            Metric::Ratio => Acc::Ratio(u64::from(d.won), 1),
        }
    }

    fn add(&mut self, d: &Deal) {
        match self {
            Acc::Count(n) => *n += 1,
            Acc::Sum(s) => *s += d.amount,
            Acc::Avg(s, n) => {
                *s += d.amount;
                *n += 1;
            }
            Acc::Min(m) => *m = (*m).min(d.amount),
            Acc::Max(m) => *m = (*m).max(d.amount),
            Acc::Distinct(set) => {
                set.insert(d.account.clone());
            }
            Acc::Ratio(num, den) => {
                *num += u64::from(d.won);
                *den += 1;
            }
        }
    }
}

/// (goal, group, window_start, window_end), the window bounds as RFC 3339 UTC text.
type Key = (String, Vec<(String, String)>, String, String);

struct Expected {
    value: Decimal,
    outcome: &'static str,
    /// Whether the value is a quotient (compared with a relative tolerance).
    quotient: bool,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn expected_finals(specs: &[Spec], deals: &[Deal]) -> BTreeMap<Key, Expected> {
    let mut accs: BTreeMap<Key, Acc> = BTreeMap::new();
    for spec in specs {
        for d in deals.iter().filter(|d| spec.picks(d)) {
            let (start, end) = spec.window(d.at);
            let key = (
                spec.id.to_string(),
                spec.group(d),
                rfc3339(start),
                rfc3339(end),
            );
            accs.entry(key)
                .and_modify(|a| a.add(d))
                .or_insert_with(|| Acc::first(spec.metric, d));
        }
    }
    accs.into_iter()
        .map(|(key, acc)| {
            let spec = specs.iter().find(|s| s.id == key.0).unwrap();
            let target = spec.target();
            // Judged exactly: quotients are compared by cross-multiplying.
            let judge = |good: bool| if good { "attained" } else { "missed" };
            let simple = |v: Decimal| {
                let good = if spec.at_most {
                    v <= target
                } else {
                    v >= target
                };
                (v, judge(good), false)
            };
            let (value, outcome, quotient) = match acc {
                Acc::Count(n) => simple(Decimal::from(n)),
                Acc::Sum(s) | Acc::Min(s) | Acc::Max(s) => simple(s),
                Acc::Distinct(set) => simple(Decimal::from(set.len())),
                Acc::Avg(s, n) => {
                    let n = Decimal::from(n);
                    let good = if spec.at_most {
                        s <= target * n
                    } else {
                        s >= target * n
                    };
                    (s / n, judge(good), true)
                }
                Acc::Ratio(num, den) => {
                    let outcome = if den < spec.min_denominator.max(1) {
                        "insufficient_data"
                    } else {
                        judge(Decimal::from(num) >= target * Decimal::from(den))
                    };
                    (Decimal::from(num) / Decimal::from(den), outcome, true)
                }
            };
            (
                key,
                Expected {
                    value,
                    outcome,
                    quotient,
                },
            )
        })
        .collect()
}

/// |a - b| <= 1e-12 * |b|.
fn close_enough(a: Decimal, b: Decimal) -> bool {
    (a - b).abs() <= b.abs() * Decimal::new(1, 12)
}

// ---------------------------------------------------------------------------------------------
// goalpost's output.

/// One attainment event, with every number read exactly from its JSON text.
#[derive(Debug)]
struct Attainment {
    line: String,
    fields: BTreeSet<String>,
    attainment_id: String,
    goal_id: String,
    kind: String,
    group: Vec<(String, String)>,
    window_start: String,
    window_end: String,
    value: Option<Decimal>,
    target: Decimal,
    progress: Option<Decimal>,
    milestone: Option<Decimal>,
    outcome: Option<String>,
    triggered_by: Option<String>,
    event_time: String,
}

/// A JSON number, exactly: the raw text parsed as a decimal (`None` for `null`).
fn number(raw: &RawValue, line: &str) -> Option<Decimal> {
    let text = raw.get();
    if text == "null" {
        return None;
    }
    let d = if text.contains(['e', 'E']) {
        Decimal::from_scientific(text)
    } else {
        Decimal::from_str_exact(text)
    };
    Some(d.unwrap_or_else(|e| panic!("`{text}` is not an exact decimal ({e}) in {line}")))
}

fn parse_attainment(line: &str) -> Attainment {
    let map: HashMap<String, Box<RawValue>> =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}"));
    let raw = |k: &str| map.get(k).map(|r| &**r);
    let text = |k: &str| {
        raw(k).map(|r| {
            serde_json::from_str::<String>(r.get())
                .unwrap_or_else(|e| panic!("`{k}` is not a string ({e}): {line}"))
        })
    };
    let need = |k: &str| text(k).unwrap_or_else(|| panic!("no `{k}`: {line}"));
    let num = |k: &str| raw(k).and_then(|r| number(r, line));
    let group: BTreeMap<String, String> = serde_json::from_str(
        raw("group")
            .unwrap_or_else(|| panic!("no `group`: {line}"))
            .get(),
    )
    .unwrap_or_else(|e| panic!("`group` is not an object of strings ({e}): {line}"));
    Attainment {
        line: line.to_string(),
        fields: map.keys().cloned().collect(),
        attainment_id: need("attainment_id"),
        goal_id: need("goal_id"),
        kind: need("kind"),
        group: group.into_iter().collect(),
        window_start: need("window_start"),
        window_end: need("window_end"),
        value: num("value"),
        target: num("target").unwrap_or_else(|| panic!("no `target`: {line}")),
        progress: num("progress"),
        milestone: num("milestone"),
        outcome: text("outcome"),
        triggered_by: text("triggered_by"),
        event_time: need("event_time"),
    }
}

/// The counters of the summary goalpost prints on stderr.
#[derive(Debug, Default)]
struct Summary {
    counts: HashMap<String, u64>,
    /// goal id -> (late, skipped)
    goals: BTreeMap<String, (u64, u64)>,
}

/// Reads `word N` pairs from the summary: `read 15166  accepted ...`, `  goal ID: late 0
/// skipped 0`, `windows closed N`, `attainment events: milestone N  breached N  final N`.
fn parse_summary(stderr: &str) -> Summary {
    let mut s = Summary::default();
    for line in stderr.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("goal ") {
            let (goal, rest) = rest
                .split_once(": ")
                .unwrap_or_else(|| panic!("summary line `{line}`"));
            let pairs = word_numbers(rest);
            s.goals
                .insert(goal.to_string(), (pairs["late"], pairs["skipped"]));
        } else {
            s.counts.extend(word_numbers(line));
        }
    }
    s
}

fn word_numbers(text: &str) -> HashMap<String, u64> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .filter_map(|w| Some((w[0].trim_end_matches(':').to_string(), w[1].parse().ok()?)))
        .collect()
}

fn replay(goals: &Path, events: &Path, dead_letters: &Path) -> Output {
    let out = goalpost()
        .arg("replay")
        .arg("--goals")
        .arg(goals)
        .arg("--events")
        .arg(events)
        .arg("--dead-letter")
        .arg(dead_letters)
        .output()
        .expect("run goalpost");
    assert!(
        out.status.success(),
        "goalpost replay failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn show(keys: &[&Key]) -> String {
    keys.iter()
        .take(10)
        .map(|k| format!("\n  {k:?}"))
        .collect::<String>()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn crm_dataset_replay_matches_independent_computation() {
    let started = Instant::now();
    let (opportunities, teams) = load();
    let specs = specs();

    // ---- events file ----
    let mut events = to_events(&opportunities, &teams);
    let shuffled = disorder(&mut events);
    let (lines, copies) = with_duplicates(&events);
    assert!(
        shuffled.inversions > 300 && shuffled.across_months > 0,
        "the disorder should put many events out of order: {shuffled:?}"
    );
    assert!(copies > 100);
    let event_ids: HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(event_ids.len(), events.len(), "event ids are unique");
    let event_at: HashMap<&str, String> = events
        .iter()
        .map(|e| (e.id.as_str(), rfc3339(e.at)))
        .collect();

    let tmp = TempDir::new();
    let goals_path = tmp.join("goals.toml");
    let events_path = tmp.join("events.jsonl");
    let dl_path = tmp.join("dead-letters.jsonl");
    fs::write(&goals_path, GOALS_TOML).unwrap();
    let mut text = lines.join("\n");
    text.push('\n');
    fs::write(&events_path, text).unwrap();

    // ---- replay ----
    let out = replay(&goals_path, &events_path, &dl_path);
    let stdout = String::from_utf8(out.stdout.clone()).expect("UTF-8 output");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let dead = fs::read_to_string(&dl_path).unwrap_or_default();
    assert!(dead.is_empty(), "no dead letters expected, got:\n{dead}");

    // ---- summary ----
    let summary = parse_summary(&stderr);
    let count = |k: &str| {
        *summary
            .counts
            .get(k)
            .unwrap_or_else(|| panic!("no `{k}` in summary:\n{stderr}"))
    };
    assert_eq!(count("read"), lines.len() as u64, "{stderr}");
    assert_eq!(count("accepted"), events.len() as u64, "{stderr}");
    assert_eq!(count("duplicates"), copies, "{stderr}");
    assert_eq!(count("rejected"), 0, "{stderr}");
    assert_eq!(summary.goals.len(), specs.len(), "{stderr}");
    for spec in &specs {
        let (late, skipped) = summary
            .goals
            .get(spec.id)
            .copied()
            .unwrap_or_else(|| panic!("goal {} missing from summary:\n{stderr}", spec.id));
        assert_eq!(late, 0, "goal {}: late events\n{stderr}", spec.id);
        assert_eq!(skipped, 0, "goal {}: skipped events\n{stderr}", spec.id);
    }

    // ---- attainment events ----
    let attainments: Vec<Attainment> = stdout.lines().map(parse_attainment).collect();
    let mut ids = HashSet::new();
    for a in &attainments {
        assert!(
            ids.insert(a.attainment_id.as_str()),
            "attainment_id twice: {}",
            a.line
        );
    }
    let of_kind = |k: &str| attainments.iter().filter(|a| a.kind == k).count() as u64;
    assert_eq!(count("milestone"), of_kind("milestone"), "{stderr}");
    assert_eq!(count("breached"), of_kind("breached"), "{stderr}");
    assert_eq!(count("final"), of_kind("final"), "{stderr}");
    assert_eq!(
        count("closed"),
        of_kind("final"),
        "windows closed\n{stderr}"
    );
    assert_eq!(
        attainments.len() as u64,
        of_kind("milestone") + of_kind("breached") + of_kind("final"),
        "unknown kinds"
    );

    let deals = deals(&opportunities, &teams);
    let deal_by_id: HashMap<&str, &Deal> = deals.iter().map(|d| (d.event_id.as_str(), d)).collect();
    let expected = expected_finals(&specs, &deals);
    let spec_of = |id: &str| {
        specs
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("unknown goal {id}"))
    };
    let key_of = |a: &Attainment| -> Key {
        (
            a.goal_id.clone(),
            a.group.clone(),
            a.window_start.clone(),
            a.window_end.clone(),
        )
    };
    let base_fields = [
        "attainment_id",
        "goal_id",
        "kind",
        "group",
        "window_start",
        "window_end",
        "value",
        "target",
        "progress",
        "event_time",
    ];

    // ---- finals: the same windows, values and outcomes ----
    let mut finals: BTreeMap<Key, &Attainment> = BTreeMap::new();
    let mut mismatches = Vec::new();
    for a in attainments.iter().filter(|a| a.kind == "final") {
        let spec = spec_of(&a.goal_id);
        let mut want: BTreeSet<&str> = base_fields.into();
        want.insert("outcome");
        assert_eq!(
            a.fields.iter().map(String::as_str).collect::<BTreeSet<_>>(),
            want,
            "{}",
            a.line
        );
        assert_eq!(a.target, spec.target(), "{}", a.line);
        assert_eq!(
            a.event_time, a.window_end,
            "a final's event_time is the window end: {}",
            a.line
        );
        assert!(
            finals.insert(key_of(a), a).is_none(),
            "two finals for one window: {}",
            a.line
        );
        let Some(exp) = expected.get(&key_of(a)) else {
            continue;
        };
        let value = a
            .value
            .unwrap_or_else(|| panic!("final without a value: {}", a.line));
        let value_ok = if exp.quotient {
            close_enough(value, exp.value)
        } else {
            value == exp.value
        };
        if !value_ok || a.outcome.as_deref() != Some(exp.outcome) {
            mismatches.push(format!(
                "{}\n    expected value {} outcome {}",
                a.line, exp.value, exp.outcome
            ));
        }
        let progress = a
            .progress
            .unwrap_or_else(|| panic!("no progress: {}", a.line));
        assert!(close_enough(progress, value / a.target), "{}", a.line);
    }
    let missing: Vec<&Key> = expected
        .keys()
        .filter(|k| !finals.contains_key(*k))
        .collect();
    let extra: Vec<&Key> = finals
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "windows differ: {} expected but not reported:{}\n{} reported but not expected:{}",
        missing.len(),
        show(&missing),
        extra.len(),
        show(&extra)
    );
    assert!(
        mismatches.is_empty(),
        "{} finals differ from the independent computation:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );

    // ---- milestones and breaches ----
    let mut reported: BTreeSet<(Key, String)> = BTreeSet::new();
    for a in attainments.iter().filter(|a| a.kind != "final") {
        let spec = spec_of(&a.goal_id);
        let mut want: BTreeSet<&str> = base_fields.into();
        want.insert("triggered_by");
        if a.kind == "milestone" {
            want.insert("milestone");
        }
        assert_eq!(
            a.fields.iter().map(String::as_str).collect::<BTreeSet<_>>(),
            want,
            "{}",
            a.line
        );
        let by = a.triggered_by.as_deref().unwrap();
        assert!(
            event_ids.contains(by),
            "triggered_by is not an event id: {}",
            a.line
        );
        assert_eq!(
            a.event_time, event_at[by],
            "event_time is the triggering event's: {}",
            a.line
        );
        // The triggering event is a deal this goal reads, of this group and window.
        let deal = deal_by_id
            .get(by)
            .unwrap_or_else(|| panic!("triggered by a non-deal event: {}", a.line));
        assert!(spec.picks(deal), "{}", a.line);
        assert_eq!(spec.group(deal), a.group, "{}", a.line);
        let (start, end) = spec.window(deal.at);
        assert_eq!(
            (rfc3339(start), rfc3339(end)),
            (a.window_start.clone(), a.window_end.clone()),
            "{}",
            a.line
        );
        assert!(finals.contains_key(&key_of(a)), "no final for: {}", a.line);
        let value = a.value.unwrap();
        let target = spec.target();
        match a.kind.as_str() {
            "milestone" => {
                assert!(!spec.at_most, "{}", a.line);
                let m = a.milestone.unwrap();
                assert!(
                    spec.milestones
                        .iter()
                        .any(|s| Decimal::from_str_exact(s).unwrap() == m),
                    "{}",
                    a.line
                );
                assert!(value >= m * target, "{}", a.line);
                reported.insert((key_of(a), m.normalize().to_string()));
            }
            "breached" => {
                assert!(spec.at_most, "{}", a.line);
                assert!(value > target, "{}", a.line);
                reported.insert((key_of(a), "breach".to_string()));
            }
            other => panic!("unknown kind {other}: {}", a.line),
        }
    }
    // For values that only grow, milestones and breaches follow from the final value: reported
    // exactly for the thresholds it reached, whatever the arrival order.
    for (key, exp) in &expected {
        let spec = spec_of(&key.0);
        let target = spec.target();
        if spec.at_most {
            let breached = reported.contains(&(key.clone(), "breach".to_string()));
            if spec.metric.monotone() || exp.value > target {
                // (min only falls: above the target at the end means above it from the start)
                assert_eq!(breached, exp.value > target, "breach of {key:?}");
            }
        } else if spec.metric.monotone() {
            for m in spec.milestones {
                let m = Decimal::from_str_exact(m).unwrap();
                let hit = reported.contains(&(key.clone(), m.normalize().to_string()));
                assert_eq!(hit, exp.value >= m * target, "milestone {m} of {key:?}");
            }
        }
    }

    // ---- a second run prints the same bytes ----
    let again = replay(&goals_path, &events_path, &dl_path);
    assert!(
        again.stdout == out.stdout,
        "a second replay printed different output"
    );

    // ---- without grace, the disorder does make events late ----
    let strict_path = tmp.join("goals-no-grace.toml");
    fs::write(
        &strict_path,
        GOALS_TOML.replace("grace = \"2d\"", "grace = \"0s\""),
    )
    .unwrap();
    let strict = replay(&strict_path, &events_path, &dl_path);
    let strict_summary = parse_summary(&String::from_utf8_lossy(&strict.stderr));
    let strict_late: u64 = strict_summary.goals.values().map(|(late, _)| late).sum();
    assert!(
        strict_late > 0,
        "with grace 0s some events should be late: {:?}",
        strict_summary.goals
    );

    // ---- what was covered ----
    eprintln!(
        "{} events ({:?}; late without grace: {strict_late}), {} duplicates, {} lines; \
         {} attainment events ({} milestone, {} breached, {} final); {:.1?}",
        events.len(),
        shuffled,
        copies,
        lines.len(),
        attainments.len(),
        of_kind("milestone"),
        of_kind("breached"),
        of_kind("final"),
        started.elapsed()
    );
    for spec in &specs {
        let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, exp) in expected
            .range(
                (
                    spec.id.to_string(),
                    Vec::new(),
                    String::new(),
                    String::new(),
                )..,
            )
            .take_while(|(k, _)| k.0 == spec.id)
        {
            *outcomes.entry(exp.outcome).or_default() += 1;
        }
        let n: usize = outcomes.values().sum();
        eprintln!("  {}: {n} finals checked {outcomes:?}", spec.id);
        assert!(n > 0, "goal {} has no windows", spec.id);
    }
}
