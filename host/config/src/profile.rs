//! `jobhost config init`'s profiles, and printing a config with its passwords masked.

use crate::Config;

/// Which defaults `jobhost config init` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Every knob at its built-in default (`examples/jobhost.toml`).
    Development,
    /// JSON logs at `info`, lower maxima for native processes, smaller specs, and Redis
    /// expected to be configured.
    Production,
}

/// The commented configuration file of every knob at its default.
pub(crate) const DEVELOPMENT: &str = include_str!("../../../examples/jobhost.toml");

/// Changes from the development file to the production one: (exact line, replacement).
pub(crate) const PRODUCTION_CHANGES: &[(&str, &str)] = &[
    ("format = \"text\"", "format = \"json\""),
    ("# level = \"info\"", "level = \"info\""),
    ("max_memory_mb = 4096", "max_memory_mb = 2048"),
    ("max_pids = 4096", "max_pids = 1024"),
    ("max_spec_bytes = 1048576", "max_spec_bytes = 262144"),
    (
        "# max_queued_per_type = 100000",
        "max_queued_per_type = 100000",
    ),
    (
        "# cert_file = \"/etc/jobhost/tls/server-cert.pem\"",
        "cert_file = \"/etc/jobhost/tls/server-cert.pem\"",
    ),
    (
        "# key_file = \"/etc/jobhost/tls/server-key.pem\"",
        "key_file = \"/etc/jobhost/tls/server-key.pem\"",
    ),
    (
        "# client_ca_file = \"/etc/jobhost/tls/ca-cert.pem\"",
        "client_ca_file = \"/etc/jobhost/tls/ca-cert.pem\"",
    ),
    (
        "# csa_key_secret = \"env:CSA_KEY_ENCRYPTION_SECRET\"",
        "csa_key_secret = \"env:CSA_KEY_ENCRYPTION_SECRET\"",
    ),
];

impl Profile {
    /// The commented TOML file of this profile.
    pub fn file(self) -> String {
        match self {
            Profile::Development => DEVELOPMENT.to_owned(),
            Profile::Production => {
                let mut text = String::from(
                    "# Production profile (`jobhost config init --profile production`): JSON logs,\n\
                     # lower maxima for native processes and specs, TLS with client certificates\n\
                     # from /etc/jobhost/tls (your PKI's, or `jobhost certs init` for a trial).\n\
                     # Set redis.url (or JOBHOST_REDIS_URL) to the Redis every node shares, and\n\
                     # CSA_KEY_ENCRYPTION_SECRET to the secret that seals the JD's CSA key.\n",
                );
                for line in DEVELOPMENT.lines() {
                    let changed = PRODUCTION_CHANGES
                        .iter()
                        .find(|(from, _)| line == *from)
                        .map_or(line, |(_, to)| to);
                    text.push_str(changed);
                    text.push('\n');
                }
                text
            }
        }
    }
}

impl Config {
    /// A copy fit to print: the password in `redis.url` is masked. (Other secrets are only
    /// ever named in the config, as `env:` or `file:` sources, never held in it.)
    pub fn masked(&self) -> Config {
        let mut copy = self.clone();
        copy.redis.url = copy
            .redis
            .url
            .split(',')
            .map(mask_url_password)
            .collect::<Vec<_>>()
            .join(",");
        copy.history.postgres_url = mask_url_password(&copy.history.postgres_url);
        copy
    }
}

/// `scheme://user:secret@host` → `scheme://user:***@host` (and a `password=` query
/// parameter masked likewise): a URL fit for messages and logs.
pub fn mask_url_password(url: &str) -> String {
    let url = &mask_query_password(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
    let masked = if userinfo.contains(':') {
        format!("{user}:***")
    } else {
        "***".to_owned()
    };
    format!("{scheme}://{masked}@{host}")
}

/// `…?password=secret&x=1` → `…?password=***&x=1`.
fn mask_query_password(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let masked: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", masked.join("&"))
}
