//! jobhost's gRPC contracts, generated from `proto/` at build time (protox and tonic, so no
//! `protoc` is needed): the scheduler API (`jobhost.v1`) that `jobhost` serves and `jobctl`
//! calls, the Chainlink Job Distributor API (`api.job.v1`, `api.node.v1`, `api.csa.v1`,
//! `api.app.v1`, `api.label`), kept wire-identical to Chainlink's published protos, and the
//! messages of the channel Chainlink nodes dial (`cfm` over wsrpc's `message`).
//!
//! Modules mirror the protobuf packages, as the generated code refers to other packages by
//! relative paths. [`scheduler`] and [`jd`] are the short names the rest of jobhost uses.

/// Package `jobhost`.
pub mod jobhost {
    /// Package `jobhost.v1`: the scheduler API.
    #[allow(missing_docs, clippy::all)]
    pub mod v1 {
        tonic::include_proto!("jobhost.v1");
    }
}

/// The Chainlink Job Distributor API, in modules that mirror its protobuf packages.
#[allow(missing_docs, clippy::all)]
pub mod api {
    /// Package `api.label`.
    pub mod label {
        tonic::include_proto!("api.label");
    }
    /// Package `api.job`.
    pub mod job {
        /// Package `api.job.v1`.
        pub mod v1 {
            tonic::include_proto!("api.job.v1");
        }
    }
    /// Package `api.node`.
    pub mod node {
        /// Package `api.node.v1`.
        pub mod v1 {
            tonic::include_proto!("api.node.v1");
        }
    }
    /// Package `api.app`.
    pub mod app {
        /// Package `api.app.v1`: the JD's version.
        pub mod v1 {
            tonic::include_proto!("api.app.v1");
        }
    }
    /// Package `api.csa`.
    pub mod csa {
        /// Package `api.csa.v1`.
        pub mod v1 {
            tonic::include_proto!("api.csa.v1");
        }
    }
}

/// Package `cfm`: what a Chainlink node's feeds manager and its Job Distributor say to each
/// other over wsrpc (`FeedsManager`: node → JD; `NodeService`: JD → node). Messages only.
#[allow(missing_docs, clippy::all)]
pub mod cfm {
    tonic::include_proto!("cfm");
}

/// Package `message`: wsrpc's frame. Every call and every answer is one binary websocket
/// message holding a [`wsrpc::Message`].
#[allow(missing_docs, clippy::all)]
pub mod wsrpc {
    tonic::include_proto!("message");
}

/// The scheduler API (`jobhost.v1`): `JobScheduler` and its messages.
pub use jobhost::v1 as scheduler;

/// The Job Distributor API by service: `job`, `node`, `csa` and the shared `label` types.
pub mod jd {
    pub use crate::api::app::v1 as app;
    pub use crate::api::csa::v1 as csa;
    pub use crate::api::job::v1 as job;
    pub use crate::api::label;
    pub use crate::api::node::v1 as node;
}

/// The encoded descriptor set of every file in `proto/`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/jobhost_descriptor.bin"));
