#!/usr/bin/env bash
# Runs every test promgate has, on a fresh Debian machine with the Rust toolchain:
# installs the peers the tests start (scripts/setup.sh), checks formatting and lints, builds
# the binary, and runs the unit, integration and end-to-end tests (which start real
# Prometheus, Alertmanager, Pushgateway, VictoriaMetrics, vmagent, SMTP and HTTP capture
# servers beside promgate).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --bins --locked
export PROMGATE_BIN="$PWD/target/debug/promgate"
cargo test --workspace --locked

# The shipped rule pack: promtool accepts it, and its unit tests pass in promgate and in the
# real promtool alike.
promtool check rules alerts.yaml
"$PROMGATE_BIN" check rules alerts.yaml
"$PROMGATE_BIN" test rules tests/rules/*.yml
promtool test rules tests/rules/*.yml

# The compose stack's configuration files load in the programs that read them (the images
# themselves are not built here: no Docker daemon or registry in CI).
docker_dir=$(mktemp -d)
cp docker/promgate.yml alerts.yaml "$docker_dir"/
"$PROMGATE_BIN" check config "$docker_dir/promgate.yml"
rm -rf "$docker_dir"
promtool check config docker/prometheus.yml
amtool check-config docker/alertmanager.yml

# PromQL conformance: Prometheus's own engine tests as promtool rule-test files (calibrated
# on promtool 2.42), and promtool's own test fixtures with their expected exit codes. Each
# exits non-zero on any failure.
../shared/conformance/run.sh "$PROMGATE_BIN"
../shared/conformance/run_upstream_promtool_tests.sh "$PROMGATE_BIN"
