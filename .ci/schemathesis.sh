#!/usr/bin/env bash
# Bad input at scale: schemathesis generates requests from the server's own
# OpenAPI document (`/api/openapi.json`), valid and invalid, and checks every
# answer: no 5xx, every status documented, every body matching its schema,
# 405s that list the allowed methods, auth enforced where it is declared, a
# deleted resource gone. Runs against a throwaway server per store (SQLite,
# then Postgres: some failures only one store shows), bounded in examples
# per operation and in wall time. Prints the counts; exits non-zero on any
# failure, on an error inside schemathesis, or on an ERROR or a panic in the
# server's log.
#
# Settings (environment):
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (default 100)
#   SCHEMATHESIS_STORES        stores to run against (default "sqlite postgres")
#   SCHEMATHESIS_SEED          replay a run with the seed it printed
#   SCHEMATHESIS_TIMEOUT       hard limit for one schemathesis run, seconds (default 150)
#   TEST_DATABASE_URL          Postgres admin URL (default postgres://postgres@127.0.0.1:5432/postgres)
#   SPECGEN_BIN                a server binary to test instead of building target/debug/specgen
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-100}
stores=${SCHEMATHESIS_STORES:-sqlite postgres}
run_timeout=${SCHEMATHESIS_TIMEOUT:-150}
admin_url=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
requirements=.ci/schemathesis-requirements.txt
venv=target/schemathesis-venv
out=target/schemathesis
# Everything but three checks. positive_data_acceptance and
# negative_data_rejection compare the server's validation with the JSON
# Schema, which cannot say "after trimming", "a lowercase letter, an
# uppercase letter and a digit", "an IANA zone" or "a provider that is
# enabled": they would flag the contract's own rules. ensure_resource_availability
# takes the 404 for adding an unknown email as a participant (the contract's
# answer) for a session that vanished.
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
checks+=,response_headers_conformance,missing_required_header,unsupported_method,allow_header_conformance
checks+=,use_after_free,ignored_auth

# 1. schemathesis, pinned, in a venv under target/ (reinstalled when the pins change).
if ! cmp -s "$requirements" "$venv/requirements.txt" 2>/dev/null; then
  echo "installing schemathesis into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$venv/requirements.txt"
fi
schemathesis=$PWD/$venv/bin/schemathesis
"$schemathesis" --version

# 2. The server, as CI builds it anyway (a no-op when it is up to date).
if [ -n "${SPECGEN_BIN:-}" ]; then
  binary=$SPECGEN_BIN
else
  cargo build --quiet --locked -p specgen
  binary=target/debug/specgen
fi

rm -rf "$out"
mkdir -p "$out"
server_pid=
database=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ -n "$database" ]; then
    psql "$admin_url" -qc "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  rm -rf "${data_dir:-}"
}
trap cleanup EXIT

free_port() {
  "$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Registers a fresh user; prints its access token.
register() {
  local base=$1 email=$2
  curl -sf -X POST "$base/api/v1/auth/register" -H 'content-type: application/json' \
    -d "{\"email\": \"$email\", \"password\": \"Sturdy-Otter-42\", \"name\": \"Schema Thesis\"}" |
    "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["data"]["tokens"]["accessToken"])'
}

failed=0
summary=()

# One schemathesis run; its JSON report goes to $out/<name>/.
fuzz() {
  local name=$1 base=$2 token=$3
  shift 3
  local dir=$out/$name
  mkdir -p "$dir"
  local seed=()
  [ -n "${SCHEMATHESIS_SEED:-}" ] && seed=(--seed "$SCHEMATHESIS_SEED")
  local status=0
  # Run from the report directory: hypothesis keeps its example database in
  # the working directory, which must not be the repository.
  (cd "$dir" && timeout --kill-after=10 "$run_timeout" "$schemathesis" run "$base/api/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks "$checks" \
    --max-examples "$max_examples" "${seed[@]}" \
    --request-timeout 30 \
    --no-color \
    --report json,junit --report-dir . \
    "$@" >schemathesis.log 2>&1) || status=$?
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "!! $name: schemathesis did not finish within ${run_timeout}s"
    failed=1
    summary+=("$name: TIMED OUT after ${run_timeout}s")
    return
  fi
  local report
  report=$(ls "$dir"/json-*.json 2>/dev/null | head -n1 || true)
  if [ -z "$report" ]; then
    echo "!! $name: schemathesis exited $status without a report:"
    tail -n 40 "$dir/schemathesis.log"
    failed=1
    summary+=("$name: NO REPORT (exit $status)")
    return
  fi
  local line
  line=$("$venv/bin/python" - "$report" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ops, cases = r["operations"], r["test_cases"]
kinds = ", ".join(f'{f["code"]} {f["title"]}: {f["count"]}' for f in r["failures"]) or "none"
errors = len(r["errors"])
print(f'operations {ops["tested"]}/{ops["selected"]}, test cases {cases["generated"]}, '
      f'failing cases {cases["with_failures"]}, unique failures {cases["unique_failures"]} ({kinds}), '
      f'errors {errors}, seed {r["seed"]}, {r["running_time"]:.0f}s')
sys.exit(0 if r["exit_code"] == 0 and not r["failures"] and not errors else 1)
PY
) || { failed=1; echo "!! $name failed; schemathesis's own report:"; sed -n '/FAILURES\|ERRORS/,$p' "$dir/schemathesis.log"; }
  summary+=("$name: $line")
  echo "   $name: $line"
}

for store in $stores; do
  data_dir=$(mktemp -d)
  case $store in
    sqlite) url="sqlite://$data_dir/specgen.db" ;;
    postgres)
      database="specgen_test_schemathesis_$$"
      psql "$admin_url" -qc "CREATE DATABASE \"$database\"" >/dev/null
      url="${admin_url%/*}/$database"
      ;;
    *) echo "unknown store $store"; exit 2 ;;
  esac
  port=$(free_port)
  base="http://127.0.0.1:$port"
  echo "== $store: server on $base"
  # Registration and message limits are lifted: the fuzzer registers and
  # sends far more than a person would, and a 429 there would only hide the
  # handlers behind it. Login's failed-attempt limit stays (its 429 is documented).
  SPECGEN_LISTEN="127.0.0.1:$port" DATABASE_URL="$url" SPECGEN_DATA_DIR="$data_dir" \
    SPECGEN_RATE_REGISTER=100000/60 SPECGEN_RATE_MESSAGES=100000/60 SPECGEN_DEMO_CHUNK_DELAY_MS=0 \
    RUST_LOG=warn "$binary" serve >"$out/server-$store.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do curl -sf "$base/health/ready" >/dev/null && break; sleep 0.2; done
  curl -sf "$base/health/ready" >/dev/null || { echo "server did not start:"; cat "$out/server-$store.log"; exit 1; }

  # Everything but logout-all, whose success revokes the very token the
  # run authenticates with (every later case would only see 401s).
  fuzz "$store" "$base" "$(register "$base" "fuzz@example.com")" --exclude-path /api/v1/auth/logout-all
  # logout-all alone, with a user of its own.
  fuzz "$store-logout-all" "$base" "$(register "$base" "fuzz-logout-all@example.com")" \
    --include-path /api/v1/auth/logout-all

  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=
  # A 500 is caught by the checks; a panic or an error in a task that
  # answers no request (a reply streaming in the background) only here.
  # actix-http logs a request it cannot parse (a NUL byte in a header, say)
  # at ERROR and answers it 400 itself: the client's fault, not a failure.
  errors() { grep -E '"level":"ERROR"|panicked' "$1" | grep -v 'request parse error' || true; }
  if [ -n "$(errors "$out/server-$store.log")" ]; then
    echo "!! the $store server logged errors:"
    errors "$out/server-$store.log" | head -n 20
    failed=1
    summary+=("$store: ERRORS IN SERVER LOG")
  fi
  if [ -n "$database" ]; then
    psql "$admin_url" -qc "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" >/dev/null
    database=
  fi
  rm -rf "$data_dir"
done

echo
echo "schemathesis summary (max $max_examples examples per operation and phase; reports in $out/):"
printf '  %s\n' "${summary[@]}"
echo "done in $(( $(date +%s) - started ))s"
exit "$failed"
