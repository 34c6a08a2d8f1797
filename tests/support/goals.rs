//! The example goals.

use std::collections::BTreeSet;

use goalpost::goals::GoalSet;

/// The example goal file.
pub const EXAMPLE_GOALS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/goals.toml");

/// The text of [`EXAMPLE_GOALS`].
pub fn example_goals() -> String {
    std::fs::read_to_string(EXAMPLE_GOALS).unwrap()
}

/// Goal ids whose value only grows: count, sum (of non-negative amounts), max, count_distinct.
pub fn monotone_goals(goals_toml: &str) -> BTreeSet<String> {
    let set = GoalSet::from_toml(goals_toml).unwrap();
    set.goals
        .iter()
        .filter(|g| g.metric().is_monotone())
        .map(|g| g.id.to_string())
        .collect()
}
