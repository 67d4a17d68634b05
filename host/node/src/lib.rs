//! A jobhost node: what runs jobs and serves the APIs, on top of the host's crates.
//!
//! - [`worker`]: the node's loop: claim, run, record; heartbeats, leases, reaping, and
//!   the leader's cron; [`cron`]: cron expressions, shared with the APIs that accept them;
//! - [`jd`]: the Chainlink Job Distributor (nodes, proposals, delivery, CSA key);
//! - [`history`]: the drain that archives finished jobs in the job history (PostgreSQL);
//! - [`api`]: the gRPC and HTTP APIs, with TLS, roles and rate limits;
//! - [`node`]: a running node: its services, ports, worker and loops, started and drained;
//! - [`plugin_state`]: the runtime's plugin state (`kv`) kept in the store;
//! - [`metrics`]: the node's Prometheus metrics;
//! - [`certs`]: a development certificate authority (`jobhost certs init`).
//!
//! The crates below it each own one concern: `jobhost_config` (the typed configuration),
//! `jobhost_store` (the only one that speaks Redis), `jobhost_history` (the only one that
//! speaks PostgreSQL), `jobhost_runtime` (the only one that
//! touches wasmtime), `jobhost_sandbox` (the only one that touches cgroups and signals) and
//! `jobhost_proto` (the gRPC contracts). The `jobhost` binary is a thin layer over this
//! library.

#![warn(missing_docs)]

pub mod api;
pub mod certs;
pub mod cron;
#[doc(hidden)]
pub mod fuzzing;
pub mod history;
pub mod jd;
pub mod metrics;
pub mod node;
pub mod plugin_state;
pub mod text;
pub mod worker;
