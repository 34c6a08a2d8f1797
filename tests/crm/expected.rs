//! The independent computation: each goal's final values from the CSV rows, with no goalpost code.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{
    DateTime, Datelike, Days, Months, NaiveDate, NaiveTime, SecondsFormat, TimeZone, Utc,
};
use rust_decimal::Decimal;

use crate::goals::*;
use crate::support::crm_data::*;

/// A closed deal, as read from the CSV rows.
pub(crate) struct Deal {
    pub(crate) event_id: String,
    pub(crate) won: bool,
    pub(crate) at: DateTime<Utc>,
    pub(crate) rep: String,
    pub(crate) team: String,
    pub(crate) region: String,
    pub(crate) product: String,
    pub(crate) account: String,
    pub(crate) amount: Decimal,
}

pub(crate) fn deals(opportunities: &[Opportunity], teams: &HashMap<String, Team>) -> Vec<Deal> {
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
    pub(crate) fn picks(&self, d: &Deal) -> bool {
        match self.picks {
            Picks::Won => d.won,
            Picks::Lost => !d.won,
            Picks::WonOrLost => true,
        }
    }

    pub(crate) fn group(&self, d: &Deal) -> Vec<(String, String)> {
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
    pub(crate) fn window(&self, at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
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

    pub(crate) fn target(&self) -> Decimal {
        Decimal::from_str_exact(self.target).unwrap()
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Acc {
    Count(u64),
    Sum(Decimal),
    Avg(Decimal, u64),
    Min(Decimal),
    Max(Decimal),
    Distinct(BTreeSet<String>),
    Ratio(u64, u64),
}

impl Acc {
    pub(crate) fn first(metric: Metric, d: &Deal) -> Acc {
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

    pub(crate) fn add(&mut self, d: &Deal) {
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
pub(crate) type Key = (String, Vec<(String, String)>, String, String);

pub(crate) struct Expected {
    pub(crate) value: Decimal,
    pub(crate) outcome: &'static str,
    /// Whether the value is a quotient (compared with a relative tolerance).
    pub(crate) quotient: bool,
}

pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

pub(crate) fn expected_finals(specs: &[Spec], deals: &[Deal]) -> BTreeMap<Key, Expected> {
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
pub(crate) fn close_enough(a: Decimal, b: Decimal) -> bool {
    (a - b).abs() <= b.abs() * Decimal::new(1, 12)
}
