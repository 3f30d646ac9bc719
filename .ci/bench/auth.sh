#!/usr/bin/env bash
# Accounts benchmark (release build, embedded store): login throughput, and
# /health/live p50/p99 while 2 x cores login loops run flat out.
set -euo pipefail
cd "$(dirname "$0")/../.."
port=${PORT:-18081}
seconds=${SECONDS_TO_RUN:-10}
loops=${LOOPS:-$(( 2 * $(nproc) ))}
# SERVER_BIN=path runs another build of the server (an A/B against an older commit).
server_bin=${SERVER_BIN:-${CARGO_TARGET_DIR:-target}/release/specgen}
cargo build --release -q -p specgen -p specgen-loadgen
dir=$(mktemp -d)
export SPECGEN_DATA_DIR="$dir" DATABASE_URL="sqlite://$dir/specgen.db" SPECGEN_LISTEN="127.0.0.1:$port" RUST_LOG=warn
"$server_bin" serve >"$dir/server.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
until curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1; do sleep 0.05; done
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); store: sqlite"
"${CARGO_TARGET_DIR:-target}/release/specgen-loadgen" --base "http://127.0.0.1:$port" auth --concurrency "$loops" --seconds "$seconds"
