//! The sales event: the one input record type every runtime decodes into.

use rust_decimal::Decimal;

use super::time::Timestamp;

/// Well-known values of `event_type`. Any non-empty string is accepted; these are the ones the
/// generator emits and the examples use.
pub const WELL_KNOWN_EVENT_TYPES: &[&str] = &[
    "lead_created",
    "opportunity_created",
    "stage_changed",
    "deal_won",
    "deal_lost",
    "activity_logged",
    "quote_sent",
];

/// A validated sales-process event.
///
/// Decoders fill an existing value in place ([`SalesEvent::clear`] keeps string capacity), so the
/// hot path of a runtime reuses one event buffer instead of allocating per record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SalesEvent {
    /// Unique id of the event; the dedupe key.
    pub event_id: String,
    /// What happened, e.g. `deal_won`.
    pub event_type: String,
    /// When it happened (event time).
    pub occurred_at: Timestamp,
    /// Optional descriptive fields, indexed by [`StringField`]; an empty string is absent.
    /// Plain strings (not `Option`) so decoders can reuse the buffers; prefer
    /// [`SalesEvent::string`] and [`SalesEvent::set_string`].
    pub strings: [String; StringField::COUNT],
    /// Optional exact amount.
    pub amount: Option<Decimal>,
    /// Free-form string attributes, sorted by key, keys unique.
    pub attributes: Vec<(String, String)>,
}

/// The optional string fields of an event, in their canonical order.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StringField {
    /// `rep_id`: the sales rep.
    RepId,
    /// `team_id`: the rep's team.
    TeamId,
    /// `region`: the regional office or territory.
    Region,
    /// `account_id`: the customer account.
    AccountId,
    /// `opportunity_id`.
    OpportunityId,
    /// `lead_id`.
    LeadId,
    /// `product`.
    Product,
    /// `stage`: the pipeline stage after the event.
    Stage,
    /// `previous_stage`: the stage before a `stage_changed`.
    PreviousStage,
    /// `currency` of `amount`, e.g. `USD`.
    Currency,
}

impl StringField {
    /// How many optional string fields there are.
    pub const COUNT: usize = 10;
    /// All of them, in canonical order.
    pub const ALL: [StringField; StringField::COUNT] = [
        StringField::RepId,
        StringField::TeamId,
        StringField::Region,
        StringField::AccountId,
        StringField::OpportunityId,
        StringField::LeadId,
        StringField::Product,
        StringField::Stage,
        StringField::PreviousStage,
        StringField::Currency,
    ];

    /// The JSON field name.
    pub const fn name(self) -> &'static str {
        match self {
            StringField::RepId => "rep_id",
            StringField::TeamId => "team_id",
            StringField::Region => "region",
            StringField::AccountId => "account_id",
            StringField::OpportunityId => "opportunity_id",
            StringField::LeadId => "lead_id",
            StringField::Product => "product",
            StringField::Stage => "stage",
            StringField::PreviousStage => "previous_stage",
            StringField::Currency => "currency",
        }
    }

    /// Looks a field up by its JSON name.
    pub fn from_name(name: &str) -> Option<Self> {
        StringField::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Position in [`SalesEvent::strings`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl SalesEvent {
    /// Resets every field, keeping allocated capacity for reuse.
    pub fn clear(&mut self) {
        self.event_id.clear();
        self.event_type.clear();
        self.occurred_at = Timestamp::from_nanos(0);
        for s in &mut self.strings {
            s.clear();
        }
        self.amount = None;
        self.attributes.clear();
    }

    /// The value of an optional string field; `None` when absent or empty.
    #[inline]
    pub fn string(&self, field: StringField) -> Option<&str> {
        let s = &self.strings[field.index()];
        (!s.is_empty()).then_some(s.as_str())
    }

    /// Sets an optional string field (an empty value makes it absent).
    pub fn set_string(&mut self, field: StringField, value: impl Into<String>) {
        self.strings[field.index()] = value.into();
    }

    /// Sets an optional string field by copying into its existing buffer.
    #[inline]
    pub fn set_string_from(&mut self, field: StringField, value: Option<&str>) {
        let s = &mut self.strings[field.index()];
        s.clear();
        if let Some(v) = value {
            s.push_str(v);
        }
    }

    /// Builder-style setter, convenient in tests and the generator.
    pub fn with(mut self, field: StringField, value: impl Into<String>) -> Self {
        self.set_string(field, value);
        self
    }

    /// The value of an attribute.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| self.attributes[i].1.as_str())
    }

    /// Sets an attribute, keeping the list sorted and keys unique (a later value replaces).
    pub fn set_attribute(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        match self
            .attributes
            .binary_search_by(|(k, _)| k.as_str().cmp(key.as_str()))
        {
            Ok(i) => self.attributes[i].1 = value.into(),
            Err(i) => self.attributes.insert(i, (key, value.into())),
        }
    }
}
