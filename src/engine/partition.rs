//! Owner partitions: a stable hash of goal and group, the same on every instance and version.

/// Stable 64-bit FNV-1a over length-prefixed parts, the same on every instance and version: the
/// hash behind owner partitions ([`goal_hash`], [`owner_partition_after`]) and marker ids.
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h = Fnv::new();
    for part in parts {
        h.part(part);
    }
    h.0
}

struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn part(&mut self, part: &[u8]) {
        for b in (part.len() as u64).to_be_bytes().iter().chain(part.iter()) {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The hash state after a goal's id: computed once per goal, then continued per group by
/// [`owner_partition_after`].
pub fn goal_hash(goal_id: &str) -> u64 {
    let mut h = Fnv::new();
    h.part(goal_id.as_bytes());
    h.0
}

/// The owner partition of a goal and group, from the goal's [`goal_hash`].
pub fn owner_partition_after(goal_hash: u64, group: &[&str], partitions: u32) -> u32 {
    let mut h = Fnv(goal_hash);
    for g in group {
        h.part(g.as_bytes());
    }
    (h.0 % u64::from(partitions.max(1))) as u32
}
