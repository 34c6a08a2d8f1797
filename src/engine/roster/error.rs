//! Why a roster, or one of its lines or records, was refused.

use std::fmt;

use thiserror::Error;

use super::csv::CsvProblem;
use crate::model::time::TimestampError;
use crate::model::Timestamp;

/// Where a member was read: a line of a roster file or a record of a roster topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RosterPlace {
    /// A line of a file, counted from 1.
    Line(usize),
    /// A record of a compacted topic, by its key (invalid UTF-8 replaced).
    Record(String),
}

impl fmt::Display for RosterPlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RosterPlace::Line(n) => write!(f, "line {n}"),
            RosterPlace::Record(key) => write!(f, "record with key {key:?}"),
        }
    }
}

/// Why a roster, or one of its lines or records, was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RosterError {
    /// The goal has no `group_by` fields, so there is nothing to list members by.
    #[error("a roster needs a goal with `group_by` fields (got none)")]
    NoGroupBy,
    /// The column mapping names a field the goal does not group by.
    #[error("roster column mapping names `{field}`, which is not a group_by field (group_by: {group_by})")]
    UnknownField {
        /// The mapped field.
        field: String,
        /// The goal's `group_by` fields, comma-separated.
        group_by: String,
    },
    /// The column mapping names one field twice.
    #[error("roster column mapping names `{0}` twice: map each group_by field to one column")]
    FieldMappedTwice(String),
    /// A field maps onto `active_from` or `active_until`, which hold the active period.
    #[error("group_by field `{field}` cannot be read from column `{column}`: that column holds the member's active period")]
    PeriodColumnAsField {
        /// The field.
        field: String,
        /// `active_from` or `active_until`.
        column: String,
    },
    /// The CSV text has no rows at all.
    #[error("roster file is empty: its first row must name the columns")]
    NoHeader,
    /// The CSV text breaks RFC 4180.
    #[error("roster {at}: {problem}")]
    Csv {
        /// Where the record starts.
        at: RosterPlace,
        /// What is wrong.
        problem: CsvProblem,
    },
    /// A column the roster reads is missing.
    #[error("roster {at} has no column `{column}` for group_by field `{field}` (columns found: {found})")]
    MissingColumn {
        /// The header line, or the line or record lacking it.
        at: RosterPlace,
        /// The missing column.
        column: String,
        /// The group_by field it maps onto.
        field: String,
        /// The columns present, comma-separated.
        found: String,
    },
    /// A column the roster reads appears twice in the header.
    #[error("roster {at}: column `{column}` appears more than once; name each column once")]
    ColumnTwice {
        /// The header line.
        at: RosterPlace,
        /// The repeated column.
        column: String,
    },
    /// A CSV row has more or fewer fields than the header.
    #[error("roster {at} has {found} field(s), but the header names {expected} column(s)")]
    FieldCount {
        /// The row.
        at: RosterPlace,
        /// Columns in the header.
        expected: usize,
        /// Fields in the row.
        found: usize,
    },
    /// A JSON line or record value is not a JSON object.
    #[error("roster {at} is not a JSON object of column values: {cause}")]
    NotAnObject {
        /// The line or record.
        at: RosterPlace,
        /// What was found instead, or the parse error.
        cause: String,
    },
    /// A JSON column the roster reads holds something other than a string.
    #[error("roster {at}: column `{column}` must be a string, found {found}")]
    NotAString {
        /// The line or record.
        at: RosterPlace,
        /// The column.
        column: String,
        /// The kind of JSON value found.
        found: &'static str,
    },
    /// A group value is empty (or null).
    #[error("roster {at}: column `{column}` is empty; every member needs a non-empty value for each group_by field")]
    EmptyValue {
        /// The line or record.
        at: RosterPlace,
        /// The column.
        column: String,
    },
    /// A group value is longer than events' group values may be.
    #[error("roster {at}: column `{column}` is {len} bytes long, over the limit of {limit} bytes for group values")]
    ValueTooLong {
        /// The line or record.
        at: RosterPlace,
        /// The column.
        column: String,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// `active_from` or `active_until` is not an RFC 3339 timestamp.
    #[error("roster {at}: column `{column}`: {cause}")]
    Timestamp {
        /// The line or record.
        at: RosterPlace,
        /// `active_from` or `active_until`.
        column: String,
        /// Why it could not be read.
        cause: TimestampError,
    },
    /// `active_until` is not after `active_from`.
    #[error("roster {at}: active_until ({until}) must be after active_from ({from})")]
    EmptyPeriod {
        /// The line or record.
        at: RosterPlace,
        /// The start of the period.
        from: Timestamp,
        /// The end of the period.
        until: Timestamp,
    },
    /// A roster topic record has an empty key, so no tombstone could ever remove it.
    #[error("roster record has an empty key: key each record by its member")]
    EmptyKey,
}
