//! The repository's files, read as text, YAML or TOML, and small helpers over YAML values,
//! paths and ports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use goalpost::goals::GoalSet;
use goalpost::runtime::kafka::RunConfig;
use goalpost::serve::DEFAULT_PORT;
use serde::Deserialize;
use serde_yaml::Value;

pub(crate) type R<T> = Result<T, String>;

/// The repository's files, with some replaced in memory.
#[derive(Clone, Default)]
pub(crate) struct Repo {
    overrides: BTreeMap<String, String>,
}

impl Repo {
    pub(crate) fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// The text of a repository-relative file.
    pub(crate) fn text(&self, rel: &str) -> R<String> {
        if let Some(t) = self.overrides.get(rel) {
            return Ok(t.clone());
        }
        std::fs::read_to_string(Self::root().join(rel))
            .map_err(|e| format!("cannot read {rel}: {e}"))
    }

    pub(crate) fn exists(&self, rel: &str) -> bool {
        self.overrides.contains_key(rel) || Self::root().join(rel).is_file()
    }

    pub(crate) fn yaml(&self, rel: &str) -> R<Value> {
        parse_yaml(&self.text(rel)?).map_err(|e| format!("{rel}: {e}"))
    }

    /// Every YAML document of a file (null documents left out).
    pub(crate) fn yaml_docs(&self, rel: &str) -> R<Vec<Value>> {
        let text = self.text(rel)?;
        let mut docs = Vec::new();
        for de in serde_yaml::Deserializer::from_str(&text) {
            let v = Value::deserialize(de).map_err(|e| format!("{rel}: not YAML: {e}"))?;
            if !v.is_null() {
                docs.push(v);
            }
        }
        Ok(docs)
    }

    /// This repository with `rel`'s text passed through `edit`; panics if nothing changed.
    pub(crate) fn with_edit(&self, rel: &str, edit: impl FnOnce(&str) -> String) -> Repo {
        let before = self.text(rel).unwrap();
        let after = edit(&before);
        assert_ne!(before, after, "the edit of {rel} changed nothing");
        let mut r = self.clone();
        r.overrides.insert(rel.to_string(), after);
        r
    }

    /// Repository-relative names of the files directly in a directory.
    pub(crate) fn list(&self, dir: &str) -> R<Vec<String>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(Self::root().join(dir)).map_err(|e| format!("{dir}: {e}"))? {
            let e = e.map_err(|e| format!("{dir}: {e}"))?;
            if e.path().is_file() {
                out.push(format!("{dir}/{}", e.file_name().to_string_lossy()));
            }
        }
        out.sort();
        Ok(out)
    }
}

pub(crate) fn parse_yaml(text: &str) -> R<Value> {
    serde_yaml::from_str(text).map_err(|e| format!("not YAML: {e}"))
}

/// The value at a dotted path (`spec.template.spec`, numbers index sequences).
pub(crate) fn at<'a>(v: &'a Value, path: &str) -> R<&'a Value> {
    let mut cur = v;
    for part in path.split('.') {
        let next = match part.parse::<usize>() {
            Ok(i) => cur.get(i),
            Err(_) => cur.get(part),
        };
        cur = next.ok_or_else(|| format!("missing `{path}` (no `{part}`)"))?;
    }
    Ok(cur)
}

/// A scalar as text: strings, numbers and booleans.
pub(crate) fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(crate) fn text_at(v: &Value, path: &str) -> R<String> {
    scalar(at(v, path)?).ok_or_else(|| format!("`{path}` is not a scalar"))
}

pub(crate) fn seq<'a>(v: &'a Value, path: &str) -> R<&'a Vec<Value>> {
    at(v, path)?
        .as_sequence()
        .ok_or_else(|| format!("`{path}` is not a list"))
}

/// A mapping of scalars (labels, selectors).
pub(crate) fn string_map(v: &Value, path: &str) -> R<BTreeMap<String, String>> {
    let m = at(v, path)?
        .as_mapping()
        .ok_or_else(|| format!("`{path}` is not a mapping"))?;
    m.iter()
        .map(|(k, v)| match (scalar(k), scalar(v)) {
            (Some(k), Some(v)) => Ok((k, v)),
            _ => Err(format!("`{path}` holds a non-scalar")),
        })
        .collect()
}

/// `dir` joined with a relative path, `.` and `..` resolved; an error when it leaves the repository.
pub(crate) fn normalize(dir: &str, rel: &str) -> R<String> {
    let mut parts: Vec<&str> = if rel.starts_with('/') {
        Vec::new()
    } else {
        dir.split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect()
    };
    for p in rel.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts
                    .pop()
                    .ok_or_else(|| format!("`{rel}` leaves the repository"))?;
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

pub(crate) fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

/// The port of `host:port`.
pub(crate) fn port_of(addr: &str) -> R<u16> {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .ok_or_else(|| format!("`{addr}` has no port"))
}

/// The value of a compose `${VAR:-default}` (or `${VAR-default}`) as it is without `VAR` set.
pub(crate) fn compose_default(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find('}') else {
            out.push_str(&rest[i..]);
            return out;
        };
        let inner = &rest[i + 2..i + j];
        if let Some((_, d)) = inner.split_once(":-").or_else(|| inner.split_once('-')) {
            out.push_str(d);
        }
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    out
}

pub(crate) fn ensure(cond: bool, msg: impl FnOnce() -> String) -> R<()> {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

/// Parses a goalpost config, checks its HTTP side and loads the goal file it names through
/// `goal_text` (given the goal path as goalpost resolves it). Returns the config.
pub(crate) fn check_run_config(
    what: &str,
    text: &str,
    path: &str,
    goal_text: impl FnOnce(&Path) -> R<String>,
) -> R<(RunConfig, GoalSet)> {
    let cfg = RunConfig::from_toml(text, Path::new(path)).map_err(|e| format!("{what}: {e}"))?;
    ensure(cfg.http.enabled, || {
        format!("{what}: http.enabled is false")
    })?;
    let addr: std::net::SocketAddr = cfg
        .http
        .listen
        .parse()
        .map_err(|e| format!("{what}: http.listen: {e}"))?;
    ensure(addr.port() == DEFAULT_PORT, || {
        format!("{what}: http.listen port {} != {DEFAULT_PORT}", addr.port())
    })?;
    ensure(!addr.ip().is_loopback(), || {
        format!("{what}: http.listen {addr} is loopback: not reachable from other containers")
    })?;
    ensure(
        cfg.http.token_env.is_some() || cfg.http.token_file.is_some(),
        || format!("{what}: no bearer token (http.token_env or http.token_file)"),
    )?;
    ensure(!cfg.http.allow_unauthenticated, || {
        format!("{what}: http.allow_unauthenticated is true")
    })?;
    let goals = GoalSet::from_toml(&goal_text(&cfg.goals)?)
        .map_err(|e| format!("{what}: goal file {}: {e}", cfg.goals.display()))?;
    for id in &cfg.metrics.progress_gauges {
        ensure(goals.get(id).is_some(), || {
            format!("{what}: metrics.progress_gauges names `{id}`, not a goal of the goal file")
        })?;
    }
    Ok((cfg, goals))
}
