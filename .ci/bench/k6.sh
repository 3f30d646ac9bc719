#!/usr/bin/env bash
# The seed's k6 load test, reproduced with the workspace's load generator
# (release build, embedded SQLite store by default): virtual users ramp
# 0 -> 100, hold, -> 200, hold, -> 0 (STAGES, k6 style DURATION:TARGET);
# each VU logs in, creates a session and thinks THINK_MS, in a loop. Checks:
# login under 500 ms, session creation under 1,000 ms. One account per VU,
# registered before the clock starts.
#
# STORE=postgres runs against a throwaway database on PG_URL instead
# (default postgres://postgres@127.0.0.1:5432, created and dropped here).
# NO_BUILD=1 uses the release binaries already in the target directory.
set -euo pipefail
cd "$(dirname "$0")/../.."
port=${PORT:-18084}
stages=${STAGES:-30s:100,30s:100,30s:200,30s:200,20s:0}
think_ms=${THINK_MS:-1000}
store=${STORE:-sqlite}
pg_url=${PG_URL:-postgres://postgres@127.0.0.1:5432}
target=${CARGO_TARGET_DIR:-target}
[ -n "${NO_BUILD:-}" ] || cargo build --release -q -p specgen -p specgen-loadgen
dir=$(mktemp -d)
server=""
db=""
cleanup() {
  [ -n "$server" ] && kill -TERM "$server" 2>/dev/null
  wait 2>/dev/null
  [ -n "$db" ] && psql -q "$pg_url/postgres" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
  rm -rf "$dir"
}
trap cleanup EXIT
case "$store" in
  sqlite) database_url="sqlite://$dir/specgen.db" ;;
  postgres)
    db="specgen_k6_$$"
    psql -q "$pg_url/postgres" -c "CREATE DATABASE $db" >/dev/null
    database_url="$pg_url/$db"
    ;;
  *) echo "STORE must be sqlite or postgres" >&2; exit 2 ;;
esac
# One registration per VU from one address, and every VU logging in over and
# over: raise the registration limit. The login limits count failures only,
# so they stay at their defaults (a failed login in this run is a finding).
export SPECGEN_DATA_DIR="$dir" DATABASE_URL="$database_url" SPECGEN_LISTEN="127.0.0.1:$port" RUST_LOG=warn \
  SPECGEN_RATE_REGISTER=100000/3600
"$target/release/specgen" serve >"$dir/server.log" 2>&1 &
server=$!
until curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1; do sleep 0.05; done
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); store: $store; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$target/release/specgen-loadgen" --base "http://127.0.0.1:$port" k6 --stages "$stages" --think-ms "$think_ms" \
  --server-pid "$server"
if grep -q '"level":"ERROR"' "$dir/server.log"; then
  echo "server logged errors:"; grep '"level":"ERROR"' "$dir/server.log" | head -n 5
fi
