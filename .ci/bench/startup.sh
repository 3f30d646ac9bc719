#!/usr/bin/env bash
# Start-up benchmark of the release binary on the embedded store:
# time from exec to /health/ready = 200 (migrations already applied), and
# resident memory once idle. Prints the median of N runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${RUNS:-11}
port=${PORT:-18080}
cargo build --release -q -p specgen
bin=${CARGO_TARGET_DIR:-target}/release/specgen
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export SPECGEN_DATA_DIR="$dir" DATABASE_URL="sqlite://$dir/specgen.db" SPECGEN_LISTEN="127.0.0.1:$port" RUST_LOG=warn
"$bin" migrate >/dev/null

now_ms() { date +%s%N | awk '{printf "%d", $1/1000000}'; }
times=()
rss=()
for _ in $(seq 1 "$runs"); do
  t0=$(date +%s%N)
  "$bin" serve >/dev/null 2>&1 &
  pid=$!
  until curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1; do sleep 0.002; done
  t1=$(date +%s%N)
  times+=("$(( (t1 - t0) / 1000 ))")
  sleep 1
  rss+=("$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")")
  kill -TERM "$pid"; wait "$pid" || true
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "start to ready (median of $runs): $(median "${times[@]}") us"
echo "idle RSS (median of $runs): $(median "${rss[@]}") KiB"
