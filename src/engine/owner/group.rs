//! The key of a group: its values in `group_by` order, hashed so that a borrowed group finds it.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use hashbrown::Equivalent;

/// The values of a group, owned, in `group_by` order. Ordered by value for deterministic output.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupKey(pub Arc<[Box<str>]>);

impl Hash for GroupKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_values(self.0.iter().map(|v| &**v), self.0.len(), state);
    }
}

fn hash_values<'a, H: Hasher>(values: impl Iterator<Item = &'a str>, len: usize, state: &mut H) {
    state.write_usize(len);
    for v in values {
        state.write(v.as_bytes());
        state.write_u8(0xff);
    }
}

/// A borrowed group, looked up without allocating.
pub(super) struct GroupRef<'a, 'e>(pub(super) &'a [&'e str]);

impl Hash for GroupRef<'_, '_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_values(self.0.iter().copied(), self.0.len(), state);
    }
}

impl Equivalent<GroupKey> for GroupRef<'_, '_> {
    fn equivalent(&self, key: &GroupKey) -> bool {
        key.0.len() == self.0.len() && key.0.iter().zip(self.0).all(|(a, b)| **a == **b)
    }
}

impl GroupKey {
    /// An owned key from borrowed values.
    pub fn from_values(values: &[&str]) -> Self {
        GroupKey(values.iter().map(|v| Box::from(*v)).collect())
    }
}
