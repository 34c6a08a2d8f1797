//! The Dockerfile: how it builds and runs goalpost, and the files the binary embeds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use goalpost::notify::NotifyConfig;
use goalpost::serve::DEFAULT_PORT;

use crate::repo::*;
use crate::DOCKERFILE;

/// Instructions of a Dockerfile: (KEYWORD, arguments), continuation lines joined.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        let (k, rest) = cur
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((cur.trim(), ""));
        out.push((
            k.to_ascii_uppercase(),
            rest.split_whitespace().collect::<Vec<_>>().join(" "),
        ));
        cur.clear();
    }
    out
}

/// `include_str!`/`include_bytes!` targets of the sources outside test code, repository-relative.
fn embedded_files(repo: &Repo) -> R<Vec<String>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let root = Repo::root();
    let mut files = Vec::new();
    walk(&root.join("src"), &mut files);
    let mut out = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if rel.ends_with("/tests.rs") {
            continue;
        }
        let text = repo.text(&rel)?;
        // Test modules at the end of a file may embed test data that a release build never reads.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        for mac in ["include_str!(\"", "include_bytes!(\""] {
            for (i, _) in text.match_indices(mac) {
                let lit = &text[i + mac.len()..];
                let lit = &lit[..lit.find('"').unwrap_or(0)];
                out.push(normalize(parent(&rel), lit)?);
            }
        }
    }
    Ok(out)
}

pub(crate) fn check_dockerfile(repo: &Repo) -> R<()> {
    let text = repo.text(DOCKERFILE)?;
    let ins = dockerfile_instructions(&text);
    // ARG defaults before the first FROM, for the base images.
    let mut args = BTreeMap::new();
    for (k, v) in ins.iter().take_while(|(k, _)| k != "FROM") {
        if k == "ARG" {
            if let Some((n, d)) = v.split_once('=') {
                args.insert(n.to_string(), d.to_string());
            }
        }
    }
    let subst = |s: &str| {
        let mut s = s.to_string();
        for (n, d) in &args {
            s = s
                .replace(&format!("${{{n}}}"), d)
                .replace(&format!("${n}"), d);
        }
        s
    };
    let stages: Vec<usize> = ins
        .iter()
        .enumerate()
        .filter(|(_, (k, _))| k == "FROM")
        .map(|(i, _)| i)
        .collect();
    ensure(stages.len() >= 2, || {
        format!("{DOCKERFILE}: not a multi-stage build")
    })?;
    let build_image = subst(&ins[stages[0]].1);
    let build_image = build_image.split_whitespace().next().unwrap_or_default();
    ensure(build_image.starts_with("rust:"), || {
        format!("{DOCKERFILE}: builds on `{build_image}`, not the Rust image")
    })?;
    let last = *stages.last().unwrap();
    let runtime_image = subst(ins[last].1.split_whitespace().next().unwrap_or_default());
    ensure(runtime_image == "debian:bookworm-slim", || {
        format!("{DOCKERFILE}: runs on `{runtime_image}`, not debian:bookworm-slim")
    })?;
    let build = &ins[stages[0]..last];
    let runtime = &ins[last..];

    ensure(
        build.iter().any(|(k, v)| {
            k == "RUN"
                && v.contains("cargo build")
                && v.contains("--release")
                && v.contains("--locked")
        }),
        || format!("{DOCKERFILE}: no `cargo build --release --locked`"),
    )?;
    let entry = runtime
        .iter()
        .rev()
        .find(|(k, _)| k == "ENTRYPOINT")
        .map(|(_, v)| v.as_str());
    let entry: Option<Vec<String>> = entry.and_then(|e| serde_json::from_str(e).ok());
    ensure(entry == Some(vec!["goalpost".to_string()]), || {
        format!("{DOCKERFILE}: ENTRYPOINT is {entry:?}, not [\"goalpost\"]")
    })?;
    let exposed: Vec<String> = runtime
        .iter()
        .filter(|(k, _)| k == "EXPOSE")
        .flat_map(|(_, v)| {
            v.split_whitespace()
                .map(|p| p.split('/').next().unwrap_or_default().to_string())
        })
        .collect();
    let notify_port = port_of(&NotifyConfig::default().listen.to_string())?;
    for port in [DEFAULT_PORT, notify_port] {
        ensure(exposed.contains(&port.to_string()), || {
            format!("{DOCKERFILE}: EXPOSE {exposed:?} lacks {port}")
        })?;
    }
    let user = runtime
        .iter()
        .rev()
        .find(|(k, _)| k == "USER")
        .map(|(_, v)| v.clone());
    let user_name = user
        .as_deref()
        .map(|u| u.split(':').next().unwrap_or_default());
    ensure(user_name.is_some_and(|u| u != "root" && u != "0"), || {
        format!("{DOCKERFILE}: the runtime stage runs as {user:?}, not a non-root user")
    })?;
    ensure(
        runtime.iter().any(|(k, v)| {
            k == "COPY" && v.starts_with("--from=") && v.ends_with("/usr/local/bin/goalpost")
        }),
        || format!("{DOCKERFILE}: the binary is not copied to /usr/local/bin/goalpost"),
    )?;
    ensure(
        runtime
            .iter()
            .any(|(k, v)| k == "RUN" && v.contains("ca-certificates") && v.contains("libssl3")),
        || format!("{DOCKERFILE}: the runtime stage lacks ca-certificates or libssl3"),
    )?;

    // The build stage copies every file the build reads.
    let sources: Vec<String> = build
        .iter()
        .filter(|(k, v)| k == "COPY" && !v.starts_with("--from"))
        .flat_map(|(_, v)| {
            let words: Vec<&str> = v
                .split_whitespace()
                .filter(|w| !w.starts_with("--"))
                .collect();
            words[..words.len().saturating_sub(1)]
                .iter()
                .map(|w| normalize("", w))
                .collect::<Vec<_>>()
        })
        .collect::<R<_>>()?;
    let copied = |path: &str| {
        sources
            .iter()
            .any(|s| s.is_empty() || s == path || path.starts_with(&format!("{s}/")))
    };
    let manifest: toml::Table =
        toml::from_str(&repo.text("Cargo.toml")?).map_err(|e| format!("Cargo.toml: {e}"))?;
    let mut needed = vec!["Cargo.toml".to_string(), "Cargo.lock".to_string()];
    if repo.exists("build.rs") {
        needed.push("build.rs".into());
    }
    if let Some(p) = manifest
        .get("lib")
        .and_then(|l| l.get("path"))
        .and_then(|p| p.as_str())
    {
        needed.push(normalize("", p)?);
    }
    for (section, dir) in [("bin", "src/bin"), ("bench", "benches")] {
        for t in manifest
            .get(section)
            .and_then(|b| b.as_array())
            .into_iter()
            .flatten()
        {
            let name = t.get("name").and_then(|n| n.as_str()).unwrap_or_default();
            let path = match t.get("path").and_then(|p| p.as_str()) {
                Some(p) => normalize("", p)?,
                None => format!("{dir}/{name}.rs"),
            };
            needed.push(path);
        }
    }
    needed.extend(embedded_files(repo)?);
    let build_rs = repo.text("build.rs").unwrap_or_default();
    if build_rs.contains("\"proto\"") {
        needed.push("proto".into());
    }
    let missing: Vec<&String> = needed.iter().filter(|p| !copied(p)).collect();
    ensure(missing.is_empty(), || {
        format!("{DOCKERFILE}: the build stage does not COPY {missing:?} (copies {sources:?})")
    })
}
