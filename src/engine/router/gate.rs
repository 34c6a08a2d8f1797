//! The type gate: which goals an event may count for, by its `event_type` alone.

use crate::goals::{FieldRef, Filter, GoalSet, Measure};

/// Which goals an event may count for, by its `event_type` alone: most filters name the event
/// types they take, so most goals need no filter check for most events (the engine alone takes
/// about a fifth less time with the gate, in `benches/fold.rs`). A goal the gate lets through
/// still has its whole filter checked, so the gate only has to never turn away an event some
/// goal's filters would take.
#[derive(Debug, Clone)]
pub(super) struct TypeGate {
    /// Per event type named by some goal's filters: which goals may take it.
    named: hashbrown::HashMap<Box<str>, Box<[bool]>>,
    /// Which goals may take an event of any other type: those whose filters name no type.
    other: Box<[bool]>,
}

impl TypeGate {
    pub(super) fn new(goals: &GoalSet) -> Self {
        let types: Vec<Option<Vec<&str>>> =
            goals.goals.iter().map(|g| goal_types(&g.measure)).collect();
        let mut named = hashbrown::HashMap::new();
        for t in types.iter().flatten().flatten() {
            if !named.contains_key(*t) {
                let may: Box<[bool]> = types
                    .iter()
                    .map(|ts| ts.as_ref().is_none_or(|ts| ts.contains(t)))
                    .collect();
                named.insert(Box::from(*t), may);
            }
        }
        TypeGate {
            named,
            other: types.iter().map(Option::is_none).collect(),
        }
    }

    /// Per goal: whether an event of type `event_type` may count for it.
    #[inline]
    pub(super) fn goals_for(&self, event_type: &str) -> &[bool] {
        self.named.get(event_type).unwrap_or(&self.other)
    }
}

/// The event types a filter can pass (`None`: any). Every `event_type` clause must hold, so the
/// types are those in all of them.
fn filter_types(filter: &Filter) -> Option<Vec<&str>> {
    let mut types: Option<Vec<&str>> = None;
    for (field, values) in filter.clauses() {
        if *field == FieldRef::EventType {
            types = Some(match types {
                None => values.iter().map(String::as_str).collect(),
                Some(ts) => ts
                    .into_iter()
                    .filter(|t| values.iter().any(|v| v == t))
                    .collect(),
            });
        }
    }
    types
}

/// The event types a goal can take (`None`: any). A ratio takes what its filter passes and its
/// numerator or its denominator passes.
fn goal_types(measure: &Measure) -> Option<Vec<&str>> {
    match measure {
        Measure::Simple { filter, .. } => filter_types(filter),
        Measure::Ratio {
            numerator,
            denominator,
            filter,
            ..
        } => {
            let sides = match (filter_types(numerator), filter_types(denominator)) {
                (Some(mut n), Some(d)) => {
                    n.extend(d);
                    Some(n)
                }
                _ => None,
            };
            match (filter_types(filter), sides) {
                (None, sides) => sides,
                (outer, None) => outer,
                (Some(outer), Some(sides)) => {
                    Some(outer.into_iter().filter(|t| sides.contains(t)).collect())
                }
            }
        }
    }
}
