#!/usr/bin/env python3
"""Cross-file checks of deploy/ that no single tool makes: the values that
must agree between the Dockerfile, compose.yaml, the Caddyfile, Prometheus,
the OpenTelemetry collector, Grafana, the Kubernetes manifests and
docs/operations.md.

Usage: check_consistency.py REPO_ROOT. Needs PyYAML and `dockerfile` (PyPI).
Exit status 1 on any error.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

errors: list[str] = []


def check(ok: bool, message: str) -> None:
    if not ok:
        errors.append(message)


def load_yaml_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def seconds(value: str | int) -> float:
    """Compose durations: 30s, 1m30s, 500ms."""
    if isinstance(value, (int, float)):
        return float(value)
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", value):
        total += float(amount) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6}[unit]
    return total


def github_anchors(markdown: str) -> set[str]:
    anchors = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code:
            continue
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            text = re.sub(r"`", "", m.group(1)).strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
        for explicit in re.findall(r'<a\s+(?:name|id)="([^"]+)"', line):
            anchors.add(explicit)
    return anchors


def main(repo: Path) -> int:
    deploy = repo / "deploy"

    # ------------------------------------------------------------ Dockerfile
    import dockerfile

    commands = dockerfile.parse_file(str(deploy / "Dockerfile"))
    stages = [i for i, c in enumerate(commands) if c.cmd.upper() == "FROM"]
    check(len(stages) >= 2, "Dockerfile: not multi-stage")
    final = commands[stages[-1]:]
    final_cmds = {c.cmd.upper(): c for c in final}
    user = final_cmds.get("USER")
    image_uid = None
    if user is None:
        errors.append("Dockerfile: the final stage sets no USER (it would run as root)")
    else:
        image_uid = user.value[0].split(":")[0]
        check(image_uid not in ("0", "root"), "Dockerfile: the final stage runs as root")
    check("EXPOSE" in final_cmds and "8080" in " ".join(final_cmds["EXPOSE"].value), "Dockerfile: does not EXPOSE 8080")
    env_pairs: dict[str, str] = {}
    for c in final:
        if c.cmd.upper() == "ENV":
            env_pairs.update(dict(zip(c.value[::2], c.value[1::2])))
    check(env_pairs.get("SPECGEN_LISTEN") == "0.0.0.0:8080", "Dockerfile: SPECGEN_LISTEN is not 0.0.0.0:8080")
    check("HEALTHCHECK" in final_cmds, "Dockerfile: no HEALTHCHECK")
    builds = [c for c in commands[:stages[-1]] if c.cmd.upper() == "RUN" and "cargo build" in " ".join(c.value)]
    check(any("--locked" in " ".join(c.value) and "-p specgen" in " ".join(c.value) and "--release" in " ".join(c.value)
              for c in builds), "Dockerfile: no `cargo build --release --locked -p specgen`")
    data_dir = env_pairs.get("SPECGEN_DATA_DIR")
    check(data_dir is not None and any(c.cmd.upper() == "VOLUME" and data_dir in c.value for c in final),
          "Dockerfile: SPECGEN_DATA_DIR is not a VOLUME")

    # ---------------------------------------------------------- .dockerignore
    ignore = [line.strip() for line in (repo / ".dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    needed = ["Cargo.toml", "Cargo.lock", "crates/http/src/lib.rs", "bin/specgen/src/main.rs",
              "migrations/postgres", "migrations/sqlite", "web/app/index.html"]
    for path in needed:
        for pattern in ignore:
            if pattern.startswith("!"):
                continue
            p = pattern.rstrip("/")
            if fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p + "/*") or path.startswith(p.lstrip("*/") + "/"):
                errors.append(f".dockerignore: {pattern!r} keeps {path} (needed by the build) out of the context")
    for must in ("target/", "data/"):
        check(must in ignore, f".dockerignore: does not exclude {must}")
    check(any("node_modules" in p for p in ignore), ".dockerignore: does not exclude node_modules")

    # --------------------------------------------------------------- compose
    compose = yaml.safe_load((deploy / "compose.yaml").read_text())
    services = compose["services"]
    app = services["app"]
    proxy = services["proxy"]
    env = app["environment"]
    shutdown = int(env.get("SPECGEN_SHUTDOWN_TIMEOUT", 10))
    check(seconds(app.get("stop_grace_period", "10s")) > shutdown + 8,
          f"compose: app stop_grace_period must exceed SPECGEN_SHUTDOWN_TIMEOUT + 8 = {shutdown + 8}s")
    check(env.get("SPECGEN_LISTEN") == "0.0.0.0:8080", "compose: app SPECGEN_LISTEN is not 0.0.0.0:8080")
    check(app.get("deploy", {}).get("replicas", 1) >= 2, "compose: fewer than two app replicas")
    proxy_ip = proxy["networks"]["backend"]["ipv4_address"]
    check(env.get("SPECGEN_TRUSTED_PROXIES") == proxy_ip,
          f"compose: SPECGEN_TRUSTED_PROXIES ({env.get('SPECGEN_TRUSTED_PROXIES')}) is not the proxy's address ({proxy_ip})")
    ipam = compose["networks"]["backend"]["ipam"]["config"][0]
    subnet = ipaddress.ip_network(ipam["subnet"])
    dynamic = ipaddress.ip_network(ipam["ip_range"])
    check(ipaddress.ip_address(proxy_ip) in subnet, "compose: the proxy's address is outside the backend subnet")
    check(ipaddress.ip_address(proxy_ip) not in dynamic,
          "compose: the proxy's fixed address is inside ip_range, where Docker may give it to another container")
    for key in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET"):
        check(key in env and "${" in str(env[key]), f"compose: app {key} should come from deploy/.env, not be written in")
    for name, svc in services.items():
        for e in (svc.get("environment") or {}).values() if isinstance(svc.get("environment"), dict) else []:
            if re.search(r"(sk-ant-|sk-[A-Za-z0-9]{20,})", str(e)):
                errors.append(f"compose: {name} has what looks like an API key written in")
    otel = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")

    # ------------------------------------------------------- example env files
    for example in (".env.example", "specgen.env.example"):
        for line in (deploy / example).read_text().splitlines():
            m = re.match(r"^([A-Z_][A-Z0-9_]*)=(.*)$", line)
            if m and m.group(1).endswith(("_KEY", "_SECRET", "_PASSWORD")) and m.group(2).strip():
                errors.append(f"deploy/{example}: {m.group(1)} has a value; examples carry no secrets")
    tracked = subprocess.run(["git", "-C", str(repo), "ls-files", "deploy/.env", "deploy/specgen.env",
                              "deploy/k8s/secret.yaml"], capture_output=True, text=True).stdout.split()
    check(not tracked, f"git tracks filled-in secret files: {tracked}")

    # ----------------------------------------------------------------- Caddy
    caddyfile = (deploy / "caddy" / "Caddyfile").read_text()
    m = re.search(r"name\s+\{\$SPECGEN_UPSTREAM:([^}]+)\}", caddyfile)
    check(m is not None and m.group(1) == "app", "Caddyfile: the upstream name is not the compose service `app`")
    m = re.search(r"port\s+\{\$SPECGEN_UPSTREAM_PORT:(\d+)\}", caddyfile)
    check(m is not None and m.group(1) == "8080", "Caddyfile: the upstream port is not 8080")
    check("flush_interval -1" in caddyfile, "Caddyfile: no `flush_interval -1` (SSE must not be buffered)")

    # ------------------------------------------------------------ Prometheus
    prom = yaml.safe_load((deploy / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    check("specgen" in jobs, "prometheus.yml: no `specgen` job (the alerts select job=\"specgen\")")
    if "specgen" in jobs:
        sd = jobs["specgen"].get("dns_sd_configs", [{}])[0]
        check(sd.get("names") == ["app"] and sd.get("port") == 8080,
              "prometheus.yml: the specgen job does not discover the compose `app` replicas on 8080")
    rules_mounted = all((deploy / "prometheus" / f).is_file() for f in prom.get("rule_files", []))
    check(rules_mounted, "prometheus.yml: a rule file is not in deploy/prometheus (mounted as /etc/prometheus)")

    # ------------------------------------------------- alerts and runbooks
    cargo = tomllib.loads((repo / "Cargo.toml").read_text())
    repository = cargo["workspace"]["package"]["repository"].rstrip("/")
    runbook_prefix = f"{repository}/blob/main/docs/operations.md#"
    anchors = github_anchors((repo / "docs" / "operations.md").read_text())
    alerts = yaml.safe_load((deploy / "prometheus" / "alerts.yml").read_text())
    names = []
    for group in alerts["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            name = rule["alert"]
            names.append(name)
            ann = rule.get("annotations", {})
            check(bool(ann.get("summary")), f"alerts.yml: {name} has no summary")
            check(rule.get("labels", {}).get("severity") in ("critical", "warning", "info"),
                  f"alerts.yml: {name} has no severity label")
            url = ann.get("runbook_url", "")
            if not url.startswith(runbook_prefix):
                errors.append(f"alerts.yml: {name} runbook_url should start with {runbook_prefix} "
                              "(the repository in Cargo.toml)")
            else:
                anchor = url[len(runbook_prefix):]
                check(anchor in anchors, f"alerts.yml: {name} runbook anchor #{anchor} is not a heading of docs/operations.md")
    for required in ("HighErrorRate", "SlowAIResponses", "DatabaseConnectionsHigh", "ProviderDown", "SlowFirstToken"):
        check(required in names, f"alerts.yml: no {required} alert")
    tests = (deploy / "prometheus" / "alerts.test.yml").read_text()
    for name in names:
        check(f"alertname: {name}" in tests, f"alerts.test.yml: {name} is never tested")

    # -------------------------------------------------- OpenTelemetry collector
    col = yaml.safe_load((deploy / "otel-collector" / "config.yaml").read_text())
    for pipeline, spec in col["service"]["pipelines"].items():
        for section in ("receivers", "processors", "exporters"):
            for comp in spec.get(section, []):
                check(comp in (col.get(section) or {}), f"otel-collector: pipeline {pipeline} uses undefined {section[:-1]} {comp}")
    for ext in col["service"].get("extensions", []):
        check(ext in (col.get("extensions") or {}), f"otel-collector: undefined extension {ext}")
    http_endpoint = col["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    check(http_endpoint.endswith(":4318"), "otel-collector: OTLP/HTTP is not received on 4318")
    check(otel == "http://otel-collector:4318" and "otel-collector" in services,
          "compose: the app does not send traces to the otel-collector service on 4318")

    # --------------------------------------------------------------- Grafana
    ds = yaml.safe_load((deploy / "grafana" / "provisioning" / "datasources" / "datasources.yaml").read_text())
    ds_types = {d["type"] for d in ds["datasources"]}
    check("prometheus" in ds_types, "grafana: no Prometheus datasource")
    check(bool(ds_types & {"jaeger", "tempo"}), "grafana: no Jaeger or Tempo datasource")
    dash_dir = deploy / "grafana" / "dashboards"
    boards = sorted(dash_dir.glob("*.json"))
    check(bool(boards), "grafana: no dashboard JSON")
    for board in boards:
        try:
            dash = json.loads(board.read_text())
        except json.JSONDecodeError as e:
            errors.append(f"{board.name}: not JSON: {e}")
            continue
        check(bool(dash.get("uid")) and bool(dash.get("title")), f"{board.name}: no uid or title")
        variables = {v["name"] for v in dash.get("templating", {}).get("list", [])}
        ids = []

        def walk(panels: list) -> None:
            for p in panels:
                ids.append(p.get("id"))
                g = p.get("gridPos", {})
                check(all(k in g for k in ("h", "w", "x", "y")) and g.get("x", 0) + g.get("w", 0) <= 24,
                      f"{board.name}: panel {p.get('title')!r} has a bad gridPos")
                if p.get("type") != "row":
                    targets = [t for t in p.get("targets", []) if t.get("expr")]
                    check(bool(targets), f"{board.name}: panel {p.get('title')!r} has no query")
                    for t in [p] + targets:
                        uid = (t.get("datasource") or {}).get("uid", "")
                        if uid.startswith("${"):
                            check(uid[2:-1] in variables, f"{board.name}: panel {p.get('title')!r} uses undefined variable {uid}")
                walk(p.get("panels", []))

        walk(dash.get("panels", []))
        check(len(ids) == len(set(ids)), f"{board.name}: duplicate panel ids")
    prov = yaml.safe_load((deploy / "grafana" / "provisioning" / "dashboards" / "dashboards.yaml").read_text())
    mounts = [v for v in services["grafana"]["volumes"] if v.startswith("./grafana/dashboards:")]
    check(bool(mounts) and mounts[0].split(":")[1] == prov["providers"][0]["options"]["path"],
          "grafana: the dashboards directory is not mounted where the provider looks")

    # ------------------------------------------------------------ Kubernetes
    k8s = deploy / "k8s"
    docs: dict[str, dict] = {}
    kustom = yaml.safe_load((k8s / "kustomization.yaml").read_text())
    for res in kustom["resources"]:
        for d in load_yaml_docs(k8s / res):
            docs[d["kind"]] = d
    check("secret.example.yaml" not in kustom["resources"], "kustomization: applies the example Secret")
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap"):
        check(kind in docs, f"k8s: no {kind}")
    if {"Deployment", "ConfigMap", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= docs.keys():
        dep = docs["Deployment"]
        cm = docs["ConfigMap"]["data"]
        pod = dep["spec"]["template"]["spec"]
        labels = dep["spec"]["template"]["metadata"]["labels"]
        c = pod["containers"][0]
        t = int(cm.get("SPECGEN_SHUTDOWN_TIMEOUT", 10))
        pre = c.get("lifecycle", {}).get("preStop", {})
        pre_s = int(pre.get("sleep", {}).get("seconds", 0)) if "sleep" in pre else int(
            next((x for x in pre.get("exec", {}).get("command", []) if x.isdigit()), 0))
        check(pre_s > 0, "k8s: no preStop pause")
        grace = pod.get("terminationGracePeriodSeconds", 30)
        check(grace > pre_s + t + 8,
              f"k8s: terminationGracePeriodSeconds {grace} must exceed preStop {pre_s} + SPECGEN_SHUTDOWN_TIMEOUT {t} + 8")
        check(dep["spec"].get("replicas", 1) >= 2, "k8s: fewer than 2 replicas")
        port = int(cm["SPECGEN_LISTEN"].rsplit(":", 1)[1])
        check(cm["SPECGEN_LISTEN"].startswith("0.0.0.0:"), "k8s: SPECGEN_LISTEN does not listen on every interface")
        check(any(p["containerPort"] == port for p in c["ports"]), "k8s: containerPort is not SPECGEN_LISTEN's port")
        check(c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/health/live", "k8s: liveness is not /health/live")
        check(c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/health/ready", "k8s: readiness is not /health/ready")
        check("startupProbe" in c, "k8s: no startupProbe")
        sc = {**pod.get("securityContext", {}), **c.get("securityContext", {})}
        check(sc.get("runAsNonRoot") is True and sc.get("readOnlyRootFilesystem") is True,
              "k8s: not runAsNonRoot with a read-only root filesystem")
        check(str(sc.get("runAsUser")) == str(image_uid), f"k8s: runAsUser {sc.get('runAsUser')} is not the image's USER {image_uid}")
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        ddir = cm.get("SPECGEN_DATA_DIR")
        check(ddir in mounts and "emptyDir" in vols.get(mounts.get(ddir, ""), {}),
              "k8s: SPECGEN_DATA_DIR is not an emptyDir (the root filesystem is read-only)")
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}
        for key in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET", "ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
            check(key in refs, f"k8s: {key} does not come from a secretKeyRef")
            check(key not in cm, f"k8s: {key} is in the ConfigMap")
        for key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
            check(refs.get(key, {}).get("optional") is True, f"k8s: {key} should be optional (a provider may be unused)")
        check(all(docs["Service"]["spec"]["selector"].get(k) == v for k, v in labels.items()
                  if k in docs["Service"]["spec"]["selector"]) and docs["Service"]["spec"]["selector"],
              "k8s: the Service does not select the Deployment's pods")
        check(docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items(),
              "k8s: the PodDisruptionBudget does not select the Deployment's pods")
        hpa = docs["HorizontalPodAutoscaler"]["spec"]
        check(hpa["scaleTargetRef"]["name"] == dep["metadata"]["name"] and hpa.get("minReplicas", 1) >= 2,
              "k8s: the HPA does not target the Deployment with at least 2 replicas")
        svc_ports = docs["Service"]["spec"]["ports"]
        check(any(p.get("targetPort") in (port, "http") for p in svc_ports), "k8s: the Service does not target the app port")
    example = load_yaml_docs(k8s / "secret.example.yaml")[0]
    for key, value in (example.get("stringData") or {}).items():
        check("REPLACE_ME" in str(value), f"k8s/secret.example.yaml: {key} holds a value that is not a marked example")

    for e in errors:
        print(f"error: {e}")
    if errors:
        print(f"consistency check FAILED: {len(errors)} error(s)")
        return 1
    print("consistency check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()))
