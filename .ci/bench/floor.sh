#!/usr/bin/env bash
# What this machine itself allows, without Spec Gen: the cost of waking a
# thread (the streaming benchmark's path crosses threads and processes about
# a dozen times); the floor of the streaming benchmark at 1 and 50 streams
# (a relay that only passes bytes between clients and a fake upstream); and
# the kernel's floor for the gateway's fan-out (1,000 loopback sockets
# written with nothing but write(), read by an epoll loop). Needs only gcc.
set -euo pipefail
cd "$(dirname "$0")/probes"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
gcc -O2 -Wall -Wextra -pthread wake.c -o "$dir/wake"
gcc -O2 -Wall -Wextra -pthread ws_floor.c -o "$dir/ws_floor"
gcc -O2 -Wall -Wextra -pthread relay_floor.c -o "$dir/relay_floor"
echo "machine: $(nproc) cores"
"$dir/wake"
for round in 1 2 3; do
  "$dir/relay_floor" 150 50 1 50
  "$dir/relay_floor" 150 50 50 50
done
for round in 1 2 3; do
  echo "fan-out floor, round $round:"
  "$dir/ws_floor" 2 2 1000 200 320
done
