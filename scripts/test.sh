#!/usr/bin/env bash
# Runs every test promgate has, on a fresh Debian machine with the Rust toolchain:
# installs the peers the tests start (scripts/setup.sh), checks formatting and lints, builds
# the binary, and runs the unit, integration and end-to-end tests (which start real
# Prometheus and VictoriaMetrics processes beside promgate).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --bins --locked
export PROMGATE_BIN="$PWD/target/debug/promgate"
cargo test --workspace --locked
