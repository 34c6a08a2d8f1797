//! The goals' rosters for `run` that are read from files, relative to the goal file's
//! directory. A roster with a `topic` is read from the topic instead (see `roster_topic`).

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::engine::{Roster, RosterError};
use crate::goals::{GoalSet, RosterFormat};

/// Why the rosters of a goal file could not be loaded for `run`.
#[derive(Debug, Error)]
pub enum RosterLoadError {
    /// The roster file could not be read.
    #[error("roster `{roster}`: cannot read {}", path.display())]
    Read {
        /// The roster's name.
        roster: String,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        cause: std::io::Error,
    },
    /// The roster file, or its mapping onto a goal's `group_by`, is invalid.
    #[error("roster `{roster}` ({}) for goal `{goal}`", path.display())]
    Invalid {
        /// The roster's name.
        roster: String,
        /// The file.
        path: PathBuf,
        /// The goal listing it.
        goal: String,
        /// What is wrong, and where.
        #[source]
        cause: Box<RosterError>,
    },
}

/// The rosters of `goals` read from files, indexed by goal (`None` for a goal without one, or
/// whose roster reads a topic), each file read once and projected onto each goal's `group_by`
/// with the `columns` of its fields.
pub fn load_file_rosters(
    goals: &GoalSet,
    base_dir: &Path,
) -> Result<Vec<Option<Roster>>, RosterLoadError> {
    let mut texts: Vec<Option<(PathBuf, String)>> = vec![None; goals.rosters.len()];
    let mut out = Vec::with_capacity(goals.goals.len());
    for goal in &goals.goals {
        let Some(index) = goal.roster else {
            out.push(None);
            continue;
        };
        let decl = &goals.rosters[index];
        let Some((file, format)) = decl.file.as_ref().filter(|_| decl.topic.is_none()) else {
            out.push(None);
            continue;
        };
        if texts[index].is_none() {
            let path = base_dir.join(file);
            let text = std::fs::read_to_string(&path).map_err(|cause| RosterLoadError::Read {
                roster: decl.name.to_string(),
                path: path.clone(),
                cause,
            })?;
            texts[index] = Some((path, text));
        }
        let (path, text) = texts[index].as_ref().expect("read above");
        let group_by: Vec<&str> = goal.group_by_names.iter().map(|n| &**n).collect();
        let columns: Vec<(&str, &str)> = decl
            .columns
            .iter()
            .filter(|(field, _)| group_by.contains(&field.as_str()))
            .map(|(f, c)| (f.as_str(), c.as_str()))
            .collect();
        let roster = match format {
            RosterFormat::Csv => Roster::from_csv(text, &group_by, &columns),
            RosterFormat::JsonLines => Roster::from_json_lines(text, &group_by, &columns),
        };
        let roster = roster.map_err(|cause| RosterLoadError::Invalid {
            roster: decl.name.to_string(),
            path: path.clone(),
            goal: goal.id.to_string(),
            cause: Box::new(cause),
        })?;
        out.push(Some(roster));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goals::RosterDecl;

    const GOALS: &str = r#"
[[goals]]
id = "rep-wins"
metric = "count"
filter = { event_type = "deal_won" }
group_by = ["rep_id"]
window = { tumbling = "1d" }
target = 3

[[goals]]
id = "all-wins"
metric = "count"
filter = { event_type = "deal_won" }
window = { tumbling = "1d" }
target = 3
"#;

    fn goals(file: Option<&str>, topic: Option<&str>) -> GoalSet {
        let mut set = GoalSet::from_toml(GOALS).unwrap();
        set.rosters.push(RosterDecl {
            name: "reps".into(),
            file: file.map(|f| (f.to_string(), RosterFormat::Csv)),
            topic: topic.map(str::to_string),
            columns: vec![("rep_id".into(), "sales_agent".into())],
            strict: false,
        });
        set.goals[0].roster = Some(0);
        set
    }

    #[test]
    fn file_rosters_load_per_goal_and_errors_name_roster_file_and_line() {
        let dir = std::env::temp_dir().join(format!("goalpost-rosters-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("reps.csv"),
            "sales_agent,office\nAnna,East\nBo,West\n",
        )
        .unwrap();
        std::fs::write(dir.join("bad.csv"), "sales_agent\nAnna\nAnna,x\n").unwrap();
        let rosters = load_file_rosters(&goals(Some("reps.csv"), None), &dir).unwrap();
        assert_eq!(rosters.len(), 2);
        assert_eq!(rosters[0].as_ref().map(Roster::len), Some(2));
        assert!(rosters[1].is_none());

        let e = load_file_rosters(&goals(Some("bad.csv"), None), &dir).unwrap_err();
        let text = format!("{e}: {}", std::error::Error::source(&e).unwrap());
        assert!(
            text.contains("roster `reps`") && text.contains("bad.csv"),
            "{text}"
        );
        assert!(text.contains("line 3"), "{text}");
        let e = load_file_rosters(&goals(Some("missing.csv"), None), &dir).unwrap_err();
        assert!(e.to_string().contains("missing.csv"), "{e}");
        // Read from its topic, not its file.
        let topic = goals(Some("missing.csv"), Some("reps-topic"));
        assert_eq!(load_file_rosters(&topic, &dir).unwrap(), vec![None, None]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
