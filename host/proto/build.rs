//! Compiles `proto/` to Rust (tonic) with protox, a protobuf compiler in Rust, so building
//! needs no `protoc` on the machine. Also writes the descriptor set for server reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = PathBuf::from("../../proto");
    let files = [
        "jobhost/v1/scheduler.proto",
        // The Chainlink Job Distributor API, under the import paths its clients use.
        "v1/shared/ptypes/label.proto",
        "v1/job/job.proto",
        "v1/node/node.proto",
        "v1/csa/csa.proto",
    ];
    for file in &files {
        println!("cargo:rerun-if-changed=../../proto/{file}");
    }
    let descriptors = protox::compile(files, [&proto])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("jobhost_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
