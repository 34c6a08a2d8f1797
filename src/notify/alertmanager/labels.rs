//! Prometheus label names for a goal's group-by fields.
//!
//! A group-by field becomes the label name it is as written if that is a label name
//! (`[a-zA-Z_][a-zA-Z0-9_]*`). Otherwise each character outside `[a-zA-Z0-9_]` becomes `_`, and
//! a name that starts with a digit (or is empty) gets a leading `_`: `attributes.segment` →
//! `attributes_segment`, `2nd-owner` → `_2nd_owner`. A name already taken (by `alertname`,
//! `goal`, `window_start`, a static label, or an earlier field of the same goal) gets the first
//! free suffix `_2`, `_3`, …: fields `goal` and `team-id`, `team_id` give `goal_2`, `team_id`
//! and `team_id_2`. The result depends only on the goal's group-by list and the static labels.

/// The labels every alert has, whatever its group.
pub const RESERVED: [&str; 3] = ["alertname", "goal", "window_start"];

/// Whether `name` matches `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `field` made a label name: characters outside `[a-zA-Z0-9_]` become `_`; a leading digit,
/// or an empty name, gets a `_` in front.
pub fn sanitise(field: &str) -> String {
    let mut out: String = field
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The label names of `fields` (a goal's group-by list, in order), none of them reserved, among
/// `statics` (the static labels' names) or equal to another.
pub fn group_label_names<'a>(
    fields: impl IntoIterator<Item = &'a str>,
    statics: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let mut taken: Vec<String> = RESERVED.iter().map(|s| s.to_string()).collect();
    taken.extend(statics.into_iter().map(str::to_string));
    let mut names = Vec::new();
    for field in fields {
        let base = sanitise(field);
        let name = std::iter::once(base.clone())
            .chain((2..).map(|n| format!("{base}_{n}")))
            .find(|candidate| !taken.contains(candidate))
            .expect("an unbounded sequence has a free name");
        taken.push(name.clone());
        names.push(name);
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_label_names() {
        for ok in ["team_id", "_x", "A9", "__name"] {
            assert!(is_label_name(ok), "{ok}");
        }
        for bad in ["", "9a", "team-id", "attributes.segment", "é"] {
            assert!(!is_label_name(bad), "{bad}");
        }
    }

    #[test]
    fn sanitises_invalid_characters_and_leading_digits() {
        assert_eq!(sanitise("team_id"), "team_id");
        assert_eq!(sanitise("attributes.segment"), "attributes_segment");
        assert_eq!(sanitise("2nd-owner"), "_2nd_owner");
        assert_eq!(sanitise("région"), "r_gion");
        assert_eq!(sanitise(""), "_");
        for field in ["attributes.segment", "2nd-owner", "région", "", "a b"] {
            assert!(is_label_name(&sanitise(field)), "{field}");
        }
    }

    #[test]
    fn resolves_collisions_in_field_order() {
        let names = group_label_names(["goal", "team-id", "team_id", "alertname"], []);
        assert_eq!(names, ["goal_2", "team_id", "team_id_2", "alertname_2"]);
        let names = group_label_names(["env", "env_2", "window_start"], ["env"]);
        assert_eq!(names, ["env_2", "env_2_2", "window_start_2"]);
    }

    #[test]
    fn plain_fields_keep_their_names() {
        assert_eq!(
            group_label_names(["region", "team_id"], ["severity"]),
            ["region", "team_id"]
        );
    }
}
