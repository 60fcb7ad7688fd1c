#!/usr/bin/env bash
# Times `promgate test rules` against `promtool test rules` over the calibrated PromQL
# conformance suite (../shared/conformance/promql/*.yml, 494 files), invoked the same way:
#   - per file: the suite's own run.sh, one process per file (as CI runs it);
#   - one invocation with every file as arguments.
# Runs alternate between the two tools; prints each run's wall time and the medians.
#
# Usage: scripts/bench-test-rules.sh [RUNS]   (default 3; needs target/release/promgate)
# Env:   PROMGATE_BIN   the promgate binary (default target/release/promgate)
#        CONFORMANCE    the conformance directory (default ../shared/conformance)
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-3}"
pg="${PROMGATE_BIN:-$PWD/target/release/promgate}"
conf="${CONFORMANCE:-$PWD/../shared/conformance}"
[ -x "$pg" ] || { echo "no promgate at $pg: cargo build --release -p gateway" >&2; exit 1; }
command -v promtool >/dev/null || { echo "promtool not installed: scripts/setup.sh" >&2; exit 1; }
files=("$conf"/promql/*.yml)
out="$(mktemp)"
trap 'rm -f "$out"' EXIT

# Wall seconds of one command; fails the script if the command fails.
timed() {
  local start end
  start=$(date +%s.%N)
  "$@" >"$out" 2>&1 || { echo "failed: $*" >&2; tail -5 "$out" >&2; exit 1; }
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

declare -a pf_tool pf_pg one_tool one_pg
for ((i = 1; i <= runs; i++)); do
  pf_tool+=("$(timed "$conf/run.sh" promtool)")
  pf_pg+=("$(timed "$conf/run.sh" "$pg")")
  one_tool+=("$(timed promtool test rules "${files[@]}")")
  one_pg+=("$(timed "$pg" test rules "${files[@]}")")
  echo "run $i: per file promtool ${pf_tool[-1]}s promgate ${pf_pg[-1]}s;" \
    "one invocation promtool ${one_tool[-1]}s promgate ${one_pg[-1]}s"
done
m1=$(median "${pf_tool[@]}"); m2=$(median "${pf_pg[@]}")
m3=$(median "${one_tool[@]}"); m4=$(median "${one_pg[@]}")
echo
echo "| ${#files[@]} files, median of $runs | promtool 2.42 s | promgate s | promgate / promtool |"
echo "|---|---:|---:|---:|"
printf '| one process per file (run.sh) | %.2f | %.2f | %.3f |\n' "$m1" "$m2" "$(echo "$m2 / $m1" | bc -l)"
printf '| all files in one invocation | %.2f | %.3f | %.4f |\n' "$m3" "$m4" "$(echo "$m4 / $m3" | bc -l)"
