//! jobhost: a host for sandboxed job plugins (WebAssembly components).
//!
//! - [`config`]: the typed configuration (file < env < flags);
//! - [`runtime`]: loads plugins and runs job attempts in fresh sandboxed instances (the only
//!   code that touches wasmtime);
//! - [`store`]: jobs, queues, leases, nodes and logs in Redis (the only code that speaks Redis);
//! - [`worker`]: a node's loop: claim, run, record, and its housekeeping;
//! - [`sandbox`]: native processes in cgroups (the only code that touches cgroups and signals);
//! - [`jd`]: the Chainlink Job Distributor (nodes, proposals, delivery, CSA key);
//! - [`metrics`]: the node's Prometheus metrics;
//! - [`api`]: the gRPC and HTTP APIs, with TLS, roles and rate limits;
//! - [`certs`]: a development certificate authority (`jobhost certs init`).
//!
//! The binaries (`jobhost`, `jobctl`) are thin layers over this library.

#![warn(missing_docs)]

pub mod api;
pub mod certs;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod jd;
pub mod metrics;
pub mod runtime;
pub mod sandbox;
pub mod store;
pub mod worker;
