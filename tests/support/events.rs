//! Generated events and their JSON lines. The one place the tests name the generator.

use goalpost::codec::json;
use goalpost::generate::{GenerateConfig, Generator};
use goalpost::model::{SalesEvent, StringField, Timestamp};

/// `n` events of the generator seeded with `seed`, its other settings at their defaults.
pub fn generated_events(seed: u64, n: u64) -> Vec<SalesEvent> {
    Generator::new(GenerateConfig {
        seed,
        events: n,
        ..GenerateConfig::default()
    })
    .collect()
}

/// A `deal_won` event of `region` at `at`.
pub fn deal_won(id: &str, region: &str, at: Timestamp) -> SalesEvent {
    let mut ev = SalesEvent {
        event_id: id.into(),
        event_type: "deal_won".into(),
        occurred_at: at,
        ..SalesEvent::default()
    };
    ev.set_string(StringField::Region, region);
    ev
}

/// One event as a Kafka record: keyed by its event id (so redeliveries land on the same
/// partition), its JSON as the payload.
pub fn json_record(e: &SalesEvent) -> (String, Vec<u8>) {
    let mut b = Vec::new();
    json::encode_event(e, &mut b);
    (e.event_id.clone(), b)
}

/// The events as JSON lines, each ended by a newline.
pub fn json_lines(events: &[SalesEvent]) -> Vec<u8> {
    let mut buf = Vec::new();
    for e in events {
        json::encode_event(e, &mut buf);
        buf.push(b'\n');
    }
    buf
}
