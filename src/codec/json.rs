//! JSON events and attainment events.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use smallvec::SmallVec;

use super::{DecodeError, RejectReason};

mod fast;
mod progress;

use crate::model::money::parse_amount;
use crate::model::{Attainment, Decimal, SalesEvent, StringField, Timestamp};
pub use progress::encode_progress;

/// A string that borrows from the input when it has no escapes.
#[derive(Debug, PartialEq)]
pub(super) struct Text<'a>(pub(super) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// `attributes`: an object of string values.
pub(super) struct Attributes<'a>(pub(super) Vec<(Text<'a>, Text<'a>)>);

impl<'de: 'a, 'a> Deserialize<'de> for Attributes<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Attributes<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<Text<'a>>()? {
                    let v = map.next_value::<Text<'a>>()?;
                    out.push((k, v));
                }
                Ok(Attributes(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(borrow, default)]
    event_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    event_type: Option<Text<'a>>,
    #[serde(borrow, default)]
    occurred_at: Option<Text<'a>>,
    #[serde(borrow, default)]
    rep_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    team_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    region: Option<Text<'a>>,
    #[serde(borrow, default)]
    account_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    opportunity_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    lead_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    product: Option<Text<'a>>,
    #[serde(borrow, default)]
    stage: Option<Text<'a>>,
    #[serde(borrow, default)]
    previous_stage: Option<Text<'a>>,
    #[serde(borrow, default)]
    currency: Option<Text<'a>>,
    #[serde(borrow, default)]
    amount: Option<&'a RawValue>,
    #[serde(borrow, default)]
    attributes: Option<Attributes<'a>>,
}

fn required<'a>(v: Option<Text<'a>>, name: &str) -> Result<Cow<'a, str>, DecodeError> {
    match v {
        None => Err(DecodeError::new(
            RejectReason::MissingField,
            format!("required field `{name}` is missing (or null)"),
        )),
        Some(Text(s)) if s.is_empty() => Err(DecodeError::new(
            RejectReason::EmptyField,
            format!("required field `{name}` is an empty string"),
        )),
        Some(Text(s)) => Ok(s),
    }
}

/// The values of an event's fields as they stand in the text, before validation: what both the
/// fast scanner and serde_json produce, so validation (and every error it reports) is shared.
#[derive(Debug, Default, PartialEq)]
struct Fields<'a> {
    event_id: Option<Text<'a>>,
    event_type: Option<Text<'a>>,
    occurred_at: Option<Text<'a>>,
    /// Indexed by [`StringField`].
    strings: [Option<Text<'a>>; StringField::COUNT],
    /// The JSON text of `amount` (a number, or a string with its quotes).
    amount: Option<&'a str>,
    /// Inline up to four (no allocation per event).
    attributes: SmallVec<[(Text<'a>, Text<'a>); 4]>,
}

impl<'a> From<RawEvent<'a>> for Fields<'a> {
    fn from(raw: RawEvent<'a>) -> Self {
        Fields {
            event_id: raw.event_id,
            event_type: raw.event_type,
            occurred_at: raw.occurred_at,
            strings: [
                raw.rep_id,
                raw.team_id,
                raw.region,
                raw.account_id,
                raw.opportunity_id,
                raw.lead_id,
                raw.product,
                raw.stage,
                raw.previous_stage,
                raw.currency,
            ],
            amount: raw.amount.map(RawValue::get),
            attributes: raw
                .attributes
                .map(|a| SmallVec::from_vec(a.0))
                .unwrap_or_default(),
        }
    }
}

/// Decodes one JSON event into `ev`, replacing every field (string buffers are reused). Unknown
/// top-level fields are ignored.
///
/// Records in the common shape (flat fields, strings without escapes, numbers, an `attributes`
/// object of strings) are scanned by hand; anything else, and every record the scanner is unsure
/// of, goes through serde_json. Both give the same fields, which are validated by one function,
/// so the outcome and its errors do not depend on the path.
pub fn decode_event(bytes: &[u8], ev: &mut SalesEvent) -> Result<(), DecodeError> {
    // Validating UTF-8 once for the whole record is cheaper than per string.
    let text = std::str::from_utf8(bytes)
        .map_err(|e| DecodeError::new(RejectReason::InvalidJson, format!("not UTF-8: {e}")))?;
    let fields = match fast::scan(text) {
        Some(fields) => fields,
        None => decode_with_serde(text)?,
    };
    fill(fields, ev)
}

/// The serde_json path: every JSON the scanner leaves, and the source of syntax errors.
fn decode_with_serde(text: &str) -> Result<Fields<'_>, DecodeError> {
    let raw: RawEvent<'_> = serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            DecodeError::new(RejectReason::WrongType, wrong_type_detail(text, e))
        }
        _ => DecodeError::new(RejectReason::InvalidJson, e.to_string()),
    })?;
    Ok(raw.into())
}

/// A wrong type's message, prefixed with the field that has it (`event_id: invalid type: ...`).
/// serde_json names the position only, so the record is read again, tracking the path; that costs
/// a second parse, on rejected records only.
fn wrong_type_detail(text: &str, e: serde_json::Error) -> String {
    if !text.trim_start().starts_with('{') {
        return format!("a record must be a JSON object: {e}");
    }
    let mut de = serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, RawEvent<'_>>(&mut de) {
        Err(with_path) if with_path.path().iter().next().is_some() => {
            format!("{}: {}", with_path.path(), with_path.inner())
        }
        _ => e.to_string(),
    }
}

/// Validates `fields` and writes them into `ev`.
fn fill(fields: Fields<'_>, ev: &mut SalesEvent) -> Result<(), DecodeError> {
    let event_id = required(fields.event_id, "event_id")?;
    let event_type = required(fields.event_type, "event_type")?;
    let occurred_at = required(fields.occurred_at, "occurred_at")?;
    let occurred_at = Timestamp::parse_rfc3339(&occurred_at).map_err(|e| {
        DecodeError::new(RejectReason::InvalidTimestamp, format!("occurred_at: {e}"))
    })?;
    let amount = match fields.amount {
        None => None,
        Some(r) => Some(amount_from_raw(r)?),
    };

    ev.event_id.clear();
    ev.event_id.push_str(&event_id);
    ev.event_type.clear();
    ev.event_type.push_str(&event_type);
    ev.occurred_at = occurred_at;
    ev.amount = amount;
    for (field, value) in StringField::ALL.into_iter().zip(&fields.strings) {
        ev.set_string_from(field, value.as_ref().map(|t| &*t.0));
    }
    let attrs = fields.attributes;
    // Reuse the attribute buffers of the previous event.
    ev.attributes.truncate(attrs.len());
    for (i, (k, v)) in attrs.iter().enumerate() {
        match ev.attributes.get_mut(i) {
            Some((bk, bv)) => {
                bk.clear();
                bk.push_str(&k.0);
                bv.clear();
                bv.push_str(&v.0);
            }
            None => ev.attributes.push((k.0.to_string(), v.0.to_string())),
        }
    }
    if ev.attributes.len() > 1 {
        // Sorted by key, unique; on repeated keys the last value wins.
        ev.attributes.reverse();
        ev.attributes.sort_by(|a, b| a.0.cmp(&b.0));
        ev.attributes.dedup_by(|a, b| a.0 == b.0);
    }
    Ok(())
}

fn amount_from_raw(text: &str) -> Result<Decimal, DecodeError> {
    let inner: Cow<'_, str> = if text.starts_with('"') {
        match serde_json::from_str::<Text<'_>>(text) {
            Ok(t) => t.0,
            Err(_) => Cow::Borrowed(text),
        }
    } else {
        Cow::Borrowed(text)
    };
    parse_amount(&inner)
        .map_err(|e| DecodeError::new(RejectReason::InvalidAmount, format!("amount: {e}")))
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn push_key(out: &mut Vec<u8>, first: &mut bool, key: &str) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    push_str(out, key);
    out.push(b':');
}

fn push_decimal(out: &mut Vec<u8>, d: Option<Decimal>) {
    match d {
        Some(d) => out.extend_from_slice(d.normalize().to_string().as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends one attainment event as a JSON object (no newline). Decimals are JSON numbers written
/// exactly (no exponent, no binary rounding); fields that do not apply to the kind are omitted.
/// `expected`, `projected` and `tick` (look-ahead status only) come last.
pub fn encode_attainment(a: &Attainment, out: &mut Vec<u8>) {
    let mut first = true;
    out.push(b'{');
    push_key(out, &mut first, "attainment_id");
    push_str(out, &a.attainment_id);
    push_key(out, &mut first, "goal_id");
    push_str(out, &a.goal_id);
    push_key(out, &mut first, "kind");
    push_str(out, a.kind.as_str());
    push_key(out, &mut first, "group");
    out.push(b'{');
    let mut gfirst = true;
    for (k, v) in &a.group {
        push_key(out, &mut gfirst, k);
        push_str(out, v);
    }
    out.push(b'}');
    push_key(out, &mut first, "window_start");
    push_str(out, &a.window.start.to_rfc3339());
    push_key(out, &mut first, "window_end");
    push_str(out, &a.window.end.to_rfc3339());
    push_key(out, &mut first, "value");
    push_decimal(out, a.value);
    push_key(out, &mut first, "target");
    push_decimal(out, Some(a.target));
    push_key(out, &mut first, "progress");
    push_decimal(out, a.progress);
    if let Some(m) = a.milestone {
        push_key(out, &mut first, "milestone");
        push_decimal(out, Some(m));
    }
    if let Some(o) = a.outcome {
        push_key(out, &mut first, "outcome");
        push_str(out, o.as_str());
    }
    if let Some(t) = &a.triggered_by {
        push_key(out, &mut first, "triggered_by");
        push_str(out, t);
    }
    push_key(out, &mut first, "event_time");
    push_str(out, &a.event_time.to_rfc3339());
    push_look_ahead(out, &mut first, a);
    out.push(b'}');
}

/// The fields of `at_risk` and `on_track` events, after every other field and only when set, so
/// the events of goals without `status` keep their exact bytes.
fn push_look_ahead(out: &mut Vec<u8>, first: &mut bool, a: &Attainment) {
    if let Some(e) = a.expected {
        push_key(out, first, "expected");
        push_decimal(out, Some(e));
    }
    if let Some(p) = a.projected {
        push_key(out, first, "projected");
        push_decimal(out, Some(p));
    }
    if let Some(t) = a.tick {
        push_key(out, first, "tick");
        push_str(out, &t.to_rfc3339());
    }
}

/// Appends one event as a JSON object (no newline). `amount` is written as a JSON number with its
/// scale kept (`4514.00`).
pub fn encode_event(ev: &SalesEvent, out: &mut Vec<u8>) {
    let mut first = true;
    out.push(b'{');
    push_key(out, &mut first, "event_id");
    push_str(out, &ev.event_id);
    push_key(out, &mut first, "event_type");
    push_str(out, &ev.event_type);
    push_key(out, &mut first, "occurred_at");
    push_str(out, &ev.occurred_at.to_rfc3339());
    for f in StringField::ALL {
        if let Some(v) = ev.string(f) {
            push_key(out, &mut first, f.name());
            push_str(out, v);
        }
    }
    if let Some(a) = ev.amount {
        push_key(out, &mut first, "amount");
        out.extend_from_slice(a.to_string().as_bytes());
    }
    if !ev.attributes.is_empty() {
        push_key(out, &mut first, "attributes");
        out.push(b'{');
        let mut afirst = true;
        for (k, v) in &ev.attributes {
            push_key(out, &mut afirst, k);
            push_str(out, v);
        }
        out.push(b'}');
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(s: &str) -> Result<SalesEvent, DecodeError> {
        let mut ev = SalesEvent::default();
        decode_event(s.as_bytes(), &mut ev).map(|_| ev)
    }

    #[test]
    fn decodes_a_full_event_exactly() {
        let ev = decode(
            r#"{"event_id":"e1","event_type":"deal_won","occurred_at":"2017-03-01T09:00:00-05:00",
               "rep_id":"Moses Frase","region":"Central","amount":1054.10,"extra":{"ignored":[1,2]},
               "attributes":{"segment":"smb","a\"b":"x\ny"}}"#,
        )
        .unwrap();
        assert_eq!(ev.event_id, "e1");
        assert_eq!(ev.occurred_at.to_rfc3339(), "2017-03-01T14:00:00Z");
        assert_eq!(ev.string(StringField::RepId), Some("Moses Frase"));
        assert_eq!(ev.amount.unwrap().to_string(), "1054.10");
        assert_eq!(ev.attribute("segment"), Some("smb"));
        assert_eq!(ev.attribute("a\"b"), Some("x\ny"));
        assert_eq!(ev.string(StringField::TeamId), None);
    }

    #[test]
    fn amounts_as_strings_and_big_numbers_stay_exact() {
        let ev = decode(r#"{"event_id":"e","event_type":"t","occurred_at":"2017-01-01T00:00:00Z","amount":"0.1"}"#).unwrap();
        assert_eq!(ev.amount.unwrap().to_string(), "0.1");
        let ev = decode(r#"{"event_id":"e","event_type":"t","occurred_at":"2017-01-01T00:00:00Z","amount":123456789012345678.12}"#).unwrap();
        assert_eq!(ev.amount.unwrap().to_string(), "123456789012345678.12");
    }

    #[test]
    fn rejections_have_reasons() {
        let cases = [
            ("not json", RejectReason::InvalidJson),
            (r#"{"event_id":"e","#, RejectReason::InvalidJson),
            ("[1,2]", RejectReason::WrongType),
            (
                r#"{"event_type":"t","occurred_at":"2017-01-01T00:00:00Z"}"#,
                RejectReason::MissingField,
            ),
            (
                r#"{"event_id":"","event_type":"t","occurred_at":"2017-01-01T00:00:00Z"}"#,
                RejectReason::EmptyField,
            ),
            (
                r#"{"event_id":5,"event_type":"t","occurred_at":"2017-01-01T00:00:00Z"}"#,
                RejectReason::WrongType,
            ),
            (
                r#"{"event_id":"e","event_type":"t","occurred_at":"2017-01-01T00:00:00"}"#,
                RejectReason::InvalidTimestamp,
            ),
            (
                r#"{"event_id":"e","event_type":"t","occurred_at":"2017-01-01T00:00:00Z","amount":"abc"}"#,
                RejectReason::InvalidAmount,
            ),
            (
                r#"{"event_id":"e","event_type":"t","occurred_at":"2017-01-01T00:00:00Z","amount":true}"#,
                RejectReason::InvalidAmount,
            ),
            (
                r#"{"event_id":"e","event_type":"t","occurred_at":"2017-01-01T00:00:00Z","amount":1e999}"#,
                RejectReason::InvalidAmount,
            ),
            (
                r#"{"event_id":"e","event_type":"t","occurred_at":"2017-01-01T00:00:00Z","attributes":{"k":1}}"#,
                RejectReason::WrongType,
            ),
            (
                r#"{"event_id":"e","event_type":"t","occurred_at":"2017-01-01T00:00:00Z","attributes":{"k":tru}}"#,
                RejectReason::InvalidJson,
            ),
            ("", RejectReason::InvalidJson),
        ];
        for (input, reason) in cases {
            let err = decode(input).unwrap_err();
            assert_eq!(err.reason, reason, "{input}: {err}");
        }
        let err =
            decode(r#"{"event_id":"e","event_type":"t","occurred_at":"yesterday"}"#).unwrap_err();
        assert!(err.detail.contains("yesterday"), "{err}");
        // A wrong type names its field, nested ones by their path.
        for (input, detail) in [
            (
                r#"{"event_id":5,"event_type":"t","occurred_at":"2017-01-01T00:00:00Z"}"#,
                "event_id: invalid type: integer `5`, expected a string",
            ),
            (
                r#"{"event_id":"e","event_type":"t","occurred_at":"2017-01-01T00:00:00Z","attributes":{"k":1}}"#,
                "attributes.k: invalid type: integer `1`",
            ),
            (
                r#"{"event_id":"e","event_type":"t","occurred_at":"2017-01-01T00:00:00Z","rep_id":["r"]}"#,
                "rep_id: invalid type: sequence",
            ),
            ("[1,2]", "a record must be a JSON object"),
        ] {
            let err = decode(input).unwrap_err();
            assert!(err.detail.starts_with(detail), "{input}: {}", err.detail);
        }
    }

    #[test]
    fn events_round_trip() {
        let text = r#"{"event_id":"e1","event_type":"deal_won","occurred_at":"2017-03-01T14:00:00Z","rep_id":"r","amount":4514.00,"attributes":{"a":"1","b":"2"}}"#;
        let ev = decode(text).unwrap();
        let mut out = Vec::new();
        encode_event(&ev, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), text);
    }
}
