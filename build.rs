//! Compiles `proto/` into Rust with a pure-Rust protobuf compiler (protox), so a fresh
//! machine builds without a system `protoc`, and keeps the encoded descriptor set for
//! server reflection.

use std::path::PathBuf;

use protox::prost::Message as _;

const PROTOS: &[&str] = &["alis/certimport/v1/certimport.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    // sqlx::migrate! embeds the migration folders; a new file must rebuild the crate.
    println!("cargo:rerun-if-changed=migrations");
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("certimport_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
