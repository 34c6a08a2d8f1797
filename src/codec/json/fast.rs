//! A hand-written scanner for events in the common shape, about three times as fast as the
//! serde_json path on the generated and CRM events.
//!
//! It accepts one JSON object whose values are strings without escapes, numbers, `true`, `false`
//! and `null`, with `attributes` an object of such strings (or `null`). For anything else
//! (escapes, other nested values, a repeated known field, any syntax error) it returns `None`
//! and the caller uses serde_json. So the scanner never has to reproduce serde_json's errors,
//! only its successful results; `tests` checks that against serde_json on mutated records.

use std::borrow::Cow;

use super::{Fields, Text};
use crate::model::StringField;

/// The fields the scanner knows: the strings of [`Fields`] and the two special ones.
#[derive(Clone, Copy)]
enum Key {
    EventId,
    EventType,
    OccurredAt,
    String(StringField),
    Amount,
    Attributes,
}

impl Key {
    fn of(name: &str) -> Option<Key> {
        Some(match name {
            "event_id" => Key::EventId,
            "event_type" => Key::EventType,
            "occurred_at" => Key::OccurredAt,
            "amount" => Key::Amount,
            "attributes" => Key::Attributes,
            _ => Key::String(StringField::from_name(name)?),
        })
    }

    /// A distinct bit per key, to notice repeated fields.
    fn bit(self) -> u32 {
        1 << match self {
            Key::EventId => 0,
            Key::EventType => 1,
            Key::OccurredAt => 2,
            Key::Amount => 3,
            Key::Attributes => 4,
            Key::String(f) => 5 + f.index(),
        }
    }
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// Skips white space, then expects `c`.
    fn expect(&mut self, c: u8) -> Option<()> {
        self.skip_ws();
        (self.peek()? == c).then(|| self.at += 1)
    }

    /// A string without escapes or control characters, the cursor on its opening quote.
    fn string(&mut self) -> Option<&'a str> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.at + 1;
        let len = string_end(&self.bytes[start..])?;
        if self.bytes[start + len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        // The quotes are ASCII, so both ends are character boundaries of the validated text.
        Some(&self.text[start..start + len])
    }

    fn digits(&mut self) -> Option<()> {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return None;
        }
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        Some(())
    }

    /// A number by JSON's grammar; returns its text.
    fn number(&mut self) -> Option<&'a str> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits()?,
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.digits()?;
        }
        Some(&self.text[start..self.at])
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.bytes[self.at..]
            .starts_with(word)
            .then(|| self.at += word.len())
    }

    /// `null` (then `None`) or an escape-free string.
    fn text_or_null(&mut self) -> Option<Option<Text<'a>>> {
        match self.peek()? {
            b'n' => self.literal(b"null").map(|_| None),
            _ => Some(Some(Text(Cow::Borrowed(self.string()?)))),
        }
    }

    /// The value of a field the event does not have: a scalar only.
    fn skip_scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            _ => self.number().map(drop),
        }
    }

    /// Calls `each` with every key, the cursor then on its value, until the closing brace.
    fn object(&mut self, mut each: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.expect(b'{')?;
        self.skip_ws();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.skip_ws();
            let key = self.string()?;
            self.expect(b':')?;
            self.skip_ws();
            each(self, key)?;
            self.skip_ws();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

/// The position of the first `"`, `\\` or control character in `b`, eight bytes at a time.
fn string_end(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte's high bit marks a zero byte (or, only above a real one, a false positive);
    // little-endian, so the lowest marked byte is the first match.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut at = 0;
    while let Some(chunk) = b.get(at..at + 8) {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        // Bytes below 0x20 (`x - 0x20` borrows), equal to `"` or equal to `\\`.
        let hit = (x.wrapping_sub(ONES * 0x20) & !x & HIGH)
            | zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')));
        if hit != 0 {
            return Some(at + hit.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    b[at..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| at + p)
}

/// Scans `text` (a whole record) if it has the common shape; `None` leaves it to serde_json.
pub(super) fn scan(text: &str) -> Option<Fields<'_>> {
    let mut s = Scanner {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    let mut fields = Fields::default();
    let mut seen = 0u32;
    s.object(|s, name| {
        let Some(key) = Key::of(name) else {
            return s.skip_scalar();
        };
        if seen & key.bit() != 0 {
            return None;
        }
        seen |= key.bit();
        match key {
            Key::EventId => fields.event_id = s.text_or_null()?,
            Key::EventType => fields.event_type = s.text_or_null()?,
            Key::OccurredAt => fields.occurred_at = s.text_or_null()?,
            Key::String(f) => fields.strings[f.index()] = s.text_or_null()?,
            Key::Amount => {
                let start = s.at;
                fields.amount = match s.peek()? {
                    b'n' => s.literal(b"null").map(|_| None)?,
                    b'"' => s.string().map(|_| Some(&text[start..s.at]))?,
                    _ => Some(s.number()?),
                }
            }
            Key::Attributes => {
                if s.peek()? == b'n' {
                    return s.literal(b"null");
                }
                let attributes = &mut fields.attributes;
                s.object(|s, k| {
                    let v = s.string()?;
                    attributes.push((Text(Cow::Borrowed(k)), Text(Cow::Borrowed(v))));
                    Some(())
                })?;
            }
        }
        Some(())
    })?;
    s.skip_ws();
    (s.at == s.bytes.len()).then_some(fields)
}

#[cfg(test)]
mod tests {
    use super::super::{decode_with_serde, encode_event};
    use super::*;
    use crate::generate::{GenerateConfig, Generator};
    use crate::model::SalesEvent;

    /// The scanner, where it answers, agrees with serde_json.
    fn agrees(text: &str) -> bool {
        let Some(fast) = scan(text) else {
            return false;
        };
        match decode_with_serde(text) {
            Ok(slow) => assert_eq!(fast, slow, "{text}"),
            Err(e) => panic!("the scanner accepted what serde_json rejects ({e}): {text}"),
        }
        true
    }

    fn samples() -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for ev in Generator::new(GenerateConfig {
            seed: 11,
            events: 300,
            ..GenerateConfig::default()
        }) {
            buf.clear();
            encode_event(&ev, &mut buf);
            out.push(String::from_utf8(buf.clone()).unwrap());
        }
        out.extend(
            [
                r#" { "event_id" : "e" , "event_type":"t", "occurred_at":"2017-01-01T00:00:00Z",
                     "amount": -0.5e+3, "x": true, "y": false, "z": null, "w": 1E2, "v": "s",
                     "attributes": null, "rep_id": null } "#,
                r#"{"event_id":"e","amount":"12.5","attributes":{},"region":"Zürich"}"#,
                r#"{"attributes":{"a":"1","a":"2","b":""},"amount":0}"#,
                "{}",
            ]
            .map(String::from),
        );
        out
    }

    #[test]
    fn string_ends_are_found_at_every_position() {
        for len in 0..40 {
            for end in [b'"', b'\\', b'\n', 0, 0x1f] {
                for filler in [b'a', 0x20, 0x7f, 0x80, 0xff, b'!', b'#', b'[', b']'] {
                    let mut b = vec![filler; len];
                    b.push(end);
                    b.extend_from_slice(b"\"xyz");
                    assert_eq!(string_end(&b), Some(len), "{len} {end} {filler}");
                    assert_eq!(string_end(&b[..len]), None);
                }
            }
        }
    }

    #[test]
    fn the_common_shape_is_scanned_and_matches_serde_json() {
        for text in samples() {
            assert!(agrees(&text), "not scanned: {text}");
        }
    }

    #[test]
    fn what_it_does_not_handle_is_left_to_serde_json() {
        for text in [
            r#"{"event_id":"a\"b"}"#,
            r#"{"event_id":"e","event_id":"f"}"#,
            r#"{"x":{"nested":1}}"#,
            r#"{"x":[1]}"#,
            r#"{"amount":01}"#,
            r#"{"amount":1.}"#,
            r#"{"amount":-}"#,
            r#"{"amount":true}"#,
            r#"{"event_id":5}"#,
            r#"{"attributes":{"k":1}}"#,
            r#"{"a":"b",}"#,
            r#"{"a":"b"} x"#,
            "{\"a\":\"\t\"}",
            "[1]",
            "",
        ] {
            assert!(scan(text).is_none(), "{text}");
        }
    }

    /// Random edits of real records: wherever the scanner answers, serde_json gives the same.
    #[test]
    fn mutated_records_never_disagree_with_serde_json() {
        let alphabet: &[u8] = b"{}[]:,\"\\ \t\n0123456789.-+eEtrufalsn_xz";
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n as u64) as usize
        };
        let (mut scanned, mut total) = (0, 0);
        for text in samples() {
            for _ in 0..200 {
                let mut b = text.clone().into_bytes();
                for _ in 0..1 + next(3) {
                    let at = next(b.len() + 1);
                    let c = alphabet[next(alphabet.len())];
                    match next(3) {
                        0 => b.insert(at, c),
                        1 if at < b.len() => {
                            b.remove(at);
                        }
                        _ if at < b.len() => b[at] = c,
                        _ => b.push(c),
                    }
                }
                let Ok(mutated) = String::from_utf8(b) else {
                    continue;
                };
                total += 1;
                scanned += usize::from(agrees(&mutated));
            }
        }
        // Most edits break the record; enough of them must stay scannable to mean something.
        assert!(scanned * 20 > total, "{scanned} of {total} scanned");
    }

    #[test]
    fn the_decoder_gives_the_same_event_on_both_paths() {
        for text in samples() {
            let mut a = SalesEvent::default();
            let mut b = SalesEvent::default();
            let fast = super::super::fill(scan(&text).unwrap(), &mut a);
            let slow = super::super::fill(decode_with_serde(&text).unwrap(), &mut b);
            assert_eq!(fast.map(|_| a), slow.map(|_| b), "{text}");
        }
    }
}
