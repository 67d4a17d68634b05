//! The plugin's job spec: what to do on which node (`create` or `delete`), its JSON Schema,
//! and the checks a spec passes before anything is sent (they run in `validate` too).

use jobhost_plugin_sdk::http;
use serde::Deserialize;

/// What to do on which node.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "action", rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum Spec {
    /// Create a job on the node from its TOML spec.
    Create {
        /// The node's name: it names the node's credentials in the host config.
        node: String,
        /// Base URL of the node's HTTP API (`http://host:6688`).
        url: String,
        /// The job spec, delivered byte for byte.
        toml: String,
        /// The node's job of an earlier revision, deleted before the new one is created.
        #[serde(default)]
        replaces: Option<String>,
    },
    /// Delete a job from the node.
    Delete {
        /// The node's name: it names the node's credentials in the host config.
        node: String,
        /// Base URL of the node's HTTP API (`http://host:6688`).
        url: String,
        /// The job's id on the node (as returned by `create`).
        node_job_id: String,
    },
}

impl Spec {
    /// The node's name and its base URL without a trailing `/`.
    pub(crate) fn target(&self) -> (&str, &str) {
        match self {
            Spec::Create { node, url, .. } | Spec::Delete { node, url, .. } => {
                (node, url.trim_end_matches('/'))
            }
        }
    }

    /// What the job does, for the log.
    pub(crate) fn action(&self) -> &'static str {
        match self {
            Spec::Create { .. } => "create",
            Spec::Delete { .. } => "delete",
        }
    }
}

/// JSON Schema of the spec.
pub(crate) const SCHEMA: &str = r#"{"type":"object","oneOf":[
{"required":["action","node","url","toml"],"additionalProperties":false,"properties":{
"action":{"const":"create"},"node":{"type":"string","pattern":"^[A-Za-z0-9._-]{1,128}$"},
"url":{"type":"string"},"toml":{"type":"string","minLength":1},
"replaces":{"type":"string","pattern":"^[A-Za-z0-9-]{1,64}$"}}},
{"required":["action","node","url","node_job_id"],"additionalProperties":false,"properties":{
"action":{"const":"delete"},"node":{"type":"string","pattern":"^[A-Za-z0-9._-]{1,128}$"},
"url":{"type":"string"},"node_job_id":{"type":"string","pattern":"^[A-Za-z0-9-]{1,64}$"}}}]}"#;

/// Parses and checks a spec; the error is the message shown to whoever submitted it.
pub(crate) fn parse(spec: &str) -> Result<Spec, String> {
    let spec: Spec =
        serde_json::from_str(spec).map_err(|e| format!("invalid ccip-submit spec: {e}"))?;
    let (node, url) = spec.target();
    check_node(node)?;
    check_url(url)?;
    match &spec {
        Spec::Create { toml, .. } if toml.trim().is_empty() => {
            return Err("toml must be the job spec, not empty".into());
        }
        Spec::Delete { node_job_id, .. } => check_job_id(node_job_id)?,
        Spec::Create {
            replaces: Some(id), ..
        } => check_job_id(id)?,
        Spec::Create { .. } => {}
    }
    Ok(spec)
}

/// A node name is 1-128 letters, digits, `.`, `_` or `-` (it becomes part of secret names).
fn check_node(node: &str) -> Result<(), String> {
    let ok = (1..=128).contains(&node.len())
        && node
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "node must be 1-128 letters, digits, '.', '_' or '-', not {node:?}"
        ))
    }
}

/// The node's URL is an http(s) base URL, without query or fragment.
fn check_url(url: &str) -> Result<(), String> {
    http::split_url(url).map_err(|e| format!("url: {e}"))?;
    if url.contains(['?', '#']) {
        return Err(format!(
            "url must be the node's base URL (http://host:port), not {url:?}"
        ));
    }
    Ok(())
}

/// A node's job id is 1-64 letters, digits or `-` (it becomes a URL path segment).
fn check_job_id(id: &str) -> Result<(), String> {
    let ok =
        (1..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "node_job_id must be the node's job id (letters, digits, '-'), not {id:?}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// `spec` parsed from its JSON text, as the host hands it over.
    fn parsed(spec: Value) -> Result<Spec, String> {
        parse(&spec.to_string())
    }

    /// A create spec for node `node-1`, with `changes` merged in (`null` removes a key).
    fn create(changes: Value) -> Value {
        let mut spec = json!({
            "action": "create",
            "node": "node-1",
            "url": "http://node-1.internal:6688",
            "toml": "type = \"webhook\"\nschemaVersion = 1\n",
        });
        merge(&mut spec, changes);
        spec
    }

    /// A delete spec for node `node-1`'s job 7, with `changes` merged in.
    fn delete(changes: Value) -> Value {
        let mut spec = json!({
            "action": "delete",
            "node": "node-1",
            "url": "http://node-1.internal:6688",
            "node_job_id": "7",
        });
        merge(&mut spec, changes);
        spec
    }

    /// Sets every key of `changes` in `spec`, removing those set to `null`.
    fn merge(spec: &mut Value, changes: Value) {
        let spec = spec.as_object_mut().unwrap();
        for (key, value) in changes.as_object().unwrap() {
            if value.is_null() {
                spec.remove(key);
            } else {
                spec.insert(key.clone(), value.clone());
            }
        }
    }

    #[test]
    fn a_create_spec_is_parsed_with_its_toml_byte_for_byte() {
        let toml = "type = \"ccip\"\r\n# note:\ttab \u{2713}   \nname = \"a \\\"b\\\"\"";
        assert_eq!(
            parsed(create(json!({ "toml": toml, "replaces": "41" }))),
            Ok(Spec::Create {
                node: "node-1".into(),
                url: "http://node-1.internal:6688".into(),
                toml: toml.into(),
                replaces: Some("41".into()),
            })
        );
        assert!(matches!(
            parsed(create(json!({}))),
            Ok(Spec::Create { replaces: None, .. })
        ));
    }

    #[test]
    fn a_delete_spec_is_parsed() {
        assert_eq!(
            parsed(delete(json!({ "node_job_id": "a1-b2" }))),
            Ok(Spec::Delete {
                node: "node-1".into(),
                url: "http://node-1.internal:6688".into(),
                node_job_id: "a1-b2".into(),
            })
        );
    }

    #[test]
    fn the_target_is_the_node_and_its_url_without_trailing_slashes() {
        let spec = parsed(create(json!({ "url": "https://node-1.internal:6688//" }))).unwrap();
        assert_eq!(spec.target(), ("node-1", "https://node-1.internal:6688"));
        assert_eq!(spec.action(), "create");
        let spec = parsed(delete(json!({}))).unwrap();
        assert_eq!(spec.target(), ("node-1", "http://node-1.internal:6688"));
        assert_eq!(spec.action(), "delete");
    }

    #[test]
    fn specs_that_are_not_a_create_nor_a_delete_are_refused() {
        for spec in [
            json!({}),
            json!("create"),
            create(json!({ "action": "update" })),
            create(json!({ "action": null })),
            create(json!({ "toml": null })),
            create(json!({ "node": null })),
            create(json!({ "url": null })),
            create(json!({ "toml": 7 })),
            // A create's keys are not a delete's, and neither takes others.
            create(json!({ "node_job_id": "7" })),
            create(json!({ "email": "admin@node1.example" })),
            delete(json!({ "node_job_id": null })),
            delete(json!({ "toml": "type = \"webhook\"" })),
        ] {
            let error = parsed(spec.clone()).unwrap_err();
            assert!(
                error.starts_with("invalid ccip-submit spec: "),
                "{spec}: {error}"
            );
        }
        let error = parse("not json").unwrap_err();
        assert!(error.starts_with("invalid ccip-submit spec: "), "{error}");
    }

    #[test]
    fn node_names_are_what_a_secret_name_can_carry() {
        for node in ["n", "chainlink-node-1", "a.b_c-D9", &"x".repeat(128)] {
            assert!(parsed(create(json!({ "node": node }))).is_ok(), "{node}");
        }
        for node in ["", "a/b", "a b", "../x", "n\u{e9}", &"x".repeat(129)] {
            assert_eq!(
                parsed(create(json!({ "node": node }))),
                Err(format!(
                    "node must be 1-128 letters, digits, '.', '_' or '-', not {node:?}"
                )),
                "{node}"
            );
        }
    }

    #[test]
    fn the_url_is_an_http_base_url() {
        for url in ["http://node:6688", "https://node", "http://10.0.0.5:6688/"] {
            assert!(parsed(create(json!({ "url": url }))).is_ok(), "{url}");
        }
        for url in ["ftp://node", "node:6688", "http://", "", "http:///"] {
            let error = parsed(create(json!({ "url": url }))).unwrap_err();
            assert!(error.starts_with("url: "), "{url}: {error}");
        }
        for url in ["http://node:6688?x=1", "http://node:6688/#top"] {
            let base = url.trim_end_matches('/');
            assert_eq!(
                parsed(delete(json!({ "url": url }))),
                Err(format!(
                    "url must be the node's base URL (http://host:port), not {base:?}"
                )),
                "{url}"
            );
        }
    }

    #[test]
    fn an_empty_toml_is_refused() {
        for toml in ["", " ", "\n\t\r\n"] {
            assert_eq!(
                parsed(create(json!({ "toml": toml }))),
                Err("toml must be the job spec, not empty".into()),
                "{toml:?}"
            );
        }
    }

    #[test]
    fn job_ids_are_what_a_path_segment_can_carry() {
        for id in ["7", "a1-B2", &"9".repeat(64)] {
            assert!(parsed(delete(json!({ "node_job_id": id }))).is_ok(), "{id}");
            assert!(parsed(create(json!({ "replaces": id }))).is_ok(), "{id}");
        }
        for id in ["", "1/2", "..", "1?x", "1 2", "1_2", &"9".repeat(65)] {
            let error = Err(format!(
                "node_job_id must be the node's job id (letters, digits, '-'), not {id:?}"
            ));
            assert_eq!(parsed(delete(json!({ "node_job_id": id }))), error, "{id}");
            assert_eq!(parsed(create(json!({ "replaces": id }))), error, "{id}");
        }
    }

    #[test]
    fn the_schema_is_json_with_one_alternative_per_action() {
        let schema: Value = serde_json::from_str(SCHEMA).expect("SCHEMA is JSON");
        let actions: Vec<&str> = schema["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|alternative| {
                alternative["properties"]["action"]["const"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(actions, ["create", "delete"]);
        assert_eq!(
            schema["oneOf"][0]["required"],
            json!(["action", "node", "url", "toml"])
        );
        assert_eq!(
            schema["oneOf"][1]["required"],
            json!(["action", "node", "url", "node_job_id"])
        );
    }
}
