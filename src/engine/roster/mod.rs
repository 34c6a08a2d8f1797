//! Rosters: the groups expected to have a goal's windows, and when each is active. The building
//! block for issue 15's rosters: `runtime::rosters` loads them; the engine does not use them yet.
//!
//! A roster maps each `group_by` field of a goal onto a column (by default the column of the same
//! name). Its members come from a CSV file with a header row ([`Roster::from_csv`]), a JSON lines
//! file ([`Roster::from_json_lines`]) or the records of a compacted topic
//! ([`Roster::apply_record`]). A member may carry `active_from` / `active_until` (RFC 3339): it is
//! active in `[active_from, active_until)` and expected only in windows overlapping that period.
//! Rows are projected onto the goal's `group_by`, so several rows may give one group: it is
//! listed while any row gives it, and expected in a window when any of its rows is active there.

mod csv;
mod error;

use std::collections::BTreeMap;

use serde_json::{Map, Value};

pub use csv::CsvProblem;
pub use error::{RosterError, RosterPlace};

use crate::limits::Limits;
use crate::model::{Timestamp, Window};

/// The column holding the start of a member's active period.
const ACTIVE_FROM: &str = "active_from";
/// The column holding the end (exclusive) of a member's active period.
const ACTIVE_UNTIL: &str = "active_until";

/// One member of a roster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The member's group values, in the goal's `group_by` order.
    pub values: Vec<String>,
    /// First instant of the active period; `None` means active since always.
    pub active_from: Option<Timestamp>,
    /// First instant after the active period; `None` means active for ever.
    pub active_until: Option<Timestamp>,
}

impl Member {
    /// Whether the active period `[active_from, active_until)` overlaps `window`.
    pub fn is_active_in(&self, window: &Window) -> bool {
        self.active_from.is_none_or(|from| from < window.end)
            && self.active_until.is_none_or(|until| until > window.start)
    }
}

/// What [`Roster::apply_record`] did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RecordChange {
    /// The key's member was added.
    Added,
    /// The key's member replaced the one it held before (other values or another period).
    Replaced,
    /// A tombstone removed the key's member.
    Removed,
    /// Nothing changed: the same member again, or a tombstone for an unknown key.
    Unchanged,
}

/// One row of a roster: a file line or a topic record, projected onto the goal's `group_by`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Row {
    member: Member,
    /// The record key that holds this row; `None` for a file line.
    key: Option<Vec<u8>>,
}

/// The groups of one goal's roster, in the order of their values. Several rows (file lines or
/// topic records) may give the same group once projected onto the goal's `group_by`: a goal
/// grouped by `region` over a roster of agents lists each office once, expected in a window when
/// any of its rows is active in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roster {
    /// The goal's `group_by` fields.
    fields: Vec<String>,
    /// The column read for each field, in the same order.
    columns: Vec<String>,
    /// Each group's rows, in the order they were read; never empty.
    groups: BTreeMap<Vec<String>, Vec<Row>>,
    /// For rows read from records: the group values each record key holds.
    keys: BTreeMap<Vec<u8>, Vec<String>>,
}
impl Roster {
    /// An empty roster for a goal grouped by `group_by`, reading field `f` from column `c` for each
    /// `(f, c)` in `columns` and every other field from the column of its own name.
    pub fn new(group_by: &[&str], columns: &[(&str, &str)]) -> Result<Roster, RosterError> {
        if group_by.is_empty() {
            return Err(RosterError::NoGroupBy);
        }
        for (i, (field, _)) in columns.iter().enumerate() {
            if !group_by.contains(field) {
                return Err(RosterError::UnknownField {
                    field: field.to_string(),
                    group_by: group_by.join(", "),
                });
            }
            if columns[..i].iter().any(|(f, _)| f == field) {
                return Err(RosterError::FieldMappedTwice(field.to_string()));
            }
        }
        let column_of = |field: &str| {
            let mapped = columns.iter().find(|(f, _)| *f == field);
            mapped.map_or(field, |(_, c)| c).to_string()
        };
        let mut roster = Roster {
            fields: group_by.iter().map(|f| f.to_string()).collect(),
            columns: group_by.iter().map(|f| column_of(f)).collect(),
            groups: BTreeMap::new(),
            keys: BTreeMap::new(),
        };
        if let Some(i) = roster
            .columns
            .iter()
            .position(|c| c == ACTIVE_FROM || c == ACTIVE_UNTIL)
        {
            return Err(RosterError::PeriodColumnAsField {
                field: roster.fields.swap_remove(i),
                column: roster.columns.swap_remove(i),
            });
        }
        Ok(roster)
    }

    /// Reads a CSV roster (RFC 4180, header row first; see [`Roster::new`] for the arguments).
    /// Columns other than the mapped ones and the period are ignored; empty lines are skipped.
    pub fn from_csv(
        text: &str,
        group_by: &[&str],
        columns: &[(&str, &str)],
    ) -> Result<Roster, RosterError> {
        let mut roster = Roster::new(group_by, columns)?;
        let mut records = csv::Records::new(text);
        let csv_error = |(line, problem)| RosterError::Csv {
            at: RosterPlace::Line(line),
            problem,
        };
        let (header_line, header) = records
            .next()
            .ok_or(RosterError::NoHeader)?
            .map_err(csv_error)?;
        let at = RosterPlace::Line(header_line);
        let index = roster.column_indexes(&at, &header)?;
        for record in records {
            let (line, row) = record.map_err(csv_error)?;
            let at = RosterPlace::Line(line);
            if row.len() != header.len() {
                return Err(RosterError::FieldCount {
                    at,
                    expected: header.len(),
                    found: row.len(),
                });
            }
            let cells = index.iter().map(|i| i.map(|i| row[i].as_ref()));
            let member = roster.member(&at, cells)?;
            roster.insert(member, None);
        }
        Ok(roster)
    }

    /// Reads a JSON lines roster: one object per non-blank line, with a string for each mapped
    /// column and optionally `active_from` / `active_until` (a string or null). Other keys are
    /// ignored; a leading byte order mark is skipped.
    pub fn from_json_lines(
        text: &str,
        group_by: &[&str],
        columns: &[(&str, &str)],
    ) -> Result<Roster, RosterError> {
        let mut roster = Roster::new(group_by, columns)?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = RosterPlace::Line(i + 1);
            let object = parse_object(&at, serde_json::from_str(line))?;
            let member = roster.member_from_object(&at, &object)?;
            roster.insert(member, None);
        }
        Ok(roster)
    }

    /// Applies one record of a compacted roster topic: `value` is a JSON object as in
    /// [`Roster::from_json_lines`] and replaces whatever row `key` held; `None` (a tombstone)
    /// removes the key's row only (its group stays listed while other rows give it). A bad record
    /// is an error and leaves the roster unchanged.
    pub fn apply_record(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<RecordChange, RosterError> {
        if key.is_empty() {
            return Err(RosterError::EmptyKey);
        }
        let Some(value) = value else {
            return Ok(match self.remove_key(key) {
                Some(_) => RecordChange::Removed,
                None => RecordChange::Unchanged,
            });
        };
        let at = RosterPlace::Record(String::from_utf8_lossy(key).into_owned());
        let object = parse_object(&at, serde_json::from_slice(value))?;
        let member = self.member_from_object(&at, &object)?;
        if self.row_of(key) == Some(&member) {
            return Ok(RecordChange::Unchanged);
        }
        let change = match self.remove_key(key) {
            Some(_) => RecordChange::Replaced,
            None => RecordChange::Added,
        };
        self.keys.insert(key.to_vec(), member.values.clone());
        self.insert(member, Some(key.to_vec()));
        Ok(change)
    }

    /// Each group with a row active in `window`, once, in the order of the group values: that
    /// row's member (the first such row read).
    pub fn expected_in(&self, window: &Window) -> impl Iterator<Item = &Member> + '_ {
        let window = *window;
        self.groups.values().filter_map(move |rows| {
            rows.iter()
                .map(|r| &r.member)
                .find(|m| m.is_active_in(&window))
        })
    }

    /// Each group once, in the order of the group values: its first row's member.
    pub fn iter(&self) -> impl Iterator<Item = &Member> + '_ {
        self.groups.values().map(|rows| &rows[0].member)
    }

    /// The first row's member of the group with these values, if it is listed.
    pub fn get(&self, values: &[String]) -> Option<&Member> {
        self.groups.get(values).map(|rows| &rows[0].member)
    }

    /// Whether the group with these values (in `group_by` order) is listed, active or not.
    pub fn contains(&self, group: &[&str]) -> bool {
        let values: Vec<String> = group.iter().map(|v| v.to_string()).collect();
        self.groups.contains_key(&values)
    }

    /// Whether the group with these values is expected in `window`: a row of it is active there.
    pub fn expects(&self, group: &[&str], window: &Window) -> bool {
        let values: Vec<String> = group.iter().map(|v| v.to_string()).collect();
        self.groups
            .get(&values)
            .is_some_and(|rows| rows.iter().any(|r| r.member.is_active_in(window)))
    }

    /// How many distinct groups are listed.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether no group is listed.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// How many rows (file lines and topic records) the roster holds.
    pub fn rows(&self) -> usize {
        self.groups.values().map(Vec::len).sum()
    }

    /// The goal's `group_by` fields, in order.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// For each wanted column (the mapped ones, then the period), its index in `header`.
    fn column_indexes(
        &self,
        at: &RosterPlace,
        header: &[impl AsRef<str>],
    ) -> Result<Vec<Option<usize>>, RosterError> {
        let find = |column: &str| -> Result<Option<usize>, RosterError> {
            let mut hits = header
                .iter()
                .enumerate()
                .filter(|(_, h)| h.as_ref() == column);
            let first = hits.next().map(|(i, _)| i);
            if hits.next().is_some() {
                return Err(RosterError::ColumnTwice {
                    at: at.clone(),
                    column: column.to_string(),
                });
            }
            Ok(first)
        };
        let mut index = Vec::with_capacity(self.columns.len() + 2);
        for (field, column) in self.fields.iter().zip(&self.columns) {
            let i = find(column)?.ok_or_else(|| RosterError::MissingColumn {
                at: at.clone(),
                column: column.clone(),
                field: field.clone(),
                found: header
                    .iter()
                    .map(|h| h.as_ref())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
            index.push(Some(i));
        }
        index.push(find(ACTIVE_FROM)?);
        index.push(find(ACTIVE_UNTIL)?);
        Ok(index)
    }

    /// A member from a JSON object's columns.
    fn member_from_object(
        &self,
        at: &RosterPlace,
        object: &Map<String, Value>,
    ) -> Result<Member, RosterError> {
        let found: Vec<&str> = object.keys().map(String::as_str).collect();
        self.column_indexes(at, &found)?;
        let wanted = self.columns.iter().map(String::as_str);
        let mut cells = Vec::with_capacity(self.columns.len() + 2);
        for column in wanted.chain([ACTIVE_FROM, ACTIVE_UNTIL]) {
            let cell = match object.get(column) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.as_str()),
                Some(other) => {
                    return Err(RosterError::NotAString {
                        at: at.clone(),
                        column: column.to_string(),
                        found: json_kind(other),
                    })
                }
            };
            cells.push(cell);
        }
        self.member(at, cells.into_iter())
    }

    /// A member from its cells: one per mapped column, then `active_from` and `active_until`
    /// (`None` where absent).
    fn member<'c>(
        &self,
        at: &RosterPlace,
        mut cells: impl Iterator<Item = Option<&'c str>>,
    ) -> Result<Member, RosterError> {
        let limit = Limits::DEFAULT.value_bytes;
        let mut values = Vec::with_capacity(self.columns.len());
        for column in &self.columns {
            let value = cells.next().flatten().unwrap_or("");
            if value.is_empty() {
                return Err(RosterError::EmptyValue {
                    at: at.clone(),
                    column: column.clone(),
                });
            }
            if value.len() > limit {
                return Err(RosterError::ValueTooLong {
                    at: at.clone(),
                    column: column.clone(),
                    len: value.len(),
                    limit,
                });
            }
            values.push(value.to_string());
        }
        let active_from = period_bound(at, ACTIVE_FROM, cells.next().flatten())?;
        let active_until = period_bound(at, ACTIVE_UNTIL, cells.next().flatten())?;
        if let (Some(from), Some(until)) = (active_from, active_until) {
            if until <= from {
                return Err(RosterError::EmptyPeriod {
                    at: at.clone(),
                    from,
                    until,
                });
            }
        }
        Ok(Member {
            values,
            active_from,
            active_until,
        })
    }

    /// Adds a row: a file line (`key` `None`) or the record of `key`.
    fn insert(&mut self, member: Member, key: Option<Vec<u8>>) {
        let rows = self.groups.entry(member.values.clone()).or_default();
        rows.push(Row { member, key });
    }

    /// The member of record `key`'s row, if it holds one.
    fn row_of(&self, key: &[u8]) -> Option<&Member> {
        let rows = self.groups.get(self.keys.get(key)?)?;
        let row = rows.iter().find(|r| r.key.as_deref() == Some(key))?;
        Some(&row.member)
    }

    /// Removes the row of record `key`, and its group when no other row gives it; the removed
    /// row's member, if the key held one.
    fn remove_key(&mut self, key: &[u8]) -> Option<Member> {
        let values = self.keys.remove(key)?;
        let rows = self.groups.get_mut(&values)?;
        let i = rows.iter().position(|r| r.key.as_deref() == Some(key))?;
        let row = rows.remove(i);
        if rows.is_empty() {
            self.groups.remove(&values);
        }
        Some(row.member)
    }
}

/// The JSON object of one line or record.
fn parse_object(
    at: &RosterPlace,
    parsed: serde_json::Result<Value>,
) -> Result<Map<String, Value>, RosterError> {
    match parsed {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(RosterError::NotAnObject {
            at: at.clone(),
            cause: format!("found {other}"),
        }),
        Err(e) => Err(RosterError::NotAnObject {
            at: at.clone(),
            cause: e.to_string(),
        }),
    }
}

/// What a non-string JSON value is, for messages.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An optional period bound: absent or empty is `None`.
fn period_bound(
    at: &RosterPlace,
    column: &str,
    cell: Option<&str>,
) -> Result<Option<Timestamp>, RosterError> {
    match cell {
        None | Some("") => Ok(None),
        Some(text) => {
            Timestamp::parse_rfc3339(text)
                .map(Some)
                .map_err(|cause| RosterError::Timestamp {
                    at: at.clone(),
                    column: column.to_string(),
                    cause,
                })
        }
    }
}

#[cfg(test)]
mod tests;
