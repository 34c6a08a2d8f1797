//! Field references and compiled filters.

use std::borrow::Cow;
use std::fmt;

use crate::model::{SalesEvent, StringField};

/// A field of an event named in a goal: a top-level field or `attributes.KEY`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FieldRef {
    /// `event_id`.
    EventId,
    /// `event_type`.
    EventType,
    /// One of the optional string fields.
    String(StringField),
    /// `amount`.
    Amount,
    /// `attributes.KEY`.
    Attribute(String),
}

/// Names accepted by [`FieldRef::parse`], for error messages.
pub const FIELD_NAMES_HELP: &str = "event_id, event_type, rep_id, team_id, region, account_id, \
opportunity_id, lead_id, product, stage, previous_stage, currency, amount or attributes.KEY";

impl FieldRef {
    /// Parses a field name as written in a goal file.
    pub fn parse(name: &str) -> Option<FieldRef> {
        match name {
            "event_id" => Some(FieldRef::EventId),
            "event_type" => Some(FieldRef::EventType),
            "amount" => Some(FieldRef::Amount),
            _ => {
                if let Some(key) = name.strip_prefix("attributes.") {
                    (!key.is_empty()).then(|| FieldRef::Attribute(key.to_string()))
                } else {
                    StringField::from_name(name).map(FieldRef::String)
                }
            }
        }
    }

    /// Whether this field holds text (everything but `amount`).
    pub fn is_text(&self) -> bool {
        !matches!(self, FieldRef::Amount)
    }

    /// The field's text in an event; `None` when absent or empty. `amount` has no text form here.
    #[inline]
    pub fn text<'e>(&self, ev: &'e SalesEvent) -> Option<&'e str> {
        let v = match self {
            FieldRef::EventId => Some(ev.event_id.as_str()),
            FieldRef::EventType => Some(ev.event_type.as_str()),
            FieldRef::String(f) => ev.string(*f),
            FieldRef::Amount => None,
            FieldRef::Attribute(k) => ev.attribute(k),
        };
        v.filter(|s| !s.is_empty())
    }

    /// The field's value as text, including `amount` in its normalized decimal form.
    pub fn text_or_amount<'e>(&self, ev: &'e SalesEvent) -> Option<Cow<'e, str>> {
        match self {
            FieldRef::Amount => ev.amount.map(|a| Cow::Owned(a.normalize().to_string())),
            other => other.text(ev).map(Cow::Borrowed),
        }
    }
}

impl fmt::Display for FieldRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldRef::EventId => f.write_str("event_id"),
            FieldRef::EventType => f.write_str("event_type"),
            FieldRef::String(s) => f.write_str(s.name()),
            FieldRef::Amount => f.write_str("amount"),
            FieldRef::Attribute(k) => write!(f, "attributes.{k}"),
        }
    }
}

/// A compiled filter: every clause must match; a clause matches when the event's field equals one
/// of its values. The empty filter matches every event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    clauses: Vec<(FieldRef, Vec<String>)>,
}

impl Filter {
    /// A filter from its clauses.
    pub fn new(clauses: Vec<(FieldRef, Vec<String>)>) -> Self {
        Filter { clauses }
    }

    /// The clauses, in file order.
    pub fn clauses(&self) -> &[(FieldRef, Vec<String>)] {
        &self.clauses
    }

    /// Whether there are no clauses.
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    /// Whether the event passes.
    #[inline]
    pub fn matches(&self, ev: &SalesEvent) -> bool {
        self.clauses
            .iter()
            .all(|(field, values)| match field.text(ev) {
                Some(v) => values.iter().any(|x| x == v),
                None => false,
            })
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.clauses.is_empty() {
            return f.write_str("*");
        }
        for (i, (field, values)) in self.clauses.iter().enumerate() {
            if i > 0 {
                f.write_str(" and ")?;
            }
            if values.len() == 1 {
                write!(f, "{field}={}", values[0])?;
            } else {
                write!(f, "{field} in [{}]", values.join(","))?;
            }
        }
        Ok(())
    }
}
