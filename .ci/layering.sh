#!/usr/bin/env bash
# The hexagon's rule, proven from the dependency graph: the domain, ports and
# application crates must not depend on a driver or a framework, and HTTP
# must not depend on a concrete adapter.
set -euo pipefail
fail=0
check() { # crate forbidden...
  local crate=$1; shift
  local deps
  # A failing cargo tree must fail the check, not pass it silently.
  deps=$(cargo tree -p "$crate" -e normal --prefix none --format '{p}' | awk '{print $1}' | sort -u)
  [ -n "$deps" ] || { echo "cargo tree gave nothing for $crate"; exit 1; }
  for dep in "$@"; do
    if grep -qx "$dep" <<<"$deps"; then
      echo "layering violation: $crate depends on $dep"
      fail=1
    fi
  done
}
adapters=(specgen-store-postgres specgen-store-sqlite specgen-inprocess specgen-redis specgen-ai-claude specgen-ai-openai specgen-ai-demo)
core_forbidden=(diesel diesel-async actix-web actix-http actix-ws reqwest redis deadpool-redis tokio-postgres libsqlite3-sys async-openai "${adapters[@]}")
check specgen-domain "${core_forbidden[@]}" tokio
check specgen-ports "${core_forbidden[@]}"
check specgen-app "${core_forbidden[@]}"
check specgen-http diesel diesel-async redis deadpool-redis async-openai "${adapters[@]}"
check specgen-gateway diesel diesel-async redis deadpool-redis async-openai "${adapters[@]}"
# Adapters depend on ports, never on each other.
for adapter in "${adapters[@]}"; do
  check "$adapter" $(printf '%s\n' "${adapters[@]}" | grep -vx "$adapter")
done
[ "$fail" = 0 ] && echo "layering ok"
exit "$fail"
