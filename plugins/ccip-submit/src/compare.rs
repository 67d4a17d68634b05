//! Whether a job the node already holds is the job a spec describes: the spec's
//! externalJobID, and the comparison of the spec's top-level keys with what the node's job
//! resource (`presenters.JobResource`) shows of them. A job that differs, or whose spec cannot
//! be confirmed from the node's answer, is one to replace (see the crate docs).

use crate::go_values::{go_duration, normalize_uuid};

/// Top-level keys of a job spec that the node's job resource shows (`presenters.JobResource`):
/// the key, where the answer's `data.attributes` shows it, and how to compare them.
pub(crate) const SHOWN: &[(&str, &str, Compare)] = &[
    ("type", "/type", Compare::Text("")),
    ("schemaVersion", "/schemaVersion", Compare::Integer),
    ("name", "/name", Compare::Text("")),
    ("externalJobID", "/externalJobID", Compare::Uuid),
    ("maxTaskDuration", "/maxTaskDuration", Compare::Duration),
    ("gasLimit", "/gasLimit", Compare::Integer),
    ("forwardingAllowed", "/forwardingAllowed", Compare::Flag),
    (
        "observationSource",
        "/pipelineSpec/dotDagSource",
        Compare::Text(""),
    ),
];

/// How a spec's value compares with the node's.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Compare {
    /// Strings; a key left out is this default (`name`: the node shows `""`).
    Text(&'static str),
    /// Integers; a key left out is `null` on the node.
    Integer,
    /// UUIDs, in any form the node takes.
    Uuid,
    /// Go durations (the node shows `1m0s` for `1m`); a key left out is `0s`.
    Duration,
    /// Booleans; a key left out is `false`.
    Flag,
}

impl Compare {
    /// Whether the spec's value (`None`: the key is left out) is what the node shows.
    pub(crate) fn same(self, spec: Option<&toml::Value>, node: &serde_json::Value) -> bool {
        use serde_json::Value as Json;
        match self {
            Compare::Text(default) => {
                let spec = match spec {
                    None => Some(default),
                    Some(value) => value.as_str(),
                };
                let node = match node {
                    Json::Null => Some(default),
                    other => other.as_str(),
                };
                spec.is_some() && spec == node
            }
            Compare::Integer => match (spec, node) {
                (None, Json::Null) => true,
                (Some(value), Json::Number(n)) => {
                    value.as_integer().is_some() && value.as_integer() == n.as_i64()
                }
                _ => false,
            },
            Compare::Uuid => {
                let spec = spec.and_then(toml::Value::as_str).and_then(normalize_uuid);
                let node = node.as_str().and_then(normalize_uuid);
                spec.is_some() && spec == node
            }
            Compare::Duration => {
                let spec = match spec {
                    None => Some(0),
                    Some(value) => value.as_str().and_then(go_duration),
                };
                let node = node.as_str().and_then(go_duration);
                spec.is_some() && spec == node
            }
            Compare::Flag => {
                let spec = match spec {
                    None => Some(false),
                    Some(value) => value.as_bool(),
                };
                spec.is_some() && spec == node.as_bool()
            }
        }
    }
}

/// The spec's top-level `externalJobID` in the node's form (lower-case, dashed), if it names
/// a UUID: the key the node refuses a second job with, and looks a job up by.
pub(crate) fn external_job_id(spec: &toml::Table) -> Option<String> {
    spec.get("externalJobID")?.as_str().and_then(normalize_uuid)
}

/// Whether the node's job (its JSON:API `attributes`) is the job `spec` describes, as far as
/// the node's answer shows it: `Ok`, or why not (for the log).
pub(crate) fn same_job(spec: &toml::Table, attributes: &serde_json::Value) -> Result<(), String> {
    let mut differ = Vec::new();
    let mut unseen = Vec::new();
    for (key, pointer, compare) in SHOWN {
        let value = spec.get(*key);
        match attributes.pointer(pointer) {
            Some(node) if !compare.same(value, node) => differ.push(*key),
            Some(_) => {}
            // Older nodes do not show every attribute: only a key the spec sets matters.
            None if value.is_some() => unseen.push(key.to_string()),
            None => {}
        }
    }
    unseen.extend(
        spec.keys()
            .filter(|key| !SHOWN.iter().any(|(shown, ..)| shown == key))
            .cloned(),
    );
    let mut why = Vec::new();
    if !differ.is_empty() {
        why.push(format!("differs in {}", differ.join(", ")));
    }
    if !unseen.is_empty() {
        why.push(format!(
            "cannot be compared in {} (the node's API does not show them)",
            unseen.join(", ")
        ));
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(why.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// A webhook spec whose every key the node's job resource shows, in the forms an operator
    /// writes: an upper-case externalJobID, a duration Go writes otherwise, a comment.
    const WEBHOOK: &str = r#"
type = "webhook"
schemaVersion = 1
name = "price feed — ETH/USD"
externalJobID = "0EEC7E1D-D0D2-476C-A1A8-72DFB6633F46"
maxTaskDuration = "1m"
# fetched every time the webhook is called
observationSource = """
fetch [type=http method=GET url="https://example.com/price"];
fetch -> parse
"""
"#;

    /// The spec parsed as the plugin parses it.
    fn spec(toml: &str) -> toml::Table {
        toml.parse().expect("test spec is TOML")
    }

    /// The `data.attributes` a node answers for [`WEBHOOK`] (`presenters.JobResource`: what
    /// it parsed, in its own forms: the UUID lower-case, `1m0s`, `gasLimit` null, the defaults
    /// of keys the spec leaves out).
    fn webhook_attributes() -> Value {
        json!({
            "name": "price feed — ETH/USD",
            "type": "webhook",
            "schemaVersion": 1,
            "gasLimit": null,
            "forwardingAllowed": false,
            "maxTaskDuration": "1m0s",
            "externalJobID": "0eec7e1d-d0d2-476c-a1a8-72dfb6633f46",
            "pipelineSpec": {
                "id": 1,
                "jobID": 1,
                "dotDagSource": "fetch [type=http method=GET url=\"https://example.com/price\"];\nfetch -> parse\n",
            },
            "errors": [],
        })
    }

    /// `attributes` with the value at `pointer` replaced by `value`.
    fn with(mut attributes: Value, pointer: &str, value: Value) -> Value {
        *attributes.pointer_mut(pointer).expect("pointer exists") = value;
        attributes
    }

    /// `attributes` without the top-level `key` (an older node that does not show it).
    fn without(mut attributes: Value, key: &str) -> Value {
        attributes.as_object_mut().unwrap().remove(key);
        attributes
    }

    #[test]
    fn the_nodes_job_for_this_spec_is_the_same_job() {
        assert_eq!(same_job(&spec(WEBHOOK), &webhook_attributes()), Ok(()));
    }

    #[test]
    fn a_changed_value_of_any_shown_key_is_another_job() {
        let attributes = webhook_attributes();
        for (key, pointer, value) in [
            ("type", "/type", json!("cron")),
            ("schemaVersion", "/schemaVersion", json!(2)),
            ("name", "/name", json!("price feed — ETH/EUR")),
            (
                "externalJobID",
                "/externalJobID",
                json!("0eec7e1d-d0d2-476c-a1a8-72dfb6633f47"),
            ),
            ("maxTaskDuration", "/maxTaskDuration", json!("2m0s")),
            ("gasLimit", "/gasLimit", json!(500000)),
            ("forwardingAllowed", "/forwardingAllowed", json!(true)),
            (
                "observationSource",
                "/pipelineSpec/dotDagSource",
                json!("fetch -> parse\n"),
            ),
        ] {
            assert_eq!(
                same_job(&spec(WEBHOOK), &with(attributes.clone(), pointer, value)),
                Err(format!("differs in {key}")),
                "{pointer}"
            );
        }
    }

    #[test]
    fn every_differing_key_is_named_in_the_order_of_the_shown_keys() {
        let attributes = with(webhook_attributes(), "/name", json!("another name"));
        let attributes = with(attributes, "/pipelineSpec/dotDagSource", json!(""));
        let attributes = with(attributes, "/type", json!("cron"));
        assert_eq!(
            same_job(&spec(WEBHOOK), &attributes),
            Err("differs in type, name, observationSource".to_owned())
        );
    }

    #[test]
    fn the_observation_source_is_compared_with_the_pipelines_dot_dag_source() {
        // Not with an `observationSource` attribute (the node has none): one that matches
        // does not make up for a pipeline that differs.
        let mut attributes = with(
            webhook_attributes(),
            "/pipelineSpec/dotDagSource",
            json!(""),
        );
        attributes["observationSource"] =
            webhook_attributes()["pipelineSpec"]["dotDagSource"].clone();
        assert_eq!(
            same_job(&spec(WEBHOOK), &attributes),
            Err("differs in observationSource".to_owned())
        );
    }

    #[test]
    fn keys_the_node_does_not_show_cannot_confirm_the_job() {
        // A ccip job's own keys: not in the job resource, so the job is not confirmed even
        // though every shown key matches. (Keys in alphabetical order, so the message is the
        // same whether or not the TOML table keeps the text's order.)
        let toml =
            format!("{WEBHOOK}\nocrKeyBundleIDs = {{ evm = \"b3df\" }}\np2pKeyID = \"12D3KooW\"\n");
        assert_eq!(
            same_job(&spec(&toml), &webhook_attributes()),
            Err("cannot be compared in ocrKeyBundleIDs, p2pKeyID \
                 (the node's API does not show them)"
                .to_owned())
        );
    }

    #[test]
    fn a_differing_key_and_an_unshown_one_are_both_named() {
        let toml = format!("{WEBHOOK}\np2pKeyID = \"12D3KooW\"\n");
        let attributes = with(webhook_attributes(), "/name", json!("another name"));
        assert_eq!(
            same_job(&spec(&toml), &attributes),
            Err("differs in name; cannot be compared in p2pKeyID \
                 (the node's API does not show them)"
                .to_owned())
        );
    }

    #[test]
    fn a_shown_key_an_older_node_leaves_out_matters_only_when_the_spec_sets_it() {
        // The spec sets maxTaskDuration: without the node's value it cannot be confirmed.
        assert_eq!(
            same_job(
                &spec(WEBHOOK),
                &without(webhook_attributes(), "maxTaskDuration")
            ),
            Err(
                "cannot be compared in maxTaskDuration (the node's API does not show them)"
                    .to_owned()
            )
        );
        // The spec leaves gasLimit and forwardingAllowed out: nothing to confirm.
        let attributes = without(webhook_attributes(), "gasLimit");
        let attributes = without(attributes, "forwardingAllowed");
        assert_eq!(same_job(&spec(WEBHOOK), &attributes), Ok(()));
    }

    #[test]
    fn keys_left_out_compare_with_the_nodes_defaults() {
        // Only the keys a spec must have: no name, duration, gas limit nor forwarding.
        let minimal = spec(
            "type = \"webhook\"\nschemaVersion = 1\n\
             externalJobID = \"0eec7e1d-d0d2-476c-a1a8-72dfb6633f46\"\n\
             observationSource = \"fetch -> parse\"\n",
        );
        let defaults = json!({
            "name": "",
            "type": "webhook",
            "schemaVersion": 1,
            "gasLimit": null,
            "forwardingAllowed": false,
            "maxTaskDuration": "0s",
            "externalJobID": "0eec7e1d-d0d2-476c-a1a8-72dfb6633f46",
            "pipelineSpec": { "dotDagSource": "fetch -> parse" },
        });
        assert_eq!(same_job(&minimal, &defaults), Ok(()));
        // A `null` name is the default too.
        assert_eq!(
            same_job(&minimal, &with(defaults.clone(), "/name", Value::Null)),
            Ok(())
        );
        // A node value other than the default is a job the spec does not describe.
        for (key, pointer, value) in [
            ("name", "/name", json!("named by hand")),
            ("maxTaskDuration", "/maxTaskDuration", json!("1m0s")),
            ("gasLimit", "/gasLimit", json!(1)),
            ("forwardingAllowed", "/forwardingAllowed", json!(true)),
        ] {
            assert_eq!(
                same_job(&minimal, &with(defaults.clone(), pointer, value)),
                Err(format!("differs in {key}")),
                "{pointer}"
            );
        }
    }

    #[test]
    fn text_compares_strings_and_defaults() {
        let compare = Compare::Text("");
        let text = |s: &str| toml::Value::String(s.to_owned());
        assert!(compare.same(Some(&text("a")), &json!("a")));
        assert!(!compare.same(Some(&text("a")), &json!("A")));
        assert!(!compare.same(Some(&text("a")), &json!("a ")));
        assert!(compare.same(None, &json!("")));
        assert!(compare.same(None, &Value::Null));
        assert!(compare.same(Some(&text("")), &Value::Null));
        assert!(!compare.same(None, &json!("a")));
        assert!(Compare::Text("x").same(None, &json!("x")));
        // Not strings on either side: never the same, even when both are equal.
        assert!(!compare.same(Some(&toml::Value::Integer(1)), &json!(1)));
        assert!(!compare.same(Some(&text("1")), &json!(1)));
    }

    #[test]
    fn integers_compare_by_value_and_left_out_is_null() {
        let compare = Compare::Integer;
        let int = toml::Value::Integer;
        assert!(compare.same(Some(&int(1)), &json!(1)));
        assert!(!compare.same(Some(&int(1)), &json!(2)));
        assert!(compare.same(Some(&int(-5)), &json!(-5)));
        assert!(compare.same(None, &Value::Null));
        assert!(!compare.same(None, &json!(0)));
        assert!(!compare.same(Some(&int(0)), &Value::Null));
        // The node's number must be an integer, the spec's too.
        assert!(!compare.same(Some(&int(1)), &json!(1.0)));
        assert!(!compare.same(Some(&int(1)), &json!("1")));
        assert!(!compare.same(Some(&toml::Value::Float(1.0)), &json!(1)));
        assert!(!compare.same(Some(&toml::Value::String("1".into())), &json!(1)));
    }

    #[test]
    fn uuids_compare_in_any_form_and_never_when_unparsable() {
        let compare = Compare::Uuid;
        let text = |s: &str| toml::Value::String(s.to_owned());
        let node = json!("0eec7e1d-d0d2-476c-a1a8-72dfb6633f46");
        for form in [
            "0eec7e1d-d0d2-476c-a1a8-72dfb6633f46",
            "0EEC7E1D-D0D2-476C-A1A8-72DFB6633F46",
            "0eec7e1dd0d2476ca1a872dfb6633f46",
            "{0eec7e1d-d0d2-476c-a1a8-72dfb6633f46}",
            "urn:uuid:0eec7e1d-d0d2-476c-a1a8-72dfb6633f46",
        ] {
            assert!(compare.same(Some(&text(form)), &node), "{form}");
        }
        assert!(!compare.same(Some(&text("0eec7e1d-d0d2-476c-a1a8-72dfb6633f47")), &node));
        // Two equal strings that are no UUID are not the same UUID; nor is none at all.
        assert!(!compare.same(Some(&text("not-a-uuid")), &json!("not-a-uuid")));
        assert!(!compare.same(None, &Value::Null));
        assert!(!compare.same(None, &node));
    }

    #[test]
    fn durations_compare_as_go_durations_and_left_out_is_zero() {
        let compare = Compare::Duration;
        let text = |s: &str| toml::Value::String(s.to_owned());
        assert!(compare.same(Some(&text("1m")), &json!("1m0s")));
        assert!(compare.same(Some(&text("90s")), &json!("1m30s")));
        assert!(compare.same(Some(&text("1500ms")), &json!("1.5s")));
        assert!(!compare.same(Some(&text("1m")), &json!("1m1s")));
        assert!(compare.same(None, &json!("0s")));
        assert!(!compare.same(None, &json!("1s")));
        assert!(compare.same(Some(&text("0")), &json!("0s")));
        // Unparsable on either side: not the same, even when the texts are equal.
        assert!(!compare.same(Some(&text("soon")), &json!("soon")));
        assert!(!compare.same(Some(&text("1m")), &Value::Null));
        assert!(!compare.same(None, &Value::Null));
        assert!(!compare.same(Some(&toml::Value::Integer(60)), &json!("1m0s")));
    }

    #[test]
    fn flags_compare_as_booleans_and_left_out_is_false() {
        let compare = Compare::Flag;
        let flag = toml::Value::Boolean;
        assert!(compare.same(Some(&flag(true)), &json!(true)));
        assert!(compare.same(Some(&flag(false)), &json!(false)));
        assert!(!compare.same(Some(&flag(true)), &json!(false)));
        assert!(compare.same(None, &json!(false)));
        assert!(!compare.same(None, &json!(true)));
        assert!(!compare.same(None, &Value::Null));
        assert!(!compare.same(Some(&toml::Value::String("true".into())), &json!(true)));
    }

    #[test]
    fn every_shown_key_has_the_pointer_of_the_job_resource() {
        // The keys the crate docs list, each once, read where presenters.JobResource puts it.
        let keys: Vec<&str> = SHOWN.iter().map(|(key, ..)| *key).collect();
        assert_eq!(
            keys,
            [
                "type",
                "schemaVersion",
                "name",
                "externalJobID",
                "maxTaskDuration",
                "gasLimit",
                "forwardingAllowed",
                "observationSource"
            ]
        );
        let attributes = webhook_attributes();
        for (key, pointer, _) in SHOWN {
            assert!(attributes.pointer(pointer).is_some(), "{key}: {pointer}");
        }
    }

    #[test]
    fn the_external_job_id_is_the_specs_uuid_in_the_nodes_form() {
        assert_eq!(
            external_job_id(&spec(WEBHOOK)).as_deref(),
            Some("0eec7e1d-d0d2-476c-a1a8-72dfb6633f46")
        );
        assert_eq!(
            external_job_id(&spec(
                "externalJobID = \"urn:uuid:7F0C2D1E-6B8A-4C3E-9F5D-2A1B0C9D8E7F\""
            ))
            .as_deref(),
            Some("7f0c2d1e-6b8a-4c3e-9f5d-2a1b0c9d8e7f")
        );
    }

    #[test]
    fn no_external_job_id_without_a_top_level_uuid_string() {
        for toml in [
            "type = \"webhook\"",
            "externalJobID = \"\"",
            "externalJobID = \"not-a-uuid\"",
            "externalJobID = 7",
            // Only the top level counts, and the key's case matters.
            "[webhookSpec]\nexternalJobID = \"0eec7e1d-d0d2-476c-a1a8-72dfb6633f46\"",
            "externalJobId = \"0eec7e1d-d0d2-476c-a1a8-72dfb6633f46\"",
        ] {
            assert_eq!(external_job_id(&spec(toml)), None, "{toml}");
        }
    }
}
