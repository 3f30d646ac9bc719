# Everyday recipes. `just --list` shows them.

# Run the server with embedded defaults and open the browser.
run:
    cargo run --release -- serve --open

# Every test (needs Postgres and Redis on localhost; see README).
test:
    bash .ci/services.sh
    cargo nextest run --workspace

# The whole CI pipeline, as CI runs it.
ci:
    bash .ci/run

# Clippy with warnings denied, and the layering check.
lint:
    cargo clippy --workspace --all-targets -- -D warnings
    bash .ci/layering.sh

fmt:
    cargo fmt --all

# Apply migrations to the configured database.
migrate:
    cargo run --release -- migrate

# Every benchmark (release builds, loopback only, bounded in time).
bench: bench-startup bench-auth bench-stream bench-instructions bench-ws bench-k6 bench-floor

# Start-up time to ready and idle RSS of the release binary.
bench-startup:
    bash .ci/bench/startup.sh

# Login throughput and /health/live p50/p99 under 2 x cores login loops.
bench-auth:
    bash .ci/bench/auth.sh

# Time to first token Spec Gen adds over a fake upstream, and CPU per reply.
bench-stream:
    bash .ci/bench/stream.sh

# Instructions per streamed reply under callgrind (needs valgrind): steady
# where wall-clock figures are noisy, for A/Bs of a few percent
# (SERVER_BIN=<other build>).
bench-instructions:
    bash .ci/bench/instructions.sh

# Server RSS per idle WebSocket, connect rate, fan-out latency and loss.
bench-ws:
    bash .ci/bench/ws.sh

# What the machine itself allows (needs only gcc): the cost of a thread
# wake-up, the streaming benchmark's floor at 1 and 50 streams, and the
# kernel's floor for the gateway's fan-out.
bench-floor:
    bash .ci/bench/floor.sh

# The seed's k6 load test: 0 -> 100 -> 200 VUs logging in and creating sessions
# (STORE=postgres for a throwaway Postgres database, STAGES=30s:50,... to reshape).
bench-k6:
    bash .ci/bench/k6.sh
