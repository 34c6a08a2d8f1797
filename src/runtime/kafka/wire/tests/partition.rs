//! Owner partitions stay where they are.

use crate::runtime::kafka::wire::{fnv1a, goal_hash, owner_partition_after};

/// The owner partition of a goal and group hashed in one go.
fn owner_partition(goal_id: &str, group: &[&str], partitions: u32) -> u32 {
    owner_partition_after(goal_hash(goal_id), group, partitions)
}

const PINNED: u64 = 16_048_211_455_552_563_759;

#[test]
fn partitioning_is_stable() {
    // Pinned: changing the hash would move every goal and group to another owner.
    assert_eq!(fnv1a(&[b"goal", b"East"]), PINNED);
    assert_eq!(
        owner_partition("goal", &["East"], 1_000) as u64,
        PINNED % 1_000,
        "streaming and slice hashing agree"
    );
    assert_ne!(
        owner_partition("g", &["a", "b"], 1_000),
        owner_partition("g", &["ab"], 1_000)
    );
}
