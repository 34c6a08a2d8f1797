//! Which events a webhook takes, and what one request carries.

use sha2::{Digest, Sha256};

use super::WebhookConfig;
use crate::model::Attainment;

/// Whether the webhook takes the event (its `goals` and `kinds` filters).
pub fn wants(cfg: &WebhookConfig, a: &Attainment) -> bool {
    let goal_ok = cfg.goals.is_empty() || cfg.goals.iter().any(|g| **g == *a.goal_id);
    goal_ok && cfg.kinds.contains(&a.kind)
}

/// The body of a request carrying `events` (JSON objects): with `batch_max` 1 the one object;
/// otherwise a JSON array of them (an array even when it holds one).
pub fn body(events: &[&[u8]], batch_max: usize) -> Vec<u8> {
    if batch_max == 1 && events.len() == 1 {
        return events[0].to_vec();
    }
    let mut out = Vec::with_capacity(events.iter().map(|e| e.len() + 1).sum::<usize>() + 2);
    out.push(b'[');
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(e);
    }
    out.push(b']');
    out
}

/// The `Idempotency-Key` of a request: one event's `attainment_id`; for a batch, `batch-`
/// followed by the first 16 bytes (hex) of SHA-256 over its ids in order, each followed by a
/// newline. The same events in the same batch always get the same key; receivers that store
/// events one by one deduplicate by the `attainment_id` in each.
pub fn idempotency_key(ids: &[&str], batch_max: usize) -> String {
    if batch_max == 1 && ids.len() == 1 {
        return ids[0].to_string();
    }
    let mut h = Sha256::new();
    for id in ids {
        h.update(id.as_bytes());
        h.update(b"\n");
    }
    let digest = h.finalize();
    let mut out = String::from("batch-");
    for b in &digest[..16] {
        use std::fmt::Write;
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AttainmentKind;

    fn cfg(extra: &str) -> WebhookConfig {
        toml::from_str(&format!("name = \"a\"\nurl = \"http://h/\"\n{extra}")).unwrap()
    }

    fn event(goal: &str, kind: AttainmentKind) -> Attainment {
        use crate::model::{Timestamp, Window};
        let t = Timestamp::from_nanos(0);
        Attainment {
            attainment_id: "id".into(),
            goal_id: goal.into(),
            kind,
            group: vec![],
            window: Window { start: t, end: t },
            value: None,
            target: 1.into(),
            progress: None,
            milestone: None,
            outcome: None,
            triggered_by: None,
            event_time: t,
            expected: None,
            projected: None,
            tick: None,
        }
    }

    #[test]
    fn filters_by_goal_and_kind() {
        let all = cfg("");
        assert!(wants(&all, &event("revenue", AttainmentKind::Final)));
        let some = cfg("goals = [\"revenue\"]\nkinds = [\"final\", \"breached\"]");
        assert!(wants(&some, &event("revenue", AttainmentKind::Final)));
        assert!(!wants(&some, &event("revenue", AttainmentKind::Milestone)));
        assert!(!wants(&some, &event("calls", AttainmentKind::Final)));
    }

    #[test]
    fn one_object_or_an_array() {
        assert_eq!(body(&[b"{\"a\":1}"], 1), b"{\"a\":1}");
        assert_eq!(body(&[b"{\"a\":1}"], 5), b"[{\"a\":1}]");
        assert_eq!(body(&[b"{\"a\":1}", b"{}"], 5), b"[{\"a\":1},{}]");
    }

    #[test]
    fn keys_are_ids_or_a_digest_of_them() {
        assert_eq!(idempotency_key(&["abc"], 1), "abc");
        let k = idempotency_key(&["a", "b"], 2);
        assert!(k.starts_with("batch-") && k.len() == 6 + 32, "{k}");
        assert_eq!(k, idempotency_key(&["a", "b"], 2));
        assert_ne!(k, idempotency_key(&["b", "a"], 2));
        assert_ne!(idempotency_key(&["ab"], 2), idempotency_key(&["a", "b"], 2));
    }
}
