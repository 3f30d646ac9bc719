#!/usr/bin/env bash
# Instructions per streamed reply, counted by valgrind's callgrind: the
# streaming benchmark's workload (fake Anthropic upstream, 50 chunks sent at
# once), with the server under callgrind. Counts user-space instructions
# only (not the kernel's work, not thread wake-ups), but the same build and
# workload give the same count within about 1% however busy the machine is,
# so it shows changes of a few percent that wall-clock runs here cannot.
#   SERVER_BIN=<other build>  count another build (an A/B, one after the other)
#   LEVELS=1,50               concurrent streams, one count per level
#   SECONDS_PER_LEVEL=10      measured time per level (after 3 s of warm-up)
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
port=${PORT:-18083}
seconds=${SECONDS_PER_LEVEL:-10}
levels=${LEVELS:-1,50}
target=${CARGO_TARGET_DIR:-target}
server_bin=${SERVER_BIN:-$target/release/specgen}
cargo build --release -q -p specgen -p specgen-loadgen
loadgen="$target/release/specgen-loadgen"
dir=$(mktemp -d)
pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
# shellcheck source=.ci/bench/streaming.sh
. .ci/bench/streaming.sh
start_fake 50 0 3600
export_server_env "$port"
start_server "$port" valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.%p" "$server_bin"
token=$(register "$port" instructions-bench@example.com)
stream() {
  "$loadgen" --base "http://127.0.0.1:$port" stream --token "$token" --levels "$1" --seconds "$2" \
    --first-byte-ms 50 --stagger-ms 50 --server-pid "$server"
}
echo "server: $server_bin under callgrind; upstream: first byte after 50 ms, then 50 chunks at once"
dump=0
for level in ${levels//,/ }; do
  # Warm-up: pools, prepared statements, the first session pages.
  stream "$level" 3 >/dev/null
  callgrind_control -z "$server" >/dev/null 2>&1
  replies=$(stream "$level" "$seconds" | grep -o 'replies=[0-9]*' | cut -d= -f2)
  callgrind_control -d "$server" >/dev/null 2>&1
  dump=$((dump + 1))
  file="$dir/callgrind.$server.$dump"
  until [ -s "$file" ]; do sleep 0.2; done
  instructions=$(awk '/^summary:/ {print $2}' "$file")
  echo "streams=$level: replies=$replies instructions=$instructions per reply=$((instructions / replies))"
done
