#!/usr/bin/env bash
# Streaming benchmark (release build, embedded store): against a fake
# Anthropic upstream that answers its first byte after FIRST_BYTE_MS and then
# streams 50 chunks, the time to first token seen by the client minus that
# delay (what Spec Gen adds: auth, rate limit, persistence, context,
# routing), at 1, 50 and 200 concurrent streams, and server CPU per reply.
set -euo pipefail
cd "$(dirname "$0")/../.."
port=${PORT:-18082}
seconds=${SECONDS_PER_LEVEL:-8}
first_byte_ms=${FIRST_BYTE_MS:-50}
# CHUNK_MS=20 paces the chunks like a model writing 50 tokens a second; the
# default 0 sends them all at once, the harder case for CPU and queueing.
chunk_ms=${CHUNK_MS:-0}
levels=${LEVELS:-1,50,200}
target=${CARGO_TARGET_DIR:-target}
# TIMELINE=file.csv writes every reply's timings there.
# THINK_MS=1000 pauses each stream that long after a reply, like a person
# reading it (then the replies/s and CPU figures include the pauses).
# SERVER_BIN=path runs another build of the server (an A/B against an older commit).
server_bin=${SERVER_BIN:-$target/release/specgen}
cargo build --release -q -p specgen -p specgen-loadgen
dir=$(mktemp -d)
pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
# shellcheck source=.ci/bench/streaming.sh
. .ci/bench/streaming.sh
start_fake "$first_byte_ms" "$chunk_ms" 600
export_server_env "$port"
start_server "$port" "$server_bin"
token=$(register "$port" stream-bench@example.com)
echo "machine: $(nproc) cores; store: sqlite (WAL); upstream first byte: ${first_byte_ms} ms, 50 chunks, ${chunk_ms} ms apart"
harness "$target/release/specgen-loadgen" --base "http://127.0.0.1:$port" stream --token "$token" --levels "$levels" \
  --seconds "$seconds" --first-byte-ms "$first_byte_ms" --stagger-ms $((first_byte_ms + 50 * chunk_ms)) --server-pid "$server" \
  --think-ms "${THINK_MS:-0}" ${TIMELINE:+--timeline "$TIMELINE"}
