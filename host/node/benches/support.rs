//! Helpers shared by the benchmarks (each bench uses a subset).
#![allow(dead_code)]

use std::path::PathBuf;

/// The folder of the test plugins built by `just plugins`.
pub fn test_plugins_dir() -> PathBuf {
    let dir = std::env::var_os("JOBHOST_TEST_PLUGINS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugins"));
    let dir = dir.join("testing");
    assert!(
        dir.join("noop.wasm").is_file(),
        "no noop.wasm in {}: run `just bench`",
        dir.display()
    );
    dir
}

/// The `p` quantile (0..=1) of sorted samples.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
