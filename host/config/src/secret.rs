//! Secret sources: config files name where a secret is (`env:` or `file:`), never hold it.

use std::path::PathBuf;

/// Where a secret's value comes from. Only the source is kept; the value is read when a
/// plugin asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable.
    Env(String),
    /// A file (its content, trailing newline trimmed).
    File(PathBuf),
}

impl SecretSource {
    /// Parses `env:NAME` or `file:/path`.
    pub fn parse(source: &str) -> Result<SecretSource, String> {
        match source.split_once(':') {
            Some(("env", name)) if !name.is_empty() => Ok(SecretSource::Env(name.to_owned())),
            Some(("file", path)) if !path.is_empty() => Ok(SecretSource::File(path.into())),
            _ => Err("must be env:VARIABLE or file:/path (not the secret itself)".into()),
        }
    }

    /// The value, if the variable or file exists.
    pub fn read(&self) -> Option<String> {
        match self {
            SecretSource::Env(name) => std::env::var(name).ok(),
            SecretSource::File(path) => std::fs::read_to_string(path)
                .ok()
                .map(|s| s.trim_end_matches(['\r', '\n']).to_owned()),
        }
    }
}
