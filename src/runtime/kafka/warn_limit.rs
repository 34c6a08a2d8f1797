//! Warnings about single records, rate-limited: a flood of bad records must not flood the log
//! (their counts go to the metrics and the summary).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often a warning of one kind is logged per partition, at most.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// At most one warning per (kind, partition) per interval: the first is logged at once, those
/// within the interval after it are counted and reported with the next one logged.
#[derive(Debug)]
pub struct WarnLimit {
    every: Duration,
    /// Per (kind, partition): when one was last logged, and how many were held back since.
    last: HashMap<(&'static str, i32), (Instant, u64)>,
}

impl WarnLimit {
    /// A limit of one warning per kind and partition every `every`.
    pub fn new(every: Duration) -> Self {
        WarnLimit {
            every,
            last: HashMap::new(),
        }
    }

    /// Whether a warning of `kind` about `partition` may be logged at `now`; if so, how many
    /// were held back since the last one logged.
    pub fn allow(&mut self, kind: &'static str, partition: i32, now: Instant) -> Option<u64> {
        match self.last.get_mut(&(kind, partition)) {
            Some((at, held)) if now.saturating_duration_since(*at) < self.every => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                *at = now;
                Some(std::mem::take(held))
            }
            None => {
                self.last.insert((kind, partition), (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_kind_and_partition_per_interval_counting_the_rest() {
        let mut limit = WarnLimit::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(limit.allow("bad", 0, t0), Some(0));
        for i in 1..=1_000 {
            assert_eq!(limit.allow("bad", 0, t0 + Duration::from_millis(i)), None);
        }
        // Another partition, another kind: their own allowance.
        assert_eq!(limit.allow("bad", 1, t0), Some(0));
        assert_eq!(limit.allow("other", 0, t0), Some(0));
        // After the interval: logged again, with the count held back.
        assert_eq!(
            limit.allow("bad", 0, t0 + Duration::from_secs(10)),
            Some(1_000)
        );
        assert_eq!(limit.allow("bad", 0, t0 + Duration::from_secs(11)), None);
        assert_eq!(limit.allow("bad", 0, t0 + Duration::from_secs(20)), Some(1));
    }
}
