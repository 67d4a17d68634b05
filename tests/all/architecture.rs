//! The host's boundaries, checked: which crate may depend on what (only the store speaks
//! Redis, only the runtime touches wasmtime, only the sandbox calls into libc; `jobctl`
//! links no wasmtime; no dependency points up), and that no two modules of a crate use each
//! other, directly or in a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// `cargo metadata` of the workspace.
fn metadata() -> Value {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(crate::common::workspace().join("Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The host's crates (those under `host/`) by name, with their normal (non-dev, non-build)
/// direct dependencies' names.
fn host_crates(meta: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let host = crate::common::workspace().join("host");
    let host = host.canonicalize().unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| Path::new(p["manifest_path"].as_str().unwrap()).starts_with(&host))
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .collect();
            (p["name"].as_str().unwrap().to_owned(), deps)
        })
        .collect()
}

/// The crates that depend on `dependency` directly.
fn dependents(crates: &BTreeMap<String, BTreeSet<String>>, dependency: &str) -> Vec<String> {
    let with = crates.iter().filter(|(_, deps)| deps.contains(dependency));
    with.map(|(name, _)| name.clone()).collect()
}

#[test]
fn only_one_crate_speaks_redis_one_postgresql_one_touches_wasmtime_and_one_calls_libc() {
    let crates = host_crates(&metadata());
    assert!(crates.len() >= 7, "{crates:?}");
    assert_eq!(dependents(&crates, "redis"), ["jobhost-store"]);
    assert_eq!(dependents(&crates, "tokio-postgres"), ["jobhost-history"]);
    for wasmtime in ["wasmtime", "wasmtime-wasi", "wasmtime-wasi-http"] {
        assert_eq!(
            dependents(&crates, wasmtime),
            ["jobhost-runtime"],
            "{wasmtime}"
        );
    }
    assert_eq!(dependents(&crates, "libc"), ["jobhost-sandbox"]);
}

#[test]
fn no_dependency_points_up() {
    let crates = host_crates(&metadata());
    // Each crate and the host crates it may use: the lower layers only.
    let allowed: &[(&str, &[&str])] = &[
        ("jobhost-proto", &[]),
        ("jobhost-config", &[]),
        ("jobhost-sandbox", &[]),
        ("jobhost-store", &["jobhost-config"]),
        ("jobhost-runtime", &["jobhost-config", "jobhost-sandbox"]),
        ("jobhost-history", &["jobhost-config", "jobhost-store"]),
        ("jobctl", &["jobhost-proto"]),
        (
            "jobhost",
            &[
                "jobhost-proto",
                "jobhost-config",
                "jobhost-store",
                "jobhost-sandbox",
                "jobhost-runtime",
                "jobhost-history",
            ],
        ),
    ];
    for (name, deps) in &crates {
        let (_, may) = allowed
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name}: a new host crate: say here what it may use"));
        let host_deps: Vec<&String> = deps.iter().filter(|d| crates.contains_key(*d)).collect();
        for dep in host_deps {
            assert!(
                may.contains(&dep.as_str()),
                "{name} must not depend on {dep}"
            );
        }
    }
}

#[test]
fn jobctl_links_no_wasmtime() {
    let meta = metadata();
    let resolve = &meta["resolve"]["nodes"];
    let nodes: BTreeMap<&str, &Value> = resolve
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let jobctl = nodes
        .keys()
        .find(|id| id.contains("host/jobctl"))
        .expect("jobctl in the resolve graph");
    // Everything jobctl links: its normal dependencies, transitively.
    let mut seen = BTreeSet::new();
    let mut todo = vec![*jobctl];
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            if normal {
                todo.push(dep["pkg"].as_str().unwrap());
            }
        }
    }
    let linked: Vec<&&str> = seen
        .iter()
        .filter(|id| id.contains("wasmtime") || id.contains("cranelift") || id.contains("redis"))
        .collect();
    assert!(linked.is_empty(), "jobctl links {linked:?}");
    assert!(seen.iter().any(|id| id.contains("tonic")), "{seen:?}");
}

/// One crate's modules: each module path (`api::http::jobs`) with the module paths its
/// file refers to through `crate::` and `super::`.
fn module_uses(
    src: &Path,
    root_file: &str,
    skip: Option<&Path>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    collect_rs(src, skip, &mut files);
    let module_of = |file: &Path| -> Vec<String> {
        let rel = file.strip_prefix(src).unwrap();
        let mut parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
            .collect();
        if parts.last().is_some_and(|p| p == "mod" || p == root_file) {
            parts.pop();
        }
        parts
    };
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(f)).collect();
    let mut uses = BTreeMap::new();
    for file in &files {
        let here = module_of(file);
        let text = strip_comments(&std::fs::read_to_string(file).unwrap());
        let mut targets = BTreeSet::new();
        for path in referenced_paths(&text) {
            let mut absolute = match path.first().map(String::as_str) {
                Some("crate") => Vec::new(),
                Some("super") => here.clone(),
                _ => continue,
            };
            let mut rest = &path[1..];
            if path[0] == "super" {
                absolute.pop();
            }
            while rest.first().is_some_and(|p| p == "super") {
                absolute.pop();
                rest = &rest[1..];
            }
            // The longest prefix that is a module of this crate.
            let mut target = absolute.clone();
            for part in rest {
                let mut next = target.clone();
                next.push(part.clone());
                if !modules.contains(&next) {
                    break;
                }
                target = next;
            }
            targets.insert(target.join("::"));
        }
        uses.insert(here.join("::"), targets);
    }
    uses
}

fn collect_rs(dir: &Path, skip: Option<&Path>, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if Some(path.as_path()) == skip {
            continue;
        }
        if path.is_dir() {
            collect_rs(&path, skip, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `text` without `//` comments (doc links name modules without using them).
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::a::b` or `super::a` path in `text`, a `{x, y}` group giving one each.
fn referenced_paths(text: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = text[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            if at > 0 && (ident(bytes[at - 1]) || bytes[at - 1] == b':') {
                continue;
            }
            let mut parts = vec![start.trim_end_matches(':').to_owned()];
            let mut j = from;
            loop {
                if text[j..].starts_with('{') {
                    let close = text[j..].find('}').map_or(text.len(), |c| j + c);
                    for item in text[j + 1..close].split(',') {
                        let first = item.trim().split("::").next().unwrap_or("").trim();
                        let mut grouped = parts.clone();
                        if !first.is_empty() && first != "self" {
                            grouped.push(first.to_owned());
                        }
                        paths.push(grouped);
                    }
                    parts.clear();
                    break;
                }
                let end = text[j..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .map_or(text.len(), |e| j + e);
                if end > j {
                    parts.push(text[j..end].to_owned());
                }
                if text[end..].starts_with("::") {
                    j = end + 2;
                    continue;
                }
                break;
            }
            if !parts.is_empty() {
                paths.push(parts);
            }
        }
    }
    paths
}

/// The first circle among sibling modules, if any: each module's uses count for the child
/// of their common parent they fall in; a module's use of its own ancestors or descendants
/// is not an edge.
fn sibling_cycle(uses: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    let split = |m: &str| -> Vec<String> {
        m.split("::")
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, targets) in uses {
        let from = split(from);
        for to in targets {
            let to = split(to);
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common == from.len() || common == to.len() {
                continue; // ancestor or descendant
            }
            let a = from[..=common].join("::");
            let b = to[..=common].join("::");
            edges.entry(a).or_default().insert(b);
        }
    }
    // Depth-first search for a back edge.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, &edges, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn no_two_modules_use_each_other() {
    let host = crate::common::workspace().join("host");
    let node_bin = host.join("node/src/bin");
    let roots: Vec<(PathBuf, &str, Option<&Path>)> = vec![
        (host.join("proto/src"), "lib", None),
        (host.join("config/src"), "lib", None),
        (host.join("store/src"), "lib", None),
        (host.join("sandbox/src"), "lib", None),
        (host.join("runtime/src"), "lib", None),
        (host.join("node/src"), "lib", Some(node_bin.as_path())),
        (host.join("node/src/bin/jobhost"), "main", None),
        (host.join("jobctl/src"), "main", None),
    ];
    let mut cycles = Vec::new();
    for (src, root_file, skip) in &roots {
        let uses = module_uses(src, root_file, *skip);
        assert!(
            uses.len() > 1 || src.ends_with("proto/src"),
            "{}: {uses:?}",
            src.display()
        );
        let mut uses = uses;
        // Report every circle, not just the first: break each found circle's last use.
        while let Some(cycle) = sibling_cycle(&uses) {
            cycles.push(format!("{}: {}", src.display(), cycle.join(" -> ")));
            let (from, to) = (&cycle[cycle.len() - 2], &cycle[cycle.len() - 1]);
            for (module, targets) in uses.iter_mut() {
                if module == from || module.starts_with(&format!("{from}::")) {
                    targets.retain(|t| t != to && !t.starts_with(&format!("{to}::")));
                }
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "modules that use each other:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_cycle_check_finds_a_circle_and_passes_a_tree() {
    let uses = |pairs: &[(&str, &[&str])]| -> BTreeMap<String, BTreeSet<String>> {
        pairs
            .iter()
            .map(|(m, t)| (m.to_string(), t.iter().map(|s| s.to_string()).collect()))
            .collect()
    };
    // Siblings through a descendant: api::http::rest uses api::grpc, api::grpc uses api::http.
    let circle = uses(&[
        ("api::http::rest", &["api::grpc"]),
        ("api::grpc::scheduler", &["api::http"]),
    ]);
    assert_eq!(
        sibling_cycle(&circle),
        Some(vec![
            "api::grpc".into(),
            "api::http".into(),
            "api::grpc".into()
        ])
    );
    // A parent and its children may use each other; siblings one way.
    let tree = uses(&[
        ("jd", &["jd::labels"]),
        ("jd::probe", &["jd", "store"]),
        ("api::http", &["api::grpc", "jd"]),
    ]);
    assert_eq!(sibling_cycle(&tree), None);
    let paths = referenced_paths("use super::{jd, jobs};\nlet x = crate::api::grpc::Scheduler;");
    assert!(
        paths.contains(&vec!["super".into(), "jd".into()]),
        "{paths:?}"
    );
    assert!(
        paths.contains(&vec![
            "crate".into(),
            "api".into(),
            "grpc".into(),
            "Scheduler".into()
        ]),
        "{paths:?}"
    );
}
