//! Generates the gRPC code from the `.proto` contracts with a protoc that
//! ships inside the `protoc-bin-vendored` crate, so nothing needs installing.

use std::{env, io, path::PathBuf};

const PROTOS: &[&str] = &[
    "recapp/identity/v1/identity.proto",
    "recapp/membership/v1/membership.proto",
];

fn main() -> io::Result<()> {
    let protoc = protoc_bin_vendored::protoc_bin_path().map_err(io::Error::other)?;
    let include = protoc_bin_vendored::include_path().map_err(io::Error::other)?;
    // SAFETY-free: build scripts are single threaded; prost-build reads PROTOC.
    unsafe_set_protoc(&protoc);

    let out_dir = PathBuf::from(env::var("OUT_DIR").map_err(io::Error::other)?);
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("recapp_descriptor.bin"))
        .compile_protos(PROTOS, &[".", include.to_str().unwrap_or_default()])
}

#[allow(unsafe_code)]
fn unsafe_set_protoc(path: &std::path::Path) {
    // Edition 2024 marks set_var unsafe because of other threads; a build
    // script has none.
    unsafe { env::set_var("PROTOC", path) };
}
