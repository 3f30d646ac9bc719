#!/usr/bin/env bash
# Every test of the web client: the unit tests (Node's own runner), then the
# end-to-end suite in Debian's Chromium against a real server.
#
#   SPECGEN_URL=http://127.0.0.1:8080 bash web/tests/run-all.sh   # a server you run
#   bash web/tests/run-all.sh                                      # starts its own
#
# Without SPECGEN_URL it starts a throwaway server from target/debug/specgen
# (or SPECGEN_BIN) on free ports, with a fresh SQLite file, generous rate
# limits, a demo provider slowed to 30 ms a word (so a reload lands
# mid-reply), and an `openai` provider pointing at tests/e2e/fake-openai.mjs,
# which fails mid-answer (for the failed-reply scenario); access tokens live
# 20 s so the renewal can be watched. It is stopped at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund
fi

echo "== unit tests"
node --test tests/unit/

if [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
  echo "Chromium not found at ${CHROMIUM_PATH:-/usr/bin/chromium}: apt-get install -y chromium (or set CHROMIUM_PATH)" >&2
  exit 2
fi

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -n "${data_dir:-}" ] && rm -rf "$data_dir"
}
trap cleanup EXIT

if [ -z "${SPECGEN_URL:-}" ]; then
  bin="${SPECGEN_BIN:-../target/debug/specgen}"
  if [ ! -x "$bin" ]; then
    echo "Set SPECGEN_URL, or build the server first: cargo build -p specgen" >&2
    exit 2
  fi
  free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
  port=$(free_port)
  ai_port=$(free_port)
  data_dir=$(mktemp -d)
  node tests/e2e/fake-openai.mjs "$ai_port" >"$data_dir/fake-openai.log" 2>&1 &
  pids+=($!)
  SPECGEN_LISTEN="127.0.0.1:$port" \
  DATABASE_URL="sqlite://$data_dir/specgen.db" \
  SPECGEN_DATA_DIR="$data_dir" \
  SPECGEN_DEMO_CHUNK_DELAY_MS=30 \
  SPECGEN_RATE_REGISTER=10000/60 \
  SPECGEN_RATE_MESSAGES=100000/60 \
  SPECGEN_DEMO_PROVIDER=true \
  SPECGEN_ACCESS_TOKEN_TTL=20 \
  AI_DEFAULT_PROVIDER=demo \
  OPENAI_BASE_URL="http://127.0.0.1:$ai_port/v1" \
  OPENAI_API_KEY=e2e \
  RUST_LOG=warn \
    "$bin" serve >"$data_dir/server.log" 2>&1 &
  pids+=($!)
  export SPECGEN_URL="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do
    if curl -fsS "$SPECGEN_URL/health/ready" >/dev/null 2>&1; then break; fi
    sleep 0.2
  done
  curl -fsS "$SPECGEN_URL/health/ready" >/dev/null || { echo "the server did not start:" >&2; tail -20 "$data_dir/server.log" >&2; exit 1; }
  echo "== started $bin at $SPECGEN_URL"
fi

echo "== end-to-end tests against $SPECGEN_URL"
node tests/e2e/run.mjs "$@"
