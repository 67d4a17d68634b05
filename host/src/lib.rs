//! jobhost: a host for sandboxed job plugins (WebAssembly components).
//!
//! - [`config`]: the typed configuration (file < env < flags);
//! - [`runtime`]: loads plugins and runs job attempts in fresh sandboxed instances.
//!
//! The binaries (`jobhost`, `jobctl`) are thin layers over this library.

#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod runtime;
pub mod sandbox;
pub mod store;
pub mod worker;
