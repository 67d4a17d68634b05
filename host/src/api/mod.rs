//! The APIs a node serves. `grpc`: the scheduler API, health and reflection; `http`:
//! the REST mirror, dashboard, inbound webhook triggers and health; `submit`: job
//! submission shared by both; `tls` and `auth`: who may call them; `ratelimit`: how often;
//! `places`: how many streams and connections one client may hold at once.

pub mod auth;
pub mod grpc;
pub mod http;
pub mod places;
pub mod ratelimit;
pub mod submit;
pub mod tls;

/// Generated types and services of `proto/jobhost/v1`.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("jobhost.v1");

    /// The encoded descriptor set of `proto/`, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/jobhost_descriptor.bin"));
}

/// Generated types and services of the Chainlink Job Distributor API (`proto/v1/`), in
/// modules that mirror their protobuf packages (`api.label`, `api.job.v1`, `api.node.v1`,
/// `api.csa.v1`).
#[allow(missing_docs, clippy::all)]
pub mod jd_proto {
    /// Package `api`.
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
        /// Package `api.csa`.
        pub mod csa {
            /// Package `api.csa.v1`.
            pub mod v1 {
                tonic::include_proto!("api.csa.v1");
            }
        }
    }
}
