#!/usr/bin/env bash
# Validates everything under deploy/ that can be checked without a Docker
# engine or a Kubernetes cluster; exits non-zero on any problem.
#
#   bash deploy/validate.sh                  # from anywhere in the repository
#   METRICS_FILE=metrics.txt bash deploy/validate.sh
#                                           # check metric names against a
#                                           # capture of a server's /metrics
#   METRICS_STRICT=1 ...                     # metrics not exported yet
#                                           # (deploy/metrics-pending.txt) fail
#
# What it needs, and installs when missing (package registries only):
#   - bash, git, python3 >= 3.11 with the venv module, pip reaching PyPI
#   - PyPI, into a venv under $SPECGEN_TOOLS_DIR
#     (default ~/.cache/specgen-deploy-tools):
#       PyYAML, kubernetes-validate==1.37.0 (bundles the Kubernetes JSON
#       schemas, so no download at check time), dockerfile==3.4.0 (BuildKit's
#       Dockerfile parser)
#   - Debian (apt-get, as root), only when not on PATH already:
#       promtool  from package `prometheus` (2.42 on bookworm): the binary is
#                 extracted from the .deb (`apt-get download`), so no
#                 Prometheus service is installed or started
#       caddy     from package `caddy` (2.6 on bookworm), extracted likewise
#       docker-compose (1.29, package `docker-compose`), installed, unless
#                 the `docker compose` v2 plugin is present; neither needs a
#                 Docker engine for `config`
#   - kubectl, optional: renders deploy/k8s with `kubectl kustomize`; without
#     it the manifests are validated file by file
# First run about 30 s (downloads), then about 5 s.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
tools="${SPECGEN_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/specgen-deploy-tools}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$tools/bin"
export PATH="$tools/bin:$PATH"

started=$(date +%s)
failed=()
step() { printf '\n=== %s (+%ss)\n' "$*" "$(( $(date +%s) - started ))"; }
# Runs a check; a failure is remembered and the next checks still run.
run() {
  local name="$1"; shift
  if ! "$@"; then
    failed+=("$name")
    printf 'FAILED: %s\n' "$name"
  fi
}

apt_ready=""
apt_lists() {
  # A fresh machine may have no package lists yet.
  if [[ -z "$apt_ready" ]]; then
    if ! apt-cache policy "$1" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
      apt-get update -qq >/dev/null || return 1
    fi
    apt_ready=1
  fi
}

# Puts a binary from a Debian package into $tools/bin without installing the
# package (and so without its service).
binary_from_deb() {
  local package="$1" binary="$2"
  command -v "$binary" >/dev/null && return 0
  echo "fetching $binary from Debian package $package"
  apt_lists "$package" || { echo "cannot read Debian package lists"; return 1; }
  local dir="$work/deb-$package"
  mkdir -p "$dir" && (cd "$dir" && apt-get download "$package" >/dev/null 2>&1) || {
    echo "apt-get download $package failed"; return 1; }
  dpkg-deb -x "$dir"/"$package"_*.deb "$dir/x" && install -m 0755 "$dir/x/usr/bin/$binary" "$tools/bin/$binary"
}

step "tools"
py="$tools/venv/bin/python"
if ! "$py" -c 'import yaml, kubernetes_validate, dockerfile' 2>/dev/null; then
  python3 -m venv "$tools/venv" &&
    "$tools/venv/bin/pip" install -q --disable-pip-version-check \
      'PyYAML>=6' 'kubernetes-validate==1.37.0' 'dockerfile==3.4.0' ||
    { echo "cannot install the Python tools"; exit 1; }
fi
binary_from_deb prometheus promtool || exit 1
binary_from_deb caddy caddy || exit 1
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  if ! command -v docker-compose >/dev/null; then
    echo "installing Debian's docker-compose (no docker compose v2 plugin here)"
    apt_lists docker-compose && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      docker-compose >/dev/null || { echo "cannot install docker-compose"; exit 1; }
  fi
  compose=(docker-compose)
fi
promtool --version 2>&1 | head -n1
caddy version
"${compose[@]}" version 2>&1 | head -n1
"$py" -c 'import importlib.metadata as m; print("kubernetes-validate", m.version("kubernetes-validate"))'

step "Prometheus: config, rule syntax, rule unit tests"
# promtool resolves rule_files next to the config, as Prometheus does.
run "promtool check config" promtool check config "$here/prometheus/prometheus.yml"
run "promtool check rules" promtool check rules "$here/prometheus/alerts.yml"
run "promtool test rules" bash -c "cd '$here/prometheus' && promtool test rules alerts.test.yml"

step "compose: syntax and interpolation (${compose[*]} config)"
# A copy with the example env files filled with dummies, as an operator's
# would be; compose checks the schema, references and required variables.
cp -r "$here" "$work/deploy"
sed -E 's/^([A-Z_]+)=$/\1=validate-only-not-a-secret/' "$here/.env.example" >"$work/deploy/.env"
cp "$here/specgen.env.example" "$work/deploy/specgen.env"
run "compose config" "${compose[@]}" --project-directory "$work/deploy" -f "$work/deploy/compose.yaml" config -q

step "Caddy: config, and a smoke test in front of a fake upstream"
run "caddy validate" bash -o pipefail -c "caddy validate --config '$here/caddy/Caddyfile' --adapter caddyfile 2>&1 | tail -n1"
run "proxy smoke test" "$py" "$here/tools/proxy_smoke.py" "$(command -v caddy)" "$here/caddy/Caddyfile"

step "Kubernetes: manifests against the bundled schemas (strict)"
manifests=()
if command -v kubectl >/dev/null && kubectl kustomize "$here/k8s" >"$work/k8s.yaml" 2>"$work/kustomize.err"; then
  manifests+=("$work/k8s.yaml")
  echo "rendered with kubectl kustomize"
else
  [[ -s "$work/kustomize.err" ]] && { cat "$work/kustomize.err"; failed+=("kubectl kustomize"); }
  for f in "$here"/k8s/*.yaml; do
    case "$(basename "$f")" in kustomization.yaml | secret.example.yaml) ;; *) manifests+=("$f") ;; esac
  done
fi
manifests+=("$here/k8s/secret.example.yaml")
# The oldest Kubernetes still commonly run, and the newest the package knows.
for version in 1.30.0 1.37.0; do
  run "kubernetes-validate $version" "$tools/venv/bin/kubernetes-validate" --strict --quiet -k "$version" "${manifests[@]}"
done
echo "validated ${#manifests[@]} file(s) against 1.30 and 1.37"

step "cross-file consistency (Dockerfile, compose, proxy, Prometheus, collector, Grafana, k8s, runbooks)"
run "consistency" "$py" "$here/tools/check_consistency.py" "$repo"

step "metric names in alerts and dashboards"
run "metric names" "$py" "$here/tools/check_metrics.py" --repo "$repo" \
  --rules "$here/prometheus/alerts.yml" \
  --dashboard "$here"/grafana/dashboards/*.json \
  --pending "$here/metrics-pending.txt"

step "done in $(( $(date +%s) - started ))s"
if (( ${#failed[@]} )); then
  printf 'deploy/validate.sh FAILED: %s\n' "${failed[*]}"
  exit 1
fi
echo "deploy/validate.sh: all checks passed"
