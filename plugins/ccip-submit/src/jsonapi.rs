//! Reading a Chainlink node's JSON:API answers: what an error answer says
//! (`{"errors": [{"detail"}]}`), whether it is the node refusing a duplicate externalJobID,
//! and the job of a `{"data": {"id", "attributes"}}` answer.

use serde::Deserialize;

/// The JSON:API error document a Chainlink node answers errors with.
#[derive(Deserialize)]
struct ErrorDocument {
    /// The errors, usually one.
    errors: Vec<ErrorObject>,
}

/// One JSON:API error.
#[derive(Deserialize)]
struct ErrorObject {
    /// What went wrong, in the node's words.
    #[serde(default)]
    detail: String,
}

/// The JSON:API document a node answers a created job with.
#[derive(Deserialize)]
struct CreatedDocument {
    /// The job resource.
    data: CreatedJob,
}

/// The created job resource: only its id matters here.
#[derive(Deserialize)]
struct CreatedJob {
    /// The job's id on the node (a string in JSON:API; a number is accepted too).
    id: serde_json::Value,
}

/// What the node said: its `errors[].detail` joined, else an excerpt of the body.
pub(crate) fn detail(body: &[u8]) -> String {
    if let Ok(document) = serde_json::from_slice::<ErrorDocument>(body) {
        let details: Vec<&str> = document
            .errors
            .iter()
            .map(|e| e.detail.as_str())
            .filter(|d| !d.is_empty())
            .collect();
        if !details.is_empty() {
            return details.join("; ");
        }
    }
    let excerpt: String = String::from_utf8_lossy(body)
        .trim()
        .chars()
        .take(200)
        .collect();
    if excerpt.is_empty() {
        "no detail".into()
    } else {
        excerpt
    }
}

/// The created job's id, from a `{"data": {"id": ...}}` answer.
pub(crate) fn created_id(body: &[u8]) -> Option<String> {
    let document: CreatedDocument = serde_json::from_slice(body).ok()?;
    match document.data.id {
        serde_json::Value::String(id) if !id.is_empty() => Some(id),
        serde_json::Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

/// The name of the node's unique constraint on `jobs.external_job_id` (migration 0036): an
/// error naming it is the node refusing a second job with the same externalJobID.
pub(crate) const DUPLICATE_CONSTRAINT: &str = "external_job_id_uniq";

/// Whether an error answer is the node refusing a duplicate externalJobID.
pub(crate) fn duplicate(body: &[u8]) -> bool {
    detail(body).contains(DUPLICATE_CONSTRAINT)
}

/// A job the node holds, from a `GET /v2/jobs/ID` answer.
#[derive(Debug, PartialEq)]
pub(crate) struct HeldJob {
    /// Its id on the node.
    pub(crate) id: String,
    /// Its JSON:API attributes.
    pub(crate) attributes: serde_json::Value,
}

/// The job of a `{"data": {"id", "attributes"}}` answer.
pub(crate) fn held_job(body: &[u8]) -> Option<HeldJob> {
    let document: serde_json::Value = serde_json::from_slice(body).ok()?;
    let id = match document.pointer("/data/id")? {
        serde_json::Value::String(id) if !id.is_empty() => id.clone(),
        serde_json::Value::Number(id) => id.to_string(),
        _ => return None,
    };
    let attributes = document.pointer("/data/attributes")?.clone();
    attributes.is_object().then_some(HeldJob { id, attributes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The node's duplicate-externalJobID refusal (`CreateJobFailed` wrapping the database's
    /// unique-constraint error), as its `errors[0].detail`.
    const DUPLICATE: &str = "CreateJobFailed: failed to insert job: ERROR: duplicate key value \
        violates unique constraint \"external_job_id_uniq\" (SQLSTATE 23505)";

    /// `value` as an answer's body.
    fn body(value: serde_json::Value) -> Vec<u8> {
        value.to_string().into_bytes()
    }

    #[test]
    fn the_detail_is_every_errors_detail_joined() {
        assert_eq!(
            detail(&body(json!({ "errors": [{ "detail": "job not found" }] }))),
            "job not found"
        );
        assert_eq!(
            detail(&body(json!({ "errors": [
                { "detail": "bad TOML" },
                { "status": "400" },
                { "detail": "" },
                { "detail": "unknown job type" },
            ] }))),
            "bad TOML; unknown job type"
        );
    }

    #[test]
    fn without_details_the_detail_is_an_excerpt_of_the_body() {
        // No detail in any error: the document itself.
        assert_eq!(
            detail(br#"{"errors":[{"status":"500"}]}"#),
            r#"{"errors":[{"status":"500"}]}"#
        );
        // Not an error document: the text, trimmed.
        assert_eq!(detail(b"  502 Bad Gateway\n"), "502 Bad Gateway");
        assert_eq!(
            detail(br#"{"data": {"id": "1"}}"#),
            r#"{"data": {"id": "1"}}"#
        );
        // At most 200 characters (not bytes: a multi-byte character is never cut).
        let long = "\u{e9}".repeat(300);
        assert_eq!(detail(long.as_bytes()), "\u{e9}".repeat(200));
        // Not UTF-8: replaced, not refused.
        assert_eq!(detail(b"bad \xff byte"), "bad \u{fffd} byte");
    }

    #[test]
    fn an_empty_answer_has_no_detail() {
        assert_eq!(detail(b""), "no detail");
        assert_eq!(detail(b" \r\n\t"), "no detail");
    }

    #[test]
    fn the_unique_constraint_refusal_is_a_duplicate() {
        assert!(duplicate(&body(
            json!({ "errors": [{ "detail": DUPLICATE }] })
        )));
        // Named in any of the errors, or in a body that is no error document.
        assert!(duplicate(&body(json!({ "errors": [
            { "detail": "something else" },
            { "detail": DUPLICATE },
        ] }))));
        assert!(duplicate(DUPLICATE.as_bytes()));
    }

    #[test]
    fn other_refusals_are_no_duplicate() {
        for answer in [
            json!({ "errors": [{ "detail": "CreateJobFailed: failed to insert job: ERROR: \
                duplicate key value violates unique constraint \"jobs_name_key\"" }] }),
            json!({ "errors": [{ "detail": "job not found" }] }),
            json!({ "errors": [] }),
            json!({ "data": { "id": "1" } }),
        ] {
            assert!(!duplicate(&body(answer.clone())), "{answer}");
        }
        assert!(!duplicate(b""));
    }

    #[test]
    fn the_created_id_is_the_resources_id() {
        assert_eq!(
            created_id(&body(
                json!({ "data": { "type": "jobs", "id": "17", "attributes": {} } })
            ))
            .as_deref(),
            Some("17")
        );
        assert_eq!(
            created_id(&body(json!({ "data": { "id": 42 } }))).as_deref(),
            Some("42")
        );
    }

    #[test]
    fn no_created_id_without_a_usable_id() {
        for answer in [
            json!({ "data": { "id": "" } }),
            json!({ "data": { "id": null } }),
            json!({ "data": { "id": true } }),
            json!({ "data": { "id": ["1"] } }),
            json!({ "data": { "type": "jobs" } }),
            json!({ "data": null }),
            json!({ "errors": [{ "detail": "no" }] }),
        ] {
            assert_eq!(created_id(&body(answer.clone())), None, "{answer}");
        }
        assert_eq!(created_id(b"created"), None);
        assert_eq!(created_id(b""), None);
    }

    #[test]
    fn a_held_job_is_the_resources_id_and_attributes() {
        let attributes =
            json!({ "name": "feed", "externalJobID": "0eec7e1d-d0d2-476c-a1a8-72dfb6633f46" });
        assert_eq!(
            held_job(&body(
                json!({ "data": { "type": "jobs", "id": "3", "attributes": attributes } })
            )),
            Some(HeldJob {
                id: "3".into(),
                attributes: attributes.clone()
            })
        );
        assert_eq!(
            held_job(&body(json!({ "data": { "id": 3, "attributes": {} } }))),
            Some(HeldJob {
                id: "3".into(),
                attributes: json!({})
            })
        );
    }

    #[test]
    fn no_held_job_without_an_id_and_attributes_object() {
        for answer in [
            json!({ "data": { "id": "", "attributes": {} } }),
            json!({ "data": { "id": null, "attributes": {} } }),
            json!({ "data": { "attributes": {} } }),
            json!({ "data": { "id": "3" } }),
            json!({ "data": { "id": "3", "attributes": null } }),
            json!({ "data": { "id": "3", "attributes": ["name"] } }),
            json!({ "data": [{ "id": "3", "attributes": {} }] }),
            json!({ "errors": [{ "detail": "job not found" }] }),
        ] {
            assert_eq!(held_job(&body(answer.clone())), None, "{answer}");
        }
        assert_eq!(held_job(b"<html>"), None);
    }
}
