//! Loading the rosters of a goal file: reads each `[rosters.NAME]` member file once and builds, for
//! every goal that lists a roster, the roster projected onto that goal's `group_by`.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::path::Path;

use thiserror::Error;

use crate::engine::{Roster, RosterError};
use crate::goals::{Goal, GoalSet, RosterDecl, RosterFormat};

/// Which runtime the rosters are loaded for: it decides where members come from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RosterSource {
    /// `replay`: every roster a goal lists needs a `file`.
    Replay,
    /// `run` on Kafka: rosters with a `topic` start empty (the Kafka runtime fills them from the
    /// topic); the others are loaded from their file.
    Kafka,
    /// `check`: every `file` is loaded; a roster with only a `topic` starts empty.
    Check,
}

/// Why the rosters of a goal file could not be loaded.
#[derive(Debug, Error)]
pub enum RosterLoadError {
    /// `replay` was asked to use a roster that only has a topic.
    #[error(
        "roster `{roster}` has no `file` (it reads topic `{topic}` on Kafka); replay needs a file"
    )]
    NoFile {
        /// The roster's name.
        roster: String,
        /// Its topic.
        topic: String,
    },
    /// The member file could not be read.
    #[error("roster `{roster}`: cannot read member file `{path}`: {cause}")]
    Read {
        /// The roster's name.
        roster: String,
        /// The file's path, resolved against the goal file's directory.
        path: String,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The member file was refused for one goal listing the roster.
    #[error("roster `{roster}`, file `{file}`, for goal `{goal}`: {cause}")]
    Members {
        /// The roster's name.
        roster: String,
        /// The file as the goal file names it.
        file: String,
        /// The goal whose `group_by` the members were read for.
        goal: String,
        /// What is wrong, and where in the file (in the message, so not also a `source()`).
        cause: Box<RosterError>,
    },
}

/// The roster of each goal, in goal order (`None` for goals without one), read for `source`.
/// Relative `file` paths are relative to `base_dir`, the goal file's directory.
pub fn load_rosters(
    goals: &GoalSet,
    base_dir: &Path,
    source: RosterSource,
) -> Result<Vec<Option<Roster>>, RosterLoadError> {
    let mut texts: HashMap<usize, Option<String>> = HashMap::new();
    let mut out = Vec::with_capacity(goals.goals.len());
    for goal in &goals.goals {
        let Some(index) = goal.roster else {
            out.push(None);
            continue;
        };
        let decl = &goals.rosters[index];
        if let Entry::Vacant(slot) = texts.entry(index) {
            slot.insert(read_members(decl, base_dir, source)?);
        }
        out.push(Some(build(goal, decl, texts[&index].as_deref())?));
    }
    Ok(out)
}

/// The directory relative roster `file` paths start from: that of the goal file at `goals_path`.
pub fn base_dir(goals_path: &Path) -> &Path {
    goals_path.parent().unwrap_or(Path::new("."))
}

/// One line per declared roster for `check`: where its members come from and how many rows its
/// file has. `loaded` is what [`load_rosters`] returned for `goals`.
pub fn describe_rosters(goals: &GoalSet, loaded: &[Option<Roster>]) -> Vec<String> {
    let mut lines = Vec::with_capacity(goals.rosters.len());
    for (index, decl) in goals.rosters.iter().enumerate() {
        let roster = goals
            .goals
            .iter()
            .zip(loaded)
            .find_map(|(g, r)| r.as_ref().filter(|_| g.roster == Some(index)));
        let from = match (&decl.file, &decl.topic, roster) {
            (_, _, None) => "listed by no goal".to_string(),
            (Some((file, _)), Some(topic), Some(r)) => {
                format!("{} members from {file} (on Kafka: topic {topic})", r.rows())
            }
            (Some((file, _)), None, Some(r)) => format!("{} members from {file}", r.rows()),
            (None, Some(topic), Some(_)) => format!("members from topic {topic} on Kafka"),
            (None, None, Some(_)) => "no file and no topic".to_string(),
        };
        lines.push(format!("roster `{}`: {from}", decl.name));
    }
    lines
}

/// The text of a roster's member file, or `None` when the roster starts empty for `source`.
fn read_members(
    decl: &RosterDecl,
    base_dir: &Path,
    source: RosterSource,
) -> Result<Option<String>, RosterLoadError> {
    let file = match (&decl.file, &decl.topic, source) {
        (_, Some(_), RosterSource::Kafka) => return Ok(None),
        (None, Some(topic), RosterSource::Replay) => {
            return Err(RosterLoadError::NoFile {
                roster: decl.name.to_string(),
                topic: topic.clone(),
            })
        }
        (None, _, _) => return Ok(None),
        (Some((file, _)), _, _) => file,
    };
    let path = base_dir.join(file);
    std::fs::read_to_string(&path)
        .map(Some)
        .map_err(|cause| RosterLoadError::Read {
            roster: decl.name.to_string(),
            path: path.display().to_string(),
            cause,
        })
}

/// The roster of `decl` for `goal`: its members from `text`, or empty without one.
fn build(goal: &Goal, decl: &RosterDecl, text: Option<&str>) -> Result<Roster, RosterLoadError> {
    let group_by: Vec<&str> = goal.group_by_names.iter().map(|n| &**n).collect();
    let columns: Vec<(&str, &str)> = decl
        .columns
        .iter()
        .filter(|(field, _)| group_by.contains(&field.as_str()))
        .map(|(field, column)| (field.as_str(), column.as_str()))
        .collect();
    let read = match (text, &decl.file) {
        (Some(text), Some((_, RosterFormat::Csv))) => Roster::from_csv(text, &group_by, &columns),
        (Some(text), Some((_, RosterFormat::JsonLines))) => {
            Roster::from_json_lines(text, &group_by, &columns)
        }
        _ => Roster::new(&group_by, &columns),
    };
    read.map_err(|cause| RosterLoadError::Members {
        roster: decl.name.to_string(),
        file: decl.file.as_ref().map_or("", |(f, _)| f).to_string(),
        goal: goal.id.to_string(),
        cause: Box::new(cause),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The directory of the CRM test data, which holds `sales_teams.csv`.
    fn crm_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/crm")
    }

    /// A goal file with roster `reps` (`decl` keys) and goals grouped by `rep_id` and `region`.
    fn goal_set(decl: &str) -> GoalSet {
        GoalSet::from_toml(&format!(
            "[rosters.reps]\n{decl}\n\
             [[goals]]\nid = \"per-rep\"\nmetric = \"count\"\ngroup_by = [\"rep_id\"]\n\
             window = {{ calendar = \"quarter\" }}\ntarget = 5\nroster = \"reps\"\n\
             [[goals]]\nid = \"plain\"\nmetric = \"count\"\nwindow = {{ tumbling = \"1d\" }}\ntarget = 5\n\
             [[goals]]\nid = \"per-office\"\nmetric = \"count\"\ngroup_by = [\"region\"]\n\
             window = {{ calendar = \"quarter\" }}\ntarget = 5\nroster = \"reps\"\n"
        ))
        .unwrap()
    }

    const COLUMNS: &str = "columns = { rep_id = \"sales_agent\", region = \"regional_office\" }";

    #[test]
    fn each_goal_gets_the_roster_projected_onto_its_group_by() {
        let goals = goal_set(&format!("file = \"sales_teams.csv\"\n{COLUMNS}"));
        let loaded = load_rosters(&goals, &crm_dir(), RosterSource::Replay).unwrap();
        let sizes: Vec<Option<usize>> =
            loaded.iter().map(|r| r.as_ref().map(Roster::len)).collect();
        assert_eq!(sizes, [Some(35), None, Some(3)]);
        assert_eq!(
            describe_rosters(&goals, &loaded),
            ["roster `reps`: 35 members from sales_teams.csv"]
        );
    }

    #[test]
    fn topics_decide_by_source() {
        let goals = goal_set(&format!("topic = \"crm.reps\"\n{COLUMNS}"));
        let err = load_rosters(&goals, Path::new("."), RosterSource::Replay).unwrap_err();
        assert_eq!(
            err.to_string(),
            "roster `reps` has no `file` (it reads topic `crm.reps` on Kafka); replay needs a file"
        );
        for source in [RosterSource::Kafka, RosterSource::Check] {
            let loaded = load_rosters(&goals, Path::new("."), source).unwrap();
            assert!(loaded[0].as_ref().unwrap().is_empty());
        }
        let both = goal_set(&format!(
            "file = \"missing.csv\"\ntopic = \"crm.reps\"\n{COLUMNS}"
        ));
        let kafka = load_rosters(&both, Path::new("."), RosterSource::Kafka).unwrap();
        assert!(kafka[2].as_ref().unwrap().is_empty());
        let err = load_rosters(&both, Path::new("."), RosterSource::Check).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("roster `reps`: cannot read member file `./missing.csv`: "),
            "{err}"
        );
    }

    #[test]
    fn member_errors_name_roster_file_goal_and_line() {
        let goals =
            goal_set("file = \"sales_teams.csv\"\ncolumns = { region = \"regional_office\" }");
        let err = load_rosters(&goals, &crm_dir(), RosterSource::Replay).unwrap_err();
        assert_eq!(
            err.to_string(),
            "roster `reps`, file `sales_teams.csv`, for goal `per-rep`: roster line 1 has no \
             column `rep_id` for group_by field `rep_id` (columns found: sales_agent, manager, \
             regional_office)"
        );
    }
}
