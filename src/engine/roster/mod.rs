//! Rosters: the members expected to have a goal's windows, and when each is active. The building
//! block for issue 15's rosters; not yet used by the runtimes.
//!
//! A roster maps each `group_by` field of a goal onto a column (by default the column of the same
//! name). Its members come from a CSV file with a header row ([`Roster::from_csv`]), a JSON lines
//! file ([`Roster::from_json_lines`]) or the records of a compacted topic
//! ([`Roster::apply_record`]). A member may carry `active_from` / `active_until` (RFC 3339): it is
//! active in `[active_from, active_until)` and expected only in windows overlapping that period.

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

/// A member and where it was read, for messages about duplicates.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    member: Member,
    origin: RosterPlace,
}

/// The members of one roster, in the order of their values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roster {
    /// The goal's `group_by` fields.
    fields: Vec<String>,
    /// The column read for each field, in the same order.
    columns: Vec<String>,
    members: BTreeMap<Vec<String>, Entry>,
    /// For members read from records: the values each record key holds.
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
            members: BTreeMap::new(),
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
            roster.insert(member, at)?;
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
            roster.insert(member, at)?;
        }
        Ok(roster)
    }

    /// Applies one record of a compacted roster topic: `value` is a JSON object as in
    /// [`Roster::from_json_lines`] and replaces whatever member `key` held; `None` (a tombstone)
    /// removes the key's member. A bad record is an error and leaves the roster unchanged, as does a
    /// record whose member another key (or a file line) already holds.
    pub fn apply_record(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<RecordChange, RosterError> {
        if key.is_empty() {
            return Err(RosterError::EmptyKey);
        }
        let Some(value) = value else {
            return Ok(match self.keys.remove(key) {
                Some(values) => {
                    self.members.remove(&values);
                    RecordChange::Removed
                }
                None => RecordChange::Unchanged,
            });
        };
        let at = RosterPlace::Record(String::from_utf8_lossy(key).into_owned());
        let object = parse_object(&at, serde_json::from_slice(value))?;
        let member = self.member_from_object(&at, &object)?;
        let previous = self.keys.get(key);
        if let Some(entry) = self.members.get(&member.values) {
            if previous != Some(&member.values) {
                return Err(self.duplicate(&entry.origin, at, &member.values));
            }
            if entry.member == member {
                return Ok(RecordChange::Unchanged);
            }
        }
        let change = match self.keys.insert(key.to_vec(), member.values.clone()) {
            Some(old) => {
                self.members.remove(&old);
                RecordChange::Replaced
            }
            None => RecordChange::Added,
        };
        let values = member.values.clone();
        self.members.insert(values, Entry { member, origin: at });
        Ok(change)
    }

    /// The members whose active period overlaps `window`, in the order of their values.
    pub fn expected_in(&self, window: &Window) -> impl Iterator<Item = &Member> + '_ {
        let window = *window;
        self.iter().filter(move |m| m.is_active_in(&window))
    }

    /// Every member, in the order of their values.
    pub fn iter(&self) -> impl Iterator<Item = &Member> + '_ {
        self.members.values().map(|e| &e.member)
    }

    /// The member with these group values, if any.
    pub fn get(&self, values: &[String]) -> Option<&Member> {
        self.members.get(values).map(|e| &e.member)
    }

    /// How many members there are.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
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

    /// Adds a member read from a file, refusing a second one with the same values.
    fn insert(&mut self, member: Member, at: RosterPlace) -> Result<(), RosterError> {
        if let Some(entry) = self.members.get(&member.values) {
            return Err(self.duplicate(&entry.origin, at, &member.values));
        }
        let values = member.values.clone();
        self.members.insert(values, Entry { member, origin: at });
        Ok(())
    }

    /// The error for `values`, held by `first`, read again at `second`.
    fn duplicate(
        &self,
        first: &RosterPlace,
        second: RosterPlace,
        values: &[String],
    ) -> RosterError {
        let member = self
            .fields
            .iter()
            .zip(values)
            .map(|(f, v)| format!("{f} = {v:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        RosterError::DuplicateMember {
            first: first.clone(),
            second,
            member,
        }
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
