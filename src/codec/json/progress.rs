//! Progress records as JSON: one object per window, the value of the progress topic.

use super::{push_decimal, push_key, push_str};
use crate::model::{GoalProgress, Timestamp};

/// Appends one progress record as a JSON object (no newline). Decimals are exact JSON numbers;
/// `status`, `status_tick`, `expected` and `projected` are present only for goals with `status`;
/// `outcome` is `null` while the window is open.
pub fn encode_progress(p: &GoalProgress, out: &mut Vec<u8>) {
    let mut first = true;
    out.push(b'{');
    push_key(out, &mut first, "goal_id");
    push_str(out, &p.goal_id);
    push_key(out, &mut first, "group");
    out.push(b'{');
    let mut gfirst = true;
    for (k, v) in &p.group {
        push_key(out, &mut gfirst, k);
        push_str(out, v);
    }
    out.push(b'}');
    push_key(out, &mut first, "window_start");
    push_str(out, &p.window.start.to_rfc3339());
    push_key(out, &mut first, "window_end");
    push_str(out, &p.window.end.to_rfc3339());
    push_key(out, &mut first, "value");
    push_decimal(out, p.value);
    push_key(out, &mut first, "target");
    push_decimal(out, Some(p.target));
    push_key(out, &mut first, "progress");
    push_decimal(out, p.progress);
    push_key(out, &mut first, "direction");
    push_str(out, p.direction);
    push_key(out, &mut first, "milestones_reached");
    out.push(b'[');
    for (i, m) in p.milestones_reached.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_decimal(out, Some(*m));
    }
    out.push(b']');
    push_key(out, &mut first, "breached");
    out.extend_from_slice(if p.breached { b"true" } else { b"false" });
    if let Some(s) = &p.status {
        push_key(out, &mut first, "status");
        push_str(out, s.status);
        push_key(out, &mut first, "status_tick");
        push_time(out, s.tick);
        push_key(out, &mut first, "expected");
        push_decimal(out, s.expected);
        push_key(out, &mut first, "projected");
        push_decimal(out, s.projected);
    }
    push_key(out, &mut first, "open");
    out.extend_from_slice(if p.open { b"true" } else { b"false" });
    push_key(out, &mut first, "outcome");
    match p.outcome {
        Some(o) => push_str(out, o.as_str()),
        None => out.extend_from_slice(b"null"),
    }
    push_key(out, &mut first, "last_event_time");
    push_time(out, p.last_event_time);
    push_key(out, &mut first, "updated_at");
    push_time(out, p.updated_at);
    out.push(b'}');
}

fn push_time(out: &mut Vec<u8>, t: Option<Timestamp>) {
    match t {
        Some(t) => push_str(out, &t.to_rfc3339()),
        None => out.extend_from_slice(b"null"),
    }
}
