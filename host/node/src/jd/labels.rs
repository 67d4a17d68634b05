//! Labels on Job Distributor nodes and jobs, and the selectors that filter by them.
//!
//! The rules are the Job Distributor's: a key or value is at most 63 characters,
//! alphanumeric at both ends with `-`, `_` or `.` inside; a value may be empty or absent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Labels of one object: key → value (`None`: the label has no value).
pub type Labels = BTreeMap<String, Option<String>>;

/// Longest label key or value.
const MAX_LEN: usize = 63;

/// Most labels on one node or job (the scheduler's `api.max_labels` default).
pub const MAX_LABELS: usize = 64;

/// A label that breaks the naming rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("label {what} {text:?}: {why}")]
pub struct LabelError {
    what: &'static str,
    text: String,
    why: &'static str,
}

fn check(what: &'static str, text: &str, allow_empty: bool) -> Result<(), LabelError> {
    let error = |why| {
        Err(LabelError {
            what,
            text: text.to_owned(),
            why,
        })
    };
    if text.is_empty() {
        return if allow_empty {
            Ok(())
        } else {
            error("must not be empty")
        };
    }
    if text.chars().count() > MAX_LEN {
        return error("at most 63 characters");
    }
    let inner_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let first = text.chars().next().unwrap_or(' ');
    let last = text.chars().last().unwrap_or(' ');
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return error("must begin and end with a letter or digit");
    }
    if !text.chars().all(inner_ok) {
        return error("may only contain letters, digits, '-', '_' and '.'");
    }
    Ok(())
}

/// Checks `labels` against the naming rules and returns them as a map (a repeated key keeps
/// its last value).
pub fn parse(
    labels: impl IntoIterator<Item = (String, Option<String>)>,
) -> Result<Labels, LabelError> {
    let mut out = Labels::new();
    for (key, value) in labels {
        if out.len() >= MAX_LABELS && !out.contains_key(&key) {
            return Err(LabelError {
                what: "key",
                text: key,
                why: "one label too many: at most 64 on one node or job",
            });
        }
        check("key", &key, false)?;
        if let Some(value) = &value {
            check("value", value, true)?;
        }
        out.insert(key, value);
    }
    Ok(out)
}

/// How a [`Selector`] compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectorOp {
    /// The value equals.
    Eq,
    /// The label exists with a value that differs.
    NotEq,
    /// The value is one of a comma-separated list.
    In,
    /// The label exists with a value in none of a comma-separated list.
    NotIn,
    /// The label is present.
    Exist,
    /// The label is absent.
    NotExist,
}

/// One condition on a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// The label key.
    pub key: String,
    /// The comparison.
    pub op: SelectorOp,
    /// The operand (for `In`/`NotIn`, a comma-separated list).
    pub value: Option<String>,
}

impl Selector {
    /// True if `labels` satisfy it. Value comparisons are false when the key is missing or
    /// its value is absent; `Exist`/`NotExist` test presence only.
    pub fn matches(&self, labels: &Labels) -> bool {
        let present = labels.get(&self.key);
        let value = present.and_then(|v| v.as_deref());
        let operand = self.value.as_deref().unwrap_or("");
        let list = || operand.split(',').map(str::trim);
        match self.op {
            SelectorOp::Exist => present.is_some(),
            SelectorOp::NotExist => present.is_none(),
            SelectorOp::Eq => value == Some(operand),
            SelectorOp::NotEq => value.is_some_and(|v| v != operand),
            SelectorOp::In => value.is_some_and(|v| list().any(|item| item == v)),
            SelectorOp::NotIn => value.is_some_and(|v| list().all(|item| item != v)),
        }
    }
}

/// True if every selector matches (an empty list matches everything).
pub fn all_match(selectors: &[Selector], labels: &Labels) -> bool {
    selectors.iter().all(|s| s.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, Option<&str>)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_owned)))
            .collect()
    }

    fn sel(key: &str, op: SelectorOp, value: Option<&str>) -> Selector {
        Selector {
            key: key.into(),
            op,
            value: value.map(str::to_owned),
        }
    }

    #[test]
    fn at_most_64_labels_on_one_object() {
        let many = |n: usize| (0..n).map(|i| (format!("k{i}"), Some("v".to_owned())));
        assert_eq!(parse(many(MAX_LABELS)).unwrap().len(), MAX_LABELS);
        let err = parse(many(MAX_LABELS + 1)).unwrap_err().to_string();
        assert!(err.contains("at most 64"), "{err}");
        // Repeating a key is not another label.
        let repeated = many(MAX_LABELS).chain([("k0".to_owned(), None)]);
        assert_eq!(parse(repeated).unwrap().len(), MAX_LABELS);
    }

    #[test]
    fn names_follow_the_rules() {
        assert!(parse([("env".into(), Some("prod-1.a_b".into()))]).is_ok());
        assert!(
            parse([("env".into(), Some(String::new()))]).is_ok(),
            "empty value"
        );
        assert!(parse([("env".into(), None)]).is_ok(), "absent value");
        for bad in ["", "-x", "x-", "a b", "a/b", &"k".repeat(64)] {
            assert!(parse([(bad.to_owned(), None)]).is_err(), "key {bad:?}");
        }
        assert!(parse([("k".into(), Some(".v".into()))]).is_err());
        assert!(parse([("k".into(), Some("v".repeat(63)))]).is_ok());
    }

    #[test]
    fn selectors_compare_as_the_job_distributor_does() {
        let l = labels(&[("env", Some("prod")), ("role", Some("ccip")), ("nil", None)]);
        assert!(sel("env", SelectorOp::Eq, Some("prod")).matches(&l));
        assert!(!sel("env", SelectorOp::Eq, Some("dev")).matches(&l));
        assert!(!sel("missing", SelectorOp::NotEq, Some("x")).matches(&l));
        assert!(
            !sel("nil", SelectorOp::NotEq, Some("x")).matches(&l),
            "null value"
        );
        assert!(sel("env", SelectorOp::NotEq, Some("dev")).matches(&l));
        assert!(sel("env", SelectorOp::In, Some("dev, prod ,x")).matches(&l));
        assert!(!sel("env", SelectorOp::In, Some("dev,x")).matches(&l));
        assert!(sel("env", SelectorOp::NotIn, Some("dev, x")).matches(&l));
        assert!(!sel("missing", SelectorOp::NotIn, Some("dev")).matches(&l));
        assert!(!sel("nil", SelectorOp::In, Some("")).matches(&l));
        assert!(sel("nil", SelectorOp::Exist, None).matches(&l));
        assert!(sel("missing", SelectorOp::NotExist, None).matches(&l));
        assert!(!sel("env", SelectorOp::NotExist, None).matches(&l));
        assert!(all_match(&[], &l));
    }
}
