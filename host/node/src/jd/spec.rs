//! What the Job Distributor reads from a proposed job spec: its `externalJobID`.

/// Why a spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The spec is not TOML.
    #[error("the job spec is not valid TOML: {0}")]
    NotToml(String),
    /// The spec has no usable `externalJobID`.
    #[error("the job spec has no externalJobID (a UUID string at the top level)")]
    NoExternalJobId,
}

/// The spec's `externalJobID` (trimmed), which becomes the job's uuid.
pub fn external_job_id(spec: &str) -> Result<String, SpecError> {
    let doc: toml::Table = spec
        .parse()
        .map_err(|e: toml::de::Error| SpecError::NotToml(e.message().to_owned()))?;
    let id = doc
        .get("externalJobID")
        .and_then(|v| v.as_str())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(SpecError::NoExternalJobId)?;
    Ok(id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_external_job_id_is_read_from_the_top_level() {
        let spec =
            "type = \"offchainreporting2\"\nexternalJobID = \"0A1B-2\"\n[pluginConfig]\nx = 1\n";
        assert_eq!(external_job_id(spec).unwrap(), "0A1B-2");
        assert_eq!(
            external_job_id("type = \"x\"\n"),
            Err(SpecError::NoExternalJobId)
        );
        assert_eq!(
            external_job_id("[a]\nexternalJobID = \"x\"\n"),
            Err(SpecError::NoExternalJobId),
            "only the top level counts"
        );
        assert!(matches!(
            external_job_id("externalJobID = "),
            Err(SpecError::NotToml(_))
        ));
        assert_eq!(
            external_job_id("externalJobID = 5"),
            Err(SpecError::NoExternalJobId)
        );
    }
}
