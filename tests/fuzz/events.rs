//! Input events: the JSON and protobuf decoders and the length-delimited protobuf file reader.

use std::ops::Range;

use goalpost::codec::proto::{self, pb, Frame, FrameReader};
use goalpost::codec::{self, json, DecodeError, Format, RejectReason};
use goalpost::limits::Limits;
use goalpost::model::{Decimal, SalesEvent, StringField, Timestamp};
use proptest::prelude::*;
use prost::Message;

use crate::support::fuzz::VARINT_DICT;
use crate::support::fuzz::{
    allowed_bytes, config, mutate, mutations, peak_bytes, within_allowance,
};

/// Characters that often trip text handling: controls, quotes and backslashes, a BOM, a bidi
/// override, a line separator, a combining mark, a non-character, the last code point, astral ones.
const ODD_CHARS: &[char] = &[
    '\0',
    '\u{1}',
    '\u{1f}',
    '\u{7f}',
    '"',
    '\\',
    '/',
    '\n',
    '\u{85}',
    '\u{a0}',
    '\u{feff}',
    '\u{202e}',
    '\u{2028}',
    '\u{301}',
    '\u{fffd}',
    '\u{ffff}',
    '\u{10ffff}',
    '𝕏',
    'é',
    'ß',
    '中',
];

/// A string of arbitrary and odd characters.
fn text(len: Range<usize>) -> BoxedStrategy<String> {
    let ch = prop_oneof![3 => any::<char>(), 1 => prop::sample::select(ODD_CHARS)];
    prop::collection::vec(ch, len)
        .prop_map(String::from_iter)
        .boxed()
}

/// A string JSON writes without escapes, as most real records are (the decoder's fast path).
fn plain_text(len: Range<usize>) -> BoxedStrategy<String> {
    let ch = prop_oneof![
        4 => prop::char::range('a', 'z'),
        1 => prop::sample::select(&['0', '9', ' ', '-', '_', '.', 'é', '中', '𝕏', '\u{feff}'][..]),
    ];
    prop::collection::vec(ch, len)
        .prop_map(String::from_iter)
        .boxed()
}

/// An amount within the accepted range: |amount| < 10^18, at most 10 fractional digits.
fn amount() -> impl Strategy<Value = Decimal> {
    const LIMIT: i64 = 1_000_000_000_000_000_000;
    (-LIMIT + 1..LIMIT, 0..=10u32).prop_map(|(m, scale)| Decimal::new(m, scale))
}

/// A valid event: every field set to arbitrary text, any representable instant.
fn event() -> impl Strategy<Value = SalesEvent> {
    event_of(text)
}

/// A valid event whose strings come from `text`.
fn event_of(text: fn(Range<usize>) -> BoxedStrategy<String>) -> impl Strategy<Value = SalesEvent> {
    (
        text(1..40),
        text(1..20),
        any::<i64>(),
        prop::collection::vec(prop::option::of(text(1..12)), StringField::COUNT),
        prop::option::of(amount()),
        prop::collection::btree_map(text(0..8), text(0..8), 0..6),
    )
        .prop_map(|(id, ty, t, strings, amount, attributes)| {
            let mut ev = SalesEvent {
                event_id: id,
                event_type: ty,
                occurred_at: Timestamp::from_nanos(t),
                amount,
                attributes: attributes.into_iter().collect(),
                ..SalesEvent::default()
            };
            for (f, v) in StringField::ALL.into_iter().zip(strings) {
                ev.set_string(f, v.unwrap_or_default());
            }
            ev
        })
}

fn to_json(ev: &SalesEvent) -> Vec<u8> {
    let mut out = Vec::new();
    json::encode_event(ev, &mut out);
    out
}

fn to_proto(ev: &SalesEvent) -> Vec<u8> {
    let mut out = Vec::new();
    proto::encode_event(ev, &mut out);
    out
}

/// Decodes `bytes` through the runtimes' entry point, checking the properties every input must
/// have: no panic, bounded allocation, and a rejection that names a reason and says why.
fn decode(format: Format, bytes: &[u8]) -> Result<SalesEvent, DecodeError> {
    let result = within_allowance(bytes.len(), || {
        let mut ev = SalesEvent::default();
        codec::decode_event(format, bytes, &mut ev, &Limits::DEFAULT).map(|()| ev)
    });
    match &result {
        Ok(ev) => {
            assert!(!ev.event_id.is_empty() && !ev.event_type.is_empty());
            assert!(ev.event_id.len() <= Limits::DEFAULT.event_id_bytes);
            assert!(
                ev.attributes.windows(2).all(|w| w[0].0 < w[1].0),
                "attributes sorted, keys unique"
            );
        }
        Err(e) => {
            assert!(RejectReason::ALL.contains(&e.reason));
            assert!(
                !e.detail.trim().is_empty(),
                "{:?} without a detail",
                e.reason
            );
        }
    }
    result
}

/// Numbers at the edges of JSON, f64, i64/u64, rust_decimal (28 digits, 96 bits) and the amount
/// limits, written as JSON numbers.
const EDGE_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "0.0000000000",
    "1e18",
    "-1e18",
    "999999999999999999.9999999999",
    "0.00000000001",
    "1e308",
    "1e309",
    "-1e-400",
    "1e999999999999",
    "1E-4294967295",
    "1.5e-4294967296",
    "1e+4294967297",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "79228162514264337593543950335",
    "79228162514264337593543950336",
    "7.9228162514264337593543950336e28",
    "0.0000000000000000000000000001",
    "1.00000000000000000000000000001",
    "123456789012345678901234567890123456789",
    "0e-99999",
];

/// Numbers with many digits: before the point, after it, or in the exponent.
fn long_number() -> impl Strategy<Value = String> {
    (1..200usize, 0..3u8, any::<bool>()).prop_map(|(n, shape, negative)| {
        let digits = match shape {
            0 => "9".repeat(n),
            1 => format!("0.{}1", "0".repeat(n)),
            _ => format!("1e-{}", "9".repeat(n)),
        };
        if negative {
            format!("-{digits}")
        } else {
            digits
        }
    })
}

/// Timestamps at the edges: the ends of the nanosecond range, leap days and seconds, long
/// fractions, odd offsets, lower-case separators.
const EDGE_TIMES: &[&str] = &[
    "2026-01-05T10:00:00Z",
    "1677-09-21T00:12:43.145224192Z",
    "1677-09-21T00:12:43.145224191Z",
    "2262-04-11T23:47:16.854775807Z",
    "2262-04-11T23:47:16.854775808Z",
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999999+23:59",
    "2024-02-29T00:00:00-00:00",
    "2023-02-29T00:00:00Z",
    "2016-12-31T23:59:60Z",
    "2026-01-05t10:00:00z",
    "2026-01-05T10:00:00.0000000000001Z",
    "2026-01-05T10:00:00+24:00",
    "2026-01-05T10:00:00",
    "2026-01-05",
    "",
];

/// JSON values: strings (odd unicode, escapes, lone surrogates), numbers at the edges, literals,
/// deep nesting.
fn json_value() -> impl Strategy<Value = String> {
    prop_oneof![
        text(0..12).prop_map(|s| serde_json::to_string(&s).unwrap()),
        prop::sample::select(EDGE_NUMBERS).prop_map(str::to_string),
        long_number(),
        prop::sample::select(EDGE_NUMBERS).prop_map(|n| format!("\"{n}\"")),
        prop::sample::select(EDGE_TIMES).prop_map(|t| format!("\"{t}\"")),
        prop::sample::select(&[
            "true",
            "false",
            "null",
            "\"\\ud800\"",
            "\"\\udfff\\ud800\"",
            "\"\\u0000\"",
            "\"a\\/b\\b\\f\"",
            "\"\\x\"",
            "{}",
            "[]",
            "NaN",
            "Infinity",
            "01",
        ])
        .prop_map(str::to_string),
        (1..300usize, any::<bool>()).prop_map(|(depth, object)| if object {
            format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
        } else {
            format!("{}{}", "[".repeat(depth), "]".repeat(depth))
        }),
    ]
}

const FIELD_NAMES: &[&str] = &[
    "event_id",
    "event_type",
    "occurred_at",
    "rep_id",
    "team_id",
    "region",
    "account_id",
    "opportunity_id",
    "lead_id",
    "product",
    "stage",
    "previous_stage",
    "currency",
    "amount",
    "attributes",
    "unknown",
    "",
];

/// A JSON object with known and unknown fields (some repeated) of odd values; `attributes` is
/// sometimes an object of such values.
fn json_object() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        4 => json_value(),
        1 => prop::collection::vec((text(0..6), json_value()), 0..5).prop_map(|kv| {
            let items: Vec<String> = kv
                .iter()
                .map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).unwrap()))
                .collect();
            format!("{{{}}}", items.join(","))
        }),
    ];
    prop::collection::vec((prop::sample::select(FIELD_NAMES), value), 0..18).prop_map(|fields| {
        let items: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", items.join(","))
    })
}

/// An event object whose fields have the right JSON types but odd values: empty and odd
/// strings, timestamps and amounts at the edges, nulls, unknown fields of any value.
fn plausible_object() -> impl Strategy<Value = String> {
    let string = || {
        prop_oneof![
            8 => text(1..10).prop_map(|s| serde_json::to_string(&s).unwrap()),
            1 => Just("\"\"".to_string()),
            1 => Just("null".to_string()),
        ]
    };
    let time = prop_oneof![
        prop::sample::select(EDGE_TIMES).prop_map(|t| format!("\"{t}\"")),
        any::<i64>().prop_map(|t| format!("\"{}\"", Timestamp::from_nanos(t))),
    ];
    let amount = prop_oneof![
        prop::sample::select(EDGE_NUMBERS).prop_map(str::to_string),
        long_number(),
        long_number().prop_map(|n| format!("\"{n}\"")),
        prop::sample::select(EDGE_NUMBERS).prop_map(|n| format!("\"{n}\"")),
        amount().prop_map(|a| a.to_string()),
    ];
    // Keys from a small set too, so that some repeat.
    let key = prop_oneof![
        text(0..5),
        prop::sample::select(&["a", "b", ""]).prop_map(String::from)
    ];
    let attributes = prop::collection::vec((key, string()), 0..5).prop_map(|kv| {
        let items: Vec<String> = kv
            .iter()
            .map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).unwrap()))
            .collect();
        format!("{{{}}}", items.join(","))
    });
    (
        prop::collection::vec(string(), 3),
        time,
        prop::option::of(amount),
        prop::option::of(attributes),
        prop::collection::vec((prop::sample::select(&FIELD_NAMES[3..]), string()), 0..4),
        prop::option::of(json_value()),
    )
        .prop_map(|(ids, time, amount, attributes, strings, unknown)| {
            let mut items = vec![
                format!("\"event_id\":{}", ids[0]),
                format!("\"event_type\":{}", ids[1]),
                format!("\"occurred_at\":{time}"),
            ];
            items.extend(strings.iter().map(|(k, v)| format!("\"{k}\":{v}")));
            if let Some(a) = amount {
                items.push(format!("\"amount\":{a}"));
            }
            if let Some(a) = attributes {
                items.push(format!("\"attributes\":{a}"));
            }
            if let Some(u) = unknown {
                items.push(format!("\"unknown\":{u}"));
            }
            format!("{{{}}}", items.join(","))
        })
}

/// Tokens of JSON to insert: structure, escapes, odd unicode, huge numbers, a deep opening.
const JSON_DICT: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b"\\u",
    b"\\ud83d",
    b":",
    b",",
    b"null",
    b"1e999999999",
    b"-",
    b".",
    "\u{feff}".as_bytes(),
    "\u{10ffff}".as_bytes(),
    &[0xc0, 0x80],
    &[0xed, 0xa0, 0x80],
    &[0xf4, 0x90, 0x80, 0x80],
    b"\"attributes\":{\"k\":\"v\"},",
    b"\"amount\":1e18,",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
];

/// Inputs for the JSON decoder: a valid event or an odd object, mutated.
fn json_input() -> impl Strategy<Value = Vec<u8>> {
    let base = prop_oneof![
        1 => event().prop_map(|ev| to_json(&ev)),
        1 => event_of(plain_text).prop_map(|ev| to_json(&ev)),
        2 => plausible_object().prop_map(String::into_bytes),
        1 => json_object().prop_map(String::into_bytes),
    ];
    (base, mutations()).prop_map(|(b, m)| mutate(b, &m, JSON_DICT))
}

/// A protobuf event with fields the encoder never writes: timestamps at the ends of i64 and
/// nanos out of range, odd amounts, empty and odd strings.
fn odd_proto() -> impl Strategy<Value = Vec<u8>> {
    let seconds = prop_oneof![
        any::<i64>(),
        Just(i64::MIN),
        Just(i64::MAX),
        Just(9_223_372_036),
        Just(-9_223_372_037)
    ];
    let nanos = prop_oneof![
        any::<i32>(),
        Just(-1),
        Just(999_999_999),
        Just(1_000_000_000)
    ];
    let amount = prop_oneof![
        prop::sample::select(EDGE_NUMBERS).prop_map(str::to_string),
        long_number(),
        text(0..10)
    ];
    (
        text(0..10),
        text(0..10),
        prop::option::of((seconds, nanos)),
        prop::option::of(amount),
        prop::collection::btree_map(text(0..6), text(0..6), 0..4),
    )
        .prop_map(|(event_id, event_type, ts, amount, attributes)| {
            pb::SalesEvent {
                event_id,
                event_type,
                occurred_at: ts.map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos }),
                amount,
                attributes,
                ..pb::SalesEvent::default()
            }
            .encode_to_vec()
        })
}

/// Inputs for the protobuf decoder: a valid or odd message, mutated with huge varints.
fn proto_input() -> impl Strategy<Value = Vec<u8>> {
    let base = prop_oneof![event().prop_map(|ev| to_proto(&ev)), odd_proto()];
    (base, mutations()).prop_map(|(b, m)| mutate(b, &m, VARINT_DICT))
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn json_events_round_trip(ev in prop_oneof![event(), event_of(plain_text)]) {
        let decoded = decode(Format::Json, &to_json(&ev));
        prop_assert_eq!(decoded, Ok(ev));
    }

    #[test]
    fn proto_events_round_trip(ev in event()) {
        let decoded = decode(Format::Proto, &to_proto(&ev));
        prop_assert_eq!(decoded, Ok(ev));
    }

    #[test]
    fn mutated_json_is_decoded_or_rejected(bytes in json_input()) {
        let _ = decode(Format::Json, &bytes);
    }

    #[test]
    fn arbitrary_bytes_are_decoded_or_rejected_in_both_formats(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let _ = decode(Format::Json, &bytes);
        let _ = decode(Format::Proto, &bytes);
    }

    #[test]
    fn mutated_proto_is_decoded_or_rejected(bytes in proto_input()) {
        let _ = decode(Format::Proto, &bytes);
    }

    /// The same record with a field name written with an escape (`"\u0065vent_id"`), which the
    /// decoder's fast scanner leaves to serde_json, decodes the same: both paths agree.
    #[test]
    fn both_json_paths_agree(bytes in json_input()) {
        let text = String::from_utf8_lossy(&bytes);
        let mut escaped = text.to_string();
        for name in ["event_id", "event_type", "occurred_at", "amount", "attributes", "region"] {
            let first = name.as_bytes()[0];
            let with_escape = format!("\"\\u{first:04x}{}\"", &name[1..]);
            escaped = escaped.replace(&format!("\"{name}\""), &with_escape);
        }
        let plain = decode(Format::Json, text.as_bytes());
        let slow = decode(Format::Json, escaped.as_bytes());
        match (plain, slow) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(a), Err(b)) => prop_assert_eq!(a.reason, b.reason, "{} / {}", a, b),
            (a, b) => prop_assert!(false, "{:?} / {:?}\n{}\n{}", a, b, text, escaped),
        }
    }

    /// The runtimes decode every record into one reused event: what the previous record left in
    /// it (decoded or rejected half-way) must not show in the next.
    #[test]
    fn a_reused_event_buffer_keeps_nothing_of_the_previous_record(
        json in prop::collection::vec(json_input(), 2..5),
        proto in prop::collection::vec(proto_input(), 2..5),
    ) {
        for (format, records) in [(Format::Json, &json), (Format::Proto, &proto)] {
            let mut reused = SalesEvent::default();
            for bytes in records {
                let fresh = decode(format, bytes);
                let again = codec::decode_event(format, bytes, &mut reused, &Limits::DEFAULT).map(|()| reused.clone());
                prop_assert_eq!(again, fresh);
            }
        }
    }

    /// A file of length-delimited events, mutated: every frame ends, none allocates more than the
    /// record limit, and a stream never yields frames past a break.
    #[test]
    fn mutated_proto_files_are_read_frame_by_frame(
        events in prop::collection::vec(event(), 0..4),
        edits in mutations(),
    ) {
        let mut file = Vec::new();
        for ev in &events {
            let body = to_proto(ev);
            proto::write_length_prefix(body.len(), &mut file);
            file.extend_from_slice(&body);
        }
        let file = mutate(file, &edits, VARINT_DICT);
        let (frames, peak) = peak_bytes(|| read_frames(&file));
        prop_assert!(peak <= allowed_bytes(file.len()) + Limits::DEFAULT.record_bytes, "{peak} bytes");
        prop_assert!(frames <= file.len());
    }
}

/// Reads every frame of `file`, decoding each message, and returns the bytes of the messages.
/// A broken frame must be the last.
fn read_frames(file: &[u8]) -> usize {
    let mut reader = FrameReader::new(file, Limits::DEFAULT.record_bytes);
    let (mut bytes, mut broken) = (0, false);
    while let Some(frame) = reader.next_frame().expect("reading a slice cannot fail") {
        assert!(!broken, "a frame after a broken one");
        match frame {
            Frame::Message(body) => {
                bytes += body.len();
                let _ = decode(Format::Proto, &body);
            }
            Frame::Broken(e, _) => {
                assert_eq!(e.reason, RejectReason::InvalidProto);
                broken = true;
            }
            Frame::Oversized(len) => assert!(len > Limits::DEFAULT.record_bytes),
        }
    }
    bytes
}

#[test]
fn deep_nesting_is_rejected_not_a_stack_overflow() {
    for depth in [1_000, 100_000] {
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            for prefix in ["", "{\"amount\":", "{\"attributes\":", "{\"x\":"] {
                let text = format!("{prefix}{}{}", open.repeat(depth), close.repeat(depth));
                let e = decode(Format::Json, text.as_bytes()).unwrap_err();
                assert!(
                    matches!(
                        e.reason,
                        RejectReason::InvalidJson | RejectReason::WrongType
                    ),
                    "{e}"
                );
            }
        }
    }
    // Protobuf: nested start-group tags in an unknown field.
    let bytes = [0x0bu8].repeat(100_000);
    assert_eq!(
        decode(Format::Proto, &bytes).unwrap_err().reason,
        RejectReason::InvalidProto
    );
}

#[test]
fn huge_length_prefixes_allocate_nothing_of_their_claim() {
    // event_id (field 1) and a string in an unknown field, claiming 4 GiB and u64::MAX.
    for claim in &VARINT_DICT[..5] {
        for key in [0x0au8, 0x9a] {
            let bytes = [&[key][..], claim, b"abc"].concat();
            assert_eq!(
                decode(Format::Proto, &bytes).unwrap_err().reason,
                RejectReason::InvalidProto
            );
        }
        // A file whose first frame claims it: skipped as oversized, nothing buffered.
        let file = [claim, &b"abc"[..]].concat();
        let (frames, peak) = peak_bytes(|| read_frames(&file));
        assert!(peak < 64 * 1024, "{peak} bytes");
        assert_eq!(frames, 0);
    }
}
