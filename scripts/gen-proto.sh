#!/usr/bin/env bash
# Regenerates crates/last9-core/src/encoding/io.prometheus.client.rs from the vendored
# metrics.proto (Prometheus's io.prometheus.client). The output is checked in, so neither the
# build nor CI needs protoc or prost-build; run this only after changing the .proto file.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/proto-gen}" \
  cargo run -q --manifest-path tools/proto-gen/Cargo.toml
cargo fmt --all
