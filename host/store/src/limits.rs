//! Per-job-type limits (`[job_types.<type>]`, `worker.max_queued_per_type`), which the
//! enqueue and claim scripts enforce cluster-wide (see the crate docs).

use std::collections::BTreeMap;

use jobhost_config::Config;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TypeLimits {
    /// Most jobs of the type waiting (QUEUED + SCHEDULED); more are refused.
    pub max_queued: Option<u64>,
    /// Most jobs of the type RUNNING at once, cluster-wide; more wait QUEUED.
    pub max_concurrent: Option<u64>,
}

/// Per-job-type limits the store enforces (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobLimits {
    /// Limits of named job types.
    pub types: BTreeMap<String, TypeLimits>,
    /// Queue limit of job types without their own `max_queued`.
    pub default_max_queued: Option<u64>,
}

impl JobLimits {
    /// The queue limit of `job_type` and the config knob that sets it, if it has one.
    pub fn max_queued(&self, job_type: &str) -> Option<(u64, String)> {
        match self.types.get(job_type).and_then(|t| t.max_queued) {
            Some(limit) => Some((limit, format!("job_types.{job_type}.max_queued"))),
            None => self
                .default_max_queued
                .map(|limit| (limit, "worker.max_queued_per_type".to_owned())),
        }
    }

    /// The concurrency limit of `job_type`, if it has one.
    pub fn max_concurrent(&self, job_type: &str) -> Option<u64> {
        self.types.get(job_type).and_then(|t| t.max_concurrent)
    }
}

impl JobLimits {
    /// The limits `config` sets.
    pub fn from_config(config: &Config) -> JobLimits {
        JobLimits {
            types: config
                .job_types
                .iter()
                .map(|(job_type, limits)| {
                    let limits = TypeLimits {
                        max_queued: limits.max_queued,
                        max_concurrent: limits.max_concurrent,
                    };
                    (job_type.clone(), limits)
                })
                .collect(),
            default_max_queued: config.worker.max_queued_per_type,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_come_from_the_config_and_name_their_knob() {
        let config = Config::from_toml(
            "[worker]\nmax_queued_per_type = 50\n[job_types.timer]\nmax_queued = 7\nmax_concurrent = 2\n[job_types.noop]\nmax_concurrent = 1\n",
        )
        .unwrap();
        let limits = JobLimits::from_config(&config);
        assert_eq!(
            limits.max_queued("timer"),
            Some((7, "job_types.timer.max_queued".to_owned()))
        );
        assert_eq!(
            limits.max_queued("noop"),
            Some((50, "worker.max_queued_per_type".to_owned()))
        );
        assert_eq!(limits.max_concurrent("timer"), Some(2));
        assert_eq!(limits.max_concurrent("other"), None);
        assert_eq!(
            JobLimits::from_config(&Config::default()),
            JobLimits::default()
        );
    }
}
