#!/usr/bin/env bash
# Gateway benchmark (release build, embedded store, in-process bus): server
# RSS per authenticated, joined, idle WebSocket and the connect rate, then
# fan-out latency (send -> receipt at every member) and lost messages in one
# session of CONNECTIONS/SESSIONS members, one message every INTERVAL_MS.
set -euo pipefail
cd "$(dirname "$0")/../.."
port=${PORT:-18083}
connections=${CONNECTIONS:-15000}
sessions=${SESSIONS:-15}
users=${USERS:-100}
interval_ms=${INTERVAL_MS:-100}
fanout_seconds=${FANOUT_SECONDS:-20}
target=${CARGO_TARGET_DIR:-target}
# Each side holds one descriptor per connection.
ulimit -n "$(ulimit -Hn)"
cargo build --release -q -p specgen -p specgen-loadgen
dir=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill -TERM "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
export SPECGEN_DATA_DIR="$dir" DATABASE_URL="sqlite://$dir/specgen.db" SPECGEN_LISTEN="127.0.0.1:$port" RUST_LOG=warn \
  SPECGEN_RATE_MESSAGES=100000000/60 SPECGEN_RATE_REGISTER=100000/60
"$target/release/specgen" serve >"$dir/server.log" 2>&1 &
server=$!
until curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1; do sleep 0.05; done
echo "machine: $(nproc) cores; store: sqlite (WAL); bus: in-process; fd limit $(ulimit -n)"
"$target/release/specgen-loadgen" --base "http://127.0.0.1:$port" ws --connections "$connections" \
  --sessions "$sessions" --users "$users" --interval-ms "$interval_ms" --fanout-seconds "$fanout_seconds" \
  --sources 127.0.0.1,127.0.0.2,127.0.0.3 --server-pid "$server"
