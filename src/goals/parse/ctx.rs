//! The parse context: collects problems, and reads TOML values with a problem for a wrong type.

use std::str::FromStr;

use rust_decimal::Decimal;
use toml::{Table, Value};

use super::super::Problem;
use crate::model::money::{decimal_from_config_float, parse_decimal};
use crate::model::Duration;

/// The problems found so far, and the goal that later problems are about.
pub(super) struct Ctx {
    pub(super) problems: Vec<Problem>,
    pub(super) goal: String,
}

impl Ctx {
    pub(super) fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            goal: self.goal.clone(),
            key: key.to_string(),
            message: message.into(),
        });
    }

    pub(super) fn unknown_keys(&mut self, table: &Table, allowed: &[&str], prefix: &str) {
        for key in table.keys() {
            if !allowed.contains(&key.as_str()) {
                self.problem(
                    &format!("{prefix}{key}"),
                    format!("unknown key; allowed keys are: {}", allowed.join(", ")),
                );
            }
        }
    }

    pub(super) fn string<'a>(
        &mut self,
        table: &'a Table,
        key: &str,
        prefix: &str,
    ) -> Option<&'a str> {
        match table.get(key)? {
            Value::String(s) => Some(s.as_str()),
            other => {
                self.problem(
                    &format!("{prefix}{key}"),
                    format!("expected a string, found {}", type_name(other)),
                );
                None
            }
        }
    }

    pub(super) fn duration(&mut self, table: &Table, key: &str, prefix: &str) -> Option<Duration> {
        let text = self.string(table, key, prefix)?;
        match Duration::from_str(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.problem(&format!("{prefix}{key}"), e.to_string());
                None
            }
        }
    }
}

pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

pub(super) fn number(v: &Value) -> Result<Decimal, String> {
    match v {
        Value::Integer(i) => Ok(Decimal::from(*i)),
        Value::Float(f) => decimal_from_config_float(*f).map_err(|e| e.to_string()),
        Value::String(s) => parse_decimal(s).map_err(|e| e.to_string()),
        other => Err(format!("expected a number, found {}", type_name(other))),
    }
}

pub(super) fn value_text(v: &Value) -> String {
    match v {
        Value::Integer(i) => i.to_string(),
        other => type_name(other).to_string(),
    }
}
