//! The documentation kept true: `docs/configuration.md` is generated from the commented
//! example configuration (`examples/jobhost.toml`), and that file names every key of every
//! configuration section and every environment variable the node reads.
//!
//! After changing the example, regenerate the reference with `just docs`
//! (`JOBHOST_BLESS=1` on this test).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::common::workspace;

/// One key of the example: its section (`runtime`, `plugins.<id>`, ...), name, value, and
/// the comment that describes it.
#[derive(Debug, Clone, PartialEq)]
struct Key {
    name: String,
    value: String,
    /// Commented out in the example: unset by default (or, in an example section, only an
    /// example).
    commented: bool,
    description: String,
    /// The first key of the group this one shares its description with.
    see: Option<String>,
}

/// One section of the example: `[name]`, or a commented `# [name]` showing a section the
/// file does not set (an example).
#[derive(Debug, Clone, PartialEq)]
struct Section {
    name: String,
    example: bool,
    intro: String,
    keys: Vec<Key>,
    notes: Vec<String>,
}

/// The example's header (before the first section) and its sections, in order.
fn parse(text: &str) -> (String, Vec<Section>) {
    let mut header = String::new();
    let mut sections: Vec<Section> = Vec::new();
    let mut comment: Vec<String> = Vec::new();
    // The first key of the last group and its description, shared by keys that follow
    // with no comment of their own (`rate_limit_per_sec`, `rate_limit_burst`).
    let mut last_description: Option<(String, String)> = None;
    let flush_note =
        |comment: &mut Vec<String>, sections: &mut Vec<Section>, header: &mut String| {
            if comment.is_empty() {
                return;
            }
            let text = comment.join(" ");
            match sections.last_mut() {
                Some(section) => section.notes.push(text),
                None => *header = text,
            }
            comment.clear();
        };
    for raw in text.lines() {
        let line = raw.trim_end();
        let (commented, body) = match line.strip_prefix('#') {
            Some(rest) => (true, rest.strip_prefix(' ').unwrap_or(rest)),
            None => (false, line),
        };
        if line.is_empty() {
            flush_note(&mut comment, &mut sections, &mut header);
            last_description = None;
        } else if let Some(name) = section_header(body) {
            sections.push(Section {
                name: name.to_owned(),
                example: commented,
                intro: comment.join(" "),
                keys: Vec::new(),
                notes: Vec::new(),
            });
            comment.clear();
            last_description = None;
        } else if let Some((name, value, inline)) = key_line(body) {
            let (description, see) = match (&last_description, comment.is_empty()) {
                (Some((first, text)), true) => (text.clone(), Some(first.clone())),
                _ => (comment.join(" "), None),
            };
            comment.clear();
            if see.is_none() && !description.is_empty() {
                last_description = Some((name.to_owned(), description.clone()));
            }
            // An inline comment is the key's own, never its group's.
            let description = match inline {
                Some(inline) if description.is_empty() || see.is_some() => inline.to_owned(),
                Some(inline) => format!("{description} {inline}"),
                None => description,
            };
            if let Some(section) = sections.last_mut() {
                section.keys.push(Key {
                    name: name.to_owned(),
                    value: value.to_owned(),
                    commented,
                    description,
                    see,
                });
            }
        } else if commented {
            if last_description.take().is_some() {
                comment.clear();
            }
            comment.push(body.trim().to_owned());
        }
    }
    flush_note(&mut comment, &mut sections, &mut header);
    (header, sections)
}

/// `name` of a `[name]` line.
fn section_header(line: &str) -> Option<&str> {
    let name = line.strip_prefix('[')?.strip_suffix(']')?;
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-<>".contains(c));
    ok.then_some(name)
}

/// `(key, value, inline comment)` of a `key = value  # comment` line.
fn key_line(line: &str) -> Option<(&str, &str, Option<&str>)> {
    let (key, rest) = line.split_once(" = ")?;
    let key_ok = !key.is_empty()
        && (key.starts_with('"') && key.ends_with('"')
            || key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    if !key_ok {
        return None;
    }
    // An inline comment starts at a `#` outside a string.
    let mut in_string = false;
    for (i, c) in rest.char_indices() {
        match c {
            '"' => in_string = !in_string,
            '#' if !in_string => {
                return Some((key, rest[..i].trim(), Some(rest[i + 1..].trim())));
            }
            _ => {}
        }
    }
    Some((key, rest.trim(), None))
}

/// The environment variables and flags a description names in its `(JOBHOST_X, --x)`.
fn overrides(description: &str) -> Vec<String> {
    let mut found = Vec::new();
    for group in description.split('(').skip(1) {
        let group = group.split(')').next().unwrap_or("");
        let names: Vec<&str> = group.split(',').map(str::trim).collect();
        if names
            .iter()
            .all(|n| n.starts_with("JOBHOST_") || n.starts_with("--"))
        {
            found.extend(names.iter().map(|n| format!("`{n}`")));
        }
    }
    found
}

/// The description without its `(JOBHOST_X, --x)` groups (they get their own column).
fn without_overrides(description: &str) -> String {
    let mut out = description.to_owned();
    for name in overrides(description) {
        let name = name.trim_matches('`');
        for form in [
            format!(" ({name})"),
            format!(" ({name}, "),
            format!(", {name})"),
        ] {
            if let Some(at) = out.find(&form) {
                let keep = if form.starts_with(" (") && form.ends_with(", ") {
                    " ("
                } else if form.starts_with(", ") {
                    ")"
                } else {
                    ""
                };
                out.replace_range(at..at + form.len(), keep);
            }
        }
    }
    out.replace(" ()", "").trim().to_owned()
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// `docs/configuration.md` as `examples/jobhost.toml` makes it.
fn render(example: &str) -> String {
    let (header, sections) = parse(example);
    let mut out = String::new();
    out.push_str("# Configuration reference\n\n");
    out.push_str(
        "<!-- Generated from examples/jobhost.toml by `just docs`; edit that file, not this one. -->\n\n",
    );
    let _ = writeln!(out, "{header}\n");
    out.push_str(
        "Every key is optional; the value shown is its default, except in the sections of \
         the repository's own plugins (`[plugins.webhook]`, ...), where it is what they are \
         given. A key shown as *unset* has no default value (what that means is in its \
         description), and a section shown as an *example* is one the example file does not \
         set, with example values. The \
         commented example file itself is [`examples/jobhost.toml`](../examples/jobhost.toml) \
         (`jobhost config init` writes it); `jobhost config check FILE` validates a file and \
         prints the effective configuration, passwords masked.\n",
    );
    for section in &sections {
        let kind = if section.example { " (example)" } else { "" };
        let _ = writeln!(out, "\n## `[{}]`{kind}\n", section.name);
        if !section.intro.is_empty() {
            let _ = writeln!(out, "{}\n", section.intro);
        }
        if !section.keys.is_empty() {
            out.push_str("| Key | Default | Environment, flag | Meaning |\n");
            out.push_str("|---|---|---|---|\n");
            for key in &section.keys {
                let value = match (key.commented, section.example) {
                    (_, true) => format!("e.g. `{}`", cell(&key.value)),
                    (true, false) => format!("*unset* (e.g. `{}`)", cell(&key.value)),
                    (false, false) => format!("`{}`", cell(&key.value)),
                };
                let meaning = match &key.see {
                    Some(first) => format!("See `{}`.", first.trim_matches('"')),
                    None => cell(&without_overrides(&key.description)),
                };
                let _ = writeln!(
                    out,
                    "| `{}` | {value} | {} | {meaning} |",
                    key.name.trim_matches('"'),
                    overrides(&key.description).join(", "),
                );
            }
        }
        for note in &section.notes {
            let _ = writeln!(out, "\n{note}");
        }
    }
    out
}

fn example() -> String {
    std::fs::read_to_string(workspace().join("examples/jobhost.toml")).unwrap()
}

#[test]
fn the_configuration_reference_is_generated_from_the_example() {
    let path = workspace().join("docs/configuration.md");
    let want = render(&example());
    if std::env::var_os("JOBHOST_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/configuration.md is not what examples/jobhost.toml makes; run `just docs`"
    );
}

/// The fields of `pub struct NAME` in `source`, by a plain reading of the source (the
/// config structs rename no fields).
fn struct_fields(source: &str, name: &str) -> Vec<String> {
    let start = source
        .find(&format!("pub struct {name} {{"))
        .unwrap_or_else(|| panic!("no struct {name}"));
    let body = &source[start..];
    let body = &body[..body.find("\n}").unwrap()];
    body.lines()
        .filter_map(|l| l.trim().strip_prefix("pub "))
        .filter_map(|l| l.split_once(':'))
        .map(|(field, _)| field.trim().to_owned())
        .filter(|f| !f.starts_with("struct"))
        .collect()
}

#[test]
fn the_example_names_every_key_of_every_section() {
    let (_, sections) = parse(&example());
    let config = workspace().join("host/config/src");
    let read = |file: &str| std::fs::read_to_string(config.join(file)).unwrap();
    // Section of the example (a prefix for maps: `plugins.` covers `[plugins.<id>]`),
    // source file, struct.
    let structs = [
        ("runtime", "runtime.rs", "RuntimeConfig"),
        ("redis", "redis.rs", "RedisConfig"),
        ("worker", "worker.rs", "WorkerConfig"),
        ("job_types.", "worker.rs", "JobTypeConfig"),
        ("api", "api.rs", "ApiConfig"),
        ("hooks.", "api.rs", "HookConfig"),
        ("tls", "tls.rs", "TlsConfig"),
        ("auth.tokens.", "auth.rs", "TokenConfig"),
        ("sandbox", "sandbox.rs", "SandboxConfig"),
        ("jd", "jd.rs", "JdConfig"),
        ("log", "log.rs", "LogConfig"),
        ("plugins.", "plugins.rs", "PluginConfig"),
    ];
    let mut missing = Vec::new();
    for (section, file, name) in structs {
        let fields = struct_fields(&read(file), name);
        assert!(!fields.is_empty(), "{name} has no fields?");
        let documented: BTreeSet<&str> = sections
            .iter()
            .filter(|s| match section.strip_suffix('.') {
                Some(prefix) => s.name.starts_with(&format!("{prefix}.")),
                None => s.name == section,
            })
            .flat_map(|s| s.keys.iter().map(|k| k.name.as_str()))
            .collect();
        for field in fields {
            if !documented.contains(field.as_str()) {
                missing.push(format!(
                    "{section}{}{field}",
                    if section.ends_with('.') { "*." } else { "." }
                ));
            }
        }
    }
    // Every top-level section of `Config` has a section in the example.
    let top = struct_fields(
        &std::fs::read_to_string(config.join("lib.rs")).unwrap(),
        "Config",
    );
    for field in top {
        if !sections
            .iter()
            .any(|s| s.name == field || s.name.starts_with(&format!("{field}.")))
        {
            missing.push(format!("[{field}]"));
        }
    }
    assert!(
        missing.is_empty(),
        "examples/jobhost.toml does not document: {missing:?}"
    );
}

#[test]
fn the_example_names_every_environment_variable() {
    let env = std::fs::read_to_string(workspace().join("host/config/src/env.rs")).unwrap();
    let example = example();
    let mut read: BTreeSet<&str> = BTreeSet::new();
    for part in env.split("var(\"").skip(1) {
        read.insert(part.split('"').next().unwrap());
    }
    assert!(read.contains("JOBHOST_REDIS_URL"), "{read:?}");
    let named = |name: &str| {
        example.match_indices(name).any(|(at, _)| {
            let next = example[at + name.len()..].chars().next();
            !next.is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        })
    };
    let missing: Vec<_> = read.iter().filter(|name| !named(name)).collect();
    assert!(
        missing.is_empty(),
        "examples/jobhost.toml does not name {missing:?}"
    );
}

#[test]
fn the_parser_reads_keys_groups_and_example_sections() {
    let (header, sections) = parse(
        "# The header.\n\n# About a.\n[a]\n# One (JOBHOST_ONE, --one)\none = 1\ntwo = \"#2\"\n\
         # Optional.\n# three = 3\n\n# A note.\n\n# Sample:\n# [b.<id>]\n# x = [1]  # inline\n",
    );
    assert_eq!(header, "The header.");
    assert_eq!(sections.len(), 2);
    let a = &sections[0];
    assert_eq!(
        (a.name.as_str(), a.intro.as_str(), a.example),
        ("a", "About a.", false)
    );
    let names: Vec<_> = a
        .keys
        .iter()
        .map(|k| (k.name.as_str(), k.commented))
        .collect();
    assert_eq!(names, [("one", false), ("two", false), ("three", true)]);
    assert_eq!(a.keys[1].value, "\"#2\"");
    assert_eq!(
        a.keys[1].description, a.keys[0].description,
        "a group shares its comment"
    );
    assert_eq!(a.keys[1].see.as_deref(), Some("one"));
    assert_eq!(a.keys[2].description, "Optional.");
    assert_eq!(a.notes, ["A note."]);
    assert_eq!(
        overrides(&a.keys[0].description),
        ["`JOBHOST_ONE`", "`--one`"]
    );
    assert_eq!(without_overrides(&a.keys[0].description), "One");
    let b = &sections[1];
    assert!(b.example);
    assert_eq!(b.intro, "Sample:");
    assert_eq!(b.keys[0].description, "inline");
}
