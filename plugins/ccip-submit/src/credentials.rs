//! A node's login and where it may go: the secrets `chainlink/NODE/email`,
//! `chainlink/NODE/password` and `chainlink/NODE/url` of the host config, masking them in
//! messages that quote the node, and refusing a spec URL other than the node's configured one.

/// A node's login, read from the host's secrets; never logged nor returned.
pub(crate) struct Credentials {
    /// The API user's email.
    pub(crate) email: String,
    /// The API user's password.
    pub(crate) password: String,
}

impl Credentials {
    /// The secrets `chainlink/NODE/email` and `chainlink/NODE/password`, if both are set.
    pub(crate) fn of(node: &str) -> Option<Credentials> {
        let read = |what: &str| {
            jobhost_plugin_sdk::secret(&format!("chainlink/{node}/{what}"))
                .filter(|value| !value.is_empty())
        };
        Some(Credentials {
            email: read("email")?,
            password: read("password")?,
        })
    }

    /// `text` with the email and the password masked, for messages that quote the node.
    pub(crate) fn redact(&self, text: &str) -> String {
        text.replace(&self.password, "***")
            .replace(&self.email, "***")
    }
}

/// The secret `chainlink/NODE/url`, the node's own API URL, if configured (the Job
/// Distributor's nodes file always has it).
pub(crate) fn configured_url(node: &str) -> Option<String> {
    jobhost_plugin_sdk::secret(&format!("chainlink/{node}/url"))
}

/// Whether `node`'s login may go to `base` (the spec's URL without a trailing `/`): always
/// where no URL is configured for the node, else only to that one (a spec naming node A with
/// another URL would otherwise send A's credentials there). The error is the job's failure.
pub(crate) fn check_login_url(
    node: &str,
    base: &str,
    configured: Option<&str>,
) -> Result<(), String> {
    if configured.is_some_and(|url| url.trim_end_matches('/') != base) {
        return Err(format!(
            "url {base} is not the API URL configured for node {node}; refusing to send its login there"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node's login, as the host config would give it.
    fn credentials() -> Credentials {
        Credentials {
            email: "admin@node1.example".into(),
            password: "n0de1-s3cret-pa55word".into(),
        }
    }

    #[test]
    fn redacting_masks_every_occurrence_of_the_email_and_the_password() {
        let text = "login of admin@node1.example with n0de1-s3cret-pa55word refused: \
                    bad password n0de1-s3cret-pa55word for admin@node1.example";
        let redacted = credentials().redact(text);
        assert_eq!(
            redacted,
            "login of *** with *** refused: bad password *** for ***"
        );
        assert!(!redacted.contains("n0de1-s3cret-pa55word"));
        assert!(!redacted.contains("admin@node1.example"));
    }

    #[test]
    fn redacting_leaves_other_text_alone() {
        let text = "CreateJobFailed: duplicate key value (SQLSTATE 23505)";
        assert_eq!(credentials().redact(text), text);
    }

    #[test]
    fn redacting_masks_a_password_that_contains_the_email() {
        // The password goes first, so no part of it is left once the email is masked.
        let credentials = Credentials {
            email: "ops".into(),
            password: "ops-password".into(),
        };
        assert_eq!(
            credentials.redact("user ops, password ops-password"),
            "user ***, password ***"
        );
    }

    #[test]
    fn the_login_goes_anywhere_without_a_configured_url() {
        assert_eq!(
            check_login_url("node-1", "http://10.0.0.5:6688", None),
            Ok(())
        );
    }

    #[test]
    fn the_login_goes_to_the_configured_url_with_or_without_a_trailing_slash() {
        for configured in [
            "http://node-1.internal:6688",
            "http://node-1.internal:6688/",
            "http://node-1.internal:6688//",
        ] {
            assert_eq!(
                check_login_url("node-1", "http://node-1.internal:6688", Some(configured)),
                Ok(()),
                "{configured}"
            );
        }
    }

    #[test]
    fn the_login_never_goes_to_another_url_than_the_configured_one() {
        for base in [
            "http://attacker.example:6688",
            "https://node-1.internal:6688",
            "http://node-1.internal:6689",
            "http://node-1.internal:6688/v2",
            "http://NODE-1.internal:6688",
        ] {
            assert_eq!(
                check_login_url("node-1", base, Some("http://node-1.internal:6688")),
                Err(format!(
                    "url {base} is not the API URL configured for node node-1; \
                     refusing to send its login there"
                )),
                "{base}"
            );
        }
    }
}
