//! The APIs a node serves. `grpc`: the scheduler API, health and reflection; `http`:
//! inbound webhook triggers and health; `submit`: job submission shared by both.

pub mod grpc;
pub mod http;
pub mod submit;

/// Generated types and services of `proto/jobhost/v1`.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("jobhost.v1");

    /// The encoded descriptor set of `proto/`, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/jobhost_descriptor.bin"));
}
