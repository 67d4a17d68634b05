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
        "v1/app/app.proto",
    ];
    // The channel Chainlink nodes dial (wsrpc): its frame and the feeds-manager messages.
    // Messages only: these are not gRPC services, and not offered through reflection.
    let channel = ["wsrpc/message.proto", "cfm/feedsmanager.proto"];
    for file in files.iter().chain(&channel) {
        println!("cargo:rerun-if-changed=../../proto/{file}");
    }
    let descriptors = protox::compile(files, [&proto])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("jobhost_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(false)
        .compile_fds(protox::compile(channel, [&proto])?)?;
    Ok(())
}
