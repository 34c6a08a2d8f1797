//! Which windows an instant belongs to: the hot path, once per event per goal.

use super::{calendar, Window, WindowSpec};
use crate::model::time::Timestamp;

impl WindowSpec {
    /// Appends every window containing `t`, ascending by start. Tumbling and calendar specs
    /// append exactly one. Does not allocate except by pushing into `out`.
    ///
    /// Windows at the very ends of the `Timestamp` range are clamped to it.
    pub fn windows_for(&self, t: Timestamp, out: &mut Vec<Window>) {
        match self {
            WindowSpec::Tumbling { size } => {
                let size = i128::from(size.as_nanos().max(1));
                let t = i128::from(t.as_nanos());
                out.push(window_at(t.div_euclid(size) * size, size));
            }
            WindowSpec::Hopping { size, every } => {
                let size = i128::from(size.as_nanos().max(1));
                let every = i128::from(every.as_nanos().max(1));
                let t = i128::from(t.as_nanos());
                // Starts s = k*every with t - size < s <= t.
                let last = t.div_euclid(every);
                let first = (t - size).div_euclid(every) + 1;
                for k in first..=last {
                    out.push(window_at(k * every, size));
                }
            }
            WindowSpec::Calendar(spec) => out.push(calendar::window_containing(spec, t)),
        }
    }

    /// Every window overlapping `[from, until]`, ascending by start.
    pub fn windows_between(&self, from: Timestamp, until: Timestamp) -> Vec<Window> {
        let mut out: Vec<Window> = Vec::new();
        let mut scratch = Vec::new();
        let mut t = from;
        while t <= until {
            scratch.clear();
            self.windows_for(t, &mut scratch);
            let Some(last) = scratch.last().copied() else {
                break;
            };
            for w in scratch.drain(..) {
                if out.last().is_none_or(|l| l.start < w.start) {
                    out.push(w);
                }
            }
            let next = self.next_start(&last);
            if next <= t {
                break;
            }
            t = next;
        }
        out
    }

    /// The start of the first window starting after `w`: its end, or for hopping windows the next
    /// hop.
    pub fn next_start(&self, w: &Window) -> Timestamp {
        match self {
            WindowSpec::Hopping { every, .. } => w.start.saturating_add(*every),
            _ => w.end,
        }
    }

    /// Upper bound on how many windows contain one instant: 1, or `ceil(size / every)` for
    /// hopping windows. The runtime does not use it: it is the bound the window tests and the
    /// goal fuzz tests hold [`windows_for`](Self::windows_for) to.
    pub fn max_windows_per_instant(&self) -> usize {
        match self {
            WindowSpec::Hopping { size, every } => {
                ceil_div(size.as_nanos(), every.as_nanos().max(1)).max(1) as usize
            }
            WindowSpec::Tumbling { .. } | WindowSpec::Calendar(_) => 1,
        }
    }
}

fn clamp_i64(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

fn window_at(start: i128, size: i128) -> Window {
    Window {
        start: Timestamp::from_nanos(clamp_i64(start)),
        end: Timestamp::from_nanos(clamp_i64(start + size)),
    }
}

/// `ceil(a / b)` for `a >= 0`, `b > 0`.
pub(super) fn ceil_div(a: i64, b: i64) -> i64 {
    let (a, b) = (i128::from(a), i128::from(b));
    ((a + b - 1) / b) as i64
}
