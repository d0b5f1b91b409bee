//! Writes the prost code of `crates/last9-core/proto/io/prometheus/client/metrics.proto` to
//! `crates/last9-core/src/encoding/io.prometheus.client.rs`. Parsing is protox's (pure Rust), so
//! neither this tool nor the build needs `protoc`; the output is checked in, so the build needs
//! neither prost-build nor this tool.

use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/last9-core");
    let proto = root.join("proto");
    let files = protox::compile(["io/prometheus/client/metrics.proto"], [&proto])
        .expect("metrics.proto parses");
    let out = root.join("src/encoding");
    prost_build::Config::new()
        .out_dir(&out)
        .compile_fds(files)
        .expect("prost generates the code");
    println!("wrote {}", out.join("io.prometheus.client.rs").display());
}
