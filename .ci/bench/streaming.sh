# Shared start-up of the streaming benchmarks (sourced, not run): a fake
# Anthropic upstream, then the server on the embedded store pointed at it.
# Needs $target, $dir and the pids array; sets $fake_url.

# harness COMMAND...: runs a part of the test rig (the fake upstream, the load
# generator), with HARNESS_THREADS=N as its tokio runtime's worker count
# (tokio's own TOKIO_WORKER_THREADS, set for that process only: the server
# keeps its default).
harness() {
  env ${HARNESS_THREADS:+TOKIO_WORKER_THREADS=$HARNESS_THREADS} "$@"
}

# start_fake FIRST_BYTE_MS CHUNK_MS SECONDS: first byte after FIRST_BYTE_MS,
# then 50 chunks CHUNK_MS apart (0: all at once).
start_fake() {
  harness "$target/release/specgen-loadgen" fake-upstream --first-byte-ms "$1" --chunks 50 --chunk-ms "$2" --seconds "$3" \
    >"$dir/fake.url" &
  pids+=($!)
  until [ -s "$dir/fake.url" ]; do sleep 0.05; done
  fake_url=$(head -n1 "$dir/fake.url")
}

# The server's settings: data in $dir, listening on PORT, the fake upstream as
# Anthropic, and a message limit no benchmark reaches.
export_server_env() {
  export SPECGEN_DATA_DIR="$dir" DATABASE_URL="sqlite://$dir/specgen.db" SPECGEN_LISTEN="127.0.0.1:$1" RUST_LOG=warn \
    ANTHROPIC_API_KEY=bench-key ANTHROPIC_BASE_URL="$fake_url" SPECGEN_RATE_MESSAGES=100000000/60
}

# start_server PORT COMMAND...: runs `COMMAND serve` (the server binary, or a
# tool wrapping it), sets $server to its pid and waits until it is ready.
start_server() {
  local port=$1
  shift
  "$@" serve >"$dir/server.log" 2>&1 &
  server=$!
  pids+=("$server")
  until curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1; do sleep 0.05; done
}

# register PORT EMAIL: signs a new user up and prints its access token.
register() {
  curl -fs -X POST -H 'content-type: application/json' \
    -d "{\"email\":\"$2\",\"password\":\"Bench-Marmot-2024\",\"name\":\"Bench\"}" \
    "http://127.0.0.1:$1/api/v1/auth/register" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["tokens"]["accessToken"])'
}
