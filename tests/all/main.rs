//! jobhost's end-to-end tests, one binary with a module per area. They run against real
//! components built from `plugins/` (`just plugins`), a real `redis-server` (and Redis
//! Cluster) each test starts on free ports, real cgroups, the real `jobhost` and `jobctl`
//! binaries, and a headless Chromium for the dashboard. The map of what each module covers
//! is in docs/architecture.md (Test map).
//!
//! Run one area with a filter: `just test sandbox::`, `just test store::cluster::`.

mod common;

mod architecture;
mod auth;
mod capabilities;
mod ccip_submit;
mod cli;
mod dashboard;
mod docs;
mod fuzz_regressions;
mod grpc;
mod history;
mod hostile;
mod hot_reload;
mod http;
mod jd;
mod jd_channel;
mod jobctl;
mod languages;
mod limits;
mod nodes;
mod reuse;
mod runtime;
mod sandbox;
mod secrets;
mod shell;
mod store;
mod timer;
mod webhook;
mod worker;
