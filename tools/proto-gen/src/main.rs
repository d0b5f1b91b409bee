//! Writes the prost code of the vendored Prometheus protos: the exposition's
//! `io/prometheus/client/metrics.proto` to `src/encoding/io.prometheus.client.rs`, remote
//! write's `prometheus/remote.proto` to `src/delivery/remote_write/prometheus.rs`. Parsing is protox's
//! (pure Rust), so neither this tool nor the build needs `protoc`; the output is checked in, so
//! the build needs neither prost-build nor this tool.

use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/last9-core");
    let proto = root.join("proto");
    for (file, out) in [
        ("io/prometheus/client/metrics.proto", "src/encoding"),
        ("prometheus/remote.proto", "src/delivery/remote_write"),
    ] {
        let files = protox::compile([file], [&proto]).expect("the proto file parses");
        prost_build::Config::new()
            .out_dir(root.join(out))
            .compile_fds(files)
            .expect("prost generates the code");
        println!("generated {file} into {out}");
    }
}
