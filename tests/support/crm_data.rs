//! The CRM sample dataset as goalpost events, shared by the replay and Kafka tests.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeDelta, TimeZone, Utc};

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/crm")
}

/// The rows of a CSV file without quoting (these files have none), checking the header.
pub fn read_csv(name: &str, header: &[&str]) -> Vec<Vec<String>> {
    let path = data_dir().join(name);
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().expect("a header row").split(',').collect();
    assert_eq!(head, header, "{name}: header");
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            assert!(!l.contains('"'), "{name}: quoting is not expected: {l}");
            let cells: Vec<String> = l.split(',').map(str::to_string).collect();
            assert_eq!(cells.len(), header.len(), "{name}: {l}");
            cells
        })
        .collect()
}

pub struct Opportunity {
    pub id: String,
    pub agent: String,
    pub product: String,
    pub account: String,
    pub stage: String,
    pub engage: Option<NaiveDate>,
    pub close: Option<NaiveDate>,
    pub close_value: String,
}

pub struct Team {
    pub manager: String,
    pub office: String,
}

pub fn date(text: &str) -> Option<NaiveDate> {
    (!text.is_empty()).then(|| {
        text.parse()
            .unwrap_or_else(|e| panic!("bad date `{text}`: {e}"))
    })
}

pub fn load() -> (Vec<Opportunity>, HashMap<String, Team>) {
    let opportunities: Vec<Opportunity> = read_csv(
        "sales_pipeline.csv",
        &[
            "opportunity_id",
            "sales_agent",
            "product",
            "account",
            "deal_stage",
            "engage_date",
            "close_date",
            "close_value",
        ],
    )
    .into_iter()
    .map(|c| Opportunity {
        engage: date(&c[5]),
        close: date(&c[6]),
        id: c[0].clone(),
        agent: c[1].clone(),
        product: c[2].clone(),
        account: c[3].clone(),
        stage: c[4].clone(),
        close_value: c[7].clone(),
    })
    .collect();
    let teams = read_csv(
        "sales_teams.csv",
        &["sales_agent", "manager", "regional_office"],
    )
    .into_iter()
    .map(|c| {
        (
            c[0].clone(),
            Team {
                manager: c[1].clone(),
                office: c[2].clone(),
            },
        )
    })
    .collect();
    assert_eq!(opportunities.len(), 8800, "sales_pipeline.csv rows");
    (opportunities, teams)
}

// ---------------------------------------------------------------------------------------------
// Event times.

/// The local hour (at offset -05:00) of every event of an opportunity: 09:00 plus the sum of the
/// id's bytes mod 9, so one day's events spread over 09:00..=17:00 local, 14:00..=22:00 UTC. In
/// Kolkata (+05:30) the later ones fall on the next day; in Berlin in summer, 17:00 is midnight.
pub fn local_hour(opportunity_id: &str) -> u32 {
    9 + opportunity_id.bytes().map(u32::from).sum::<u32>() % 9
}

/// The instant of an event on `date` at `hour` local time, offset -05:00, and its RFC 3339 text.
pub fn event_time(date: NaiveDate, hour: u32) -> (DateTime<Utc>, String) {
    let offset = FixedOffset::west_opt(5 * 3600).expect("valid offset");
    let local = date.and_hms_opt(hour, 0, 0).expect("valid time");
    let at = offset
        .from_local_datetime(&local)
        .single()
        .expect("a fixed offset has no gaps");
    (
        at.with_timezone(&Utc),
        format!("{date}T{hour:02}:00:00-05:00"),
    )
}

// ---------------------------------------------------------------------------------------------
// Events.

pub struct Event {
    pub at: DateTime<Utc>,
    pub id: String,
    pub line: String,
}

/// A JSON object of string fields in the given order, then `amount` as a JSON number (its CSV text).
pub fn json_line(fields: &[(&str, &str)], amount: Option<&str>) -> String {
    let mut out = String::from("{");
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out += &serde_json::to_string(key).unwrap();
        out.push(':');
        out += &serde_json::to_string(value).unwrap();
    }
    if let Some(amount) = amount {
        assert!(
            !amount.is_empty() && amount.bytes().all(|b| b.is_ascii_digit()),
            "close_value `{amount}` is not a whole number"
        );
        out += ",\"amount\":";
        out += amount;
    }
    out.push('}');
    out
}

/// One `opportunity_created` per engaged opportunity and one `deal_won` / `deal_lost` per closed
/// one, sorted by time (then id).
pub fn to_events(opportunities: &[Opportunity], teams: &HashMap<String, Team>) -> Vec<Event> {
    let mut events = Vec::new();
    for o in opportunities {
        let team = teams
            .get(&o.agent)
            .unwrap_or_else(|| panic!("agent `{}` is not in sales_teams.csv", o.agent));
        let hour = local_hour(&o.id);
        let mut push = |suffix: &str, event_type: &str, day: NaiveDate, stage: &str, amount| {
            let (at, occurred_at) = event_time(day, hour);
            let id = format!("{}-{suffix}", o.id);
            let mut fields = vec![
                ("event_id", id.as_str()),
                ("event_type", event_type),
                ("occurred_at", occurred_at.as_str()),
                ("rep_id", o.agent.as_str()),
                ("team_id", team.manager.as_str()),
                ("region", team.office.as_str()),
            ];
            if !o.account.is_empty() {
                fields.push(("account_id", o.account.as_str()));
            }
            fields.extend([
                ("opportunity_id", o.id.as_str()),
                ("product", o.product.as_str()),
                ("stage", stage),
                ("currency", "USD"),
            ]);
            let line = json_line(&fields, amount);
            events.push(Event { at, id, line });
        };
        if let Some(day) = o.engage {
            // The stage right after engagement; the row's deal_stage is where it ended up.
            push("created", "opportunity_created", day, "engaging", None);
        }
        let event_type = match o.stage.as_str() {
            "Won" => "deal_won",
            "Lost" => "deal_lost",
            _ => continue,
        };
        let day = o.close.expect("Won and Lost rows have a close_date");
        let stage = o.stage.to_lowercase();
        // Lost rows carry close_value 0; it is kept as the amount.
        push(
            "closed",
            event_type,
            day,
            &stage,
            Some(o.close_value.as_str()),
        );
    }
    events.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id)));
    events
}

/// How [`disorder`] shuffled the events.
#[derive(Debug, Default)]
pub struct Disorder {
    /// Adjacent pairs swapped.
    pub swaps: usize,
    /// Swaps that put a later event before an earlier one.
    pub inversions: usize,
    /// Inversions whose events fall in different UTC months: the earlier event arrives after
    /// stream time has passed the end of its `agent-monthly-wins` window, so only grace keeps it
    /// from being late.
    pub across_months: usize,
}

/// Swaps every 7th event with the one before it when they are at most a day apart. An event
/// swapped behind a later one arrives when stream time is at most a day past it, so still before
/// its window's end plus the 2-day grace: nothing may be late.
pub fn disorder(events: &mut [Event]) -> Disorder {
    let mut d = Disorder::default();
    for i in (7..events.len()).step_by(7) {
        let (before, after) = (events[i - 1].at, events[i].at);
        if after - before <= TimeDelta::days(1) {
            events.swap(i - 1, i);
            d.swaps += 1;
            if after > before {
                d.inversions += 1;
                if (before.year(), before.month()) != (after.year(), after.month()) {
                    d.across_months += 1;
                }
            }
        }
    }
    d
}

pub const DUPLICATE_EVERY: usize = 97;
pub const DUPLICATE_DELAY: usize = 3;

/// The lines to write: every event, plus an exact copy of every 97th one three positions after
/// it (well within the default 7-day dedupe horizon). Returns (lines, copies).
pub fn with_duplicates(events: &[Event]) -> (Vec<&str>, u64) {
    let mut lines = Vec::with_capacity(events.len() + events.len() / DUPLICATE_EVERY + 1);
    let mut copies = 0;
    for (i, e) in events.iter().enumerate() {
        lines.push(e.line.as_str());
        if i >= DUPLICATE_DELAY && (i - DUPLICATE_DELAY) % DUPLICATE_EVERY == 0 {
            lines.push(events[i - DUPLICATE_DELAY].line.as_str());
            copies += 1;
        }
    }
    (lines, copies)
}
