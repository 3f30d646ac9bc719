#!/usr/bin/env python3
"""Checks that every metric the alert rules and dashboards name is one the
server exports, with the labels they use.

What the server exports is read from METRICS_FILE (a capture of GET /metrics)
when given, and from the Rust sources otherwise: every `counter!`, `gauge!`
and `histogram!` under crates/ and bin/ (tests excluded), with the labels
each call passes. A histogram is exposed as `_bucket`, `_sum` and `_count`
when metrics_setup.rs gives it buckets (`set_buckets_for_metric`), and as a
summary (`{quantile}`, `_sum`, `_count`) otherwise, as
metrics-exporter-prometheus does.

Names the server does not export yet but is to export (listed with their
labels in deploy/metrics-pending.txt) are warnings, or errors with
METRICS_STRICT=1. Anything else missing is an error.

Usage: check_metrics.py --repo ROOT --rules FILE... --dashboard FILE...
Needs PyYAML. Exit status 1 on any error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# Series Prometheus itself adds to every scrape, or to rule evaluation.
BUILTIN = {
    "up": {"job", "instance"},
    "scrape_duration_seconds": {"job", "instance"},
    "scrape_samples_scraped": {"job", "instance"},
    "scrape_samples_post_metric_relabeling": {"job", "instance"},
    "scrape_series_added": {"job", "instance"},
    "ALERTS": {"alertname", "alertstate", "severity"},
    "ALERTS_FOR_STATE": {"alertname", "severity"},
}
# Labels the scrape attaches to every series.
TARGET_LABELS = {"job", "instance"}

AGGREGATORS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
            "bool", "offset", "inf", "nan", "start", "end"}
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}


# ---------------------------------------------------------------- exported

@dataclass
class Exported:
    # series name -> label names (None: not known, so not checked)
    series: dict[str, set[str] | None] = field(default_factory=dict)
    # series name -> where it comes from, for messages
    origin: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, labels: set[str] | None, origin: str) -> None:
        if name in self.series:
            old = self.series[name]
            self.series[name] = None if old is None or labels is None else old | labels
        else:
            self.series[name] = None if labels is None else set(labels)
            self.origin[name] = origin


def matching_paren(text: str, start: int) -> int:
    """Index of the `)` closing the `(` at `start`, skipping string literals."""
    depth = 0
    i = start
    while i < len(text):
        c = text[i]
        if c == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def rust_sources(repo: Path) -> list[Path]:
    files = []
    for top in ("crates", "bin"):
        for path in sorted((repo / top).rglob("*.rs")):
            rel = path.relative_to(repo).parts
            if "tests" in rel or "target" in rel or "benches" in rel:
                continue
            files.append(path)
    return files


def strip_cfg_test(text: str) -> str:
    """Drops `#[cfg(test)] mod ... { ... }` blocks: test metrics are not exported."""
    out = []
    pos = 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < pos:
            continue
        out.append(text[pos:m.start()])
        depth = 0
        i = m.end() - 1
        while i < len(text):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        pos = i + 1
    out.append(text[pos:])
    return "".join(out)


def from_sources(repo: Path) -> tuple[Exported, list[str]]:
    texts = {p: strip_cfg_test(p.read_text(encoding="utf-8")) for p in rust_sources(repo)}
    consts: dict[str, str] = {}
    for text in texts.values():
        for m in re.finditer(r'const\s+([A-Z][A-Z0-9_]*)\s*:\s*&(?:\'static\s+)?str\s*=\s*"([^"]+)"', text):
            consts[m.group(1)] = m.group(2)

    # Which histogram names get buckets (and so are histograms, not summaries).
    matchers: list[tuple[str, str]] = []
    everything_bucketed = False
    for text in texts.values():
        for m in re.finditer(r'set_buckets_for_metric\(\s*Matcher::(Full|Prefix|Suffix)\(\s*"([^"]+)"', text):
            matchers.append((m.group(1), m.group(2)))
        if re.search(r"\.set_buckets\(", text):
            everything_bucketed = True

    def bucketed(name: str) -> bool:
        if everything_bucketed:
            return True
        for kind, value in matchers:
            if (kind == "Full" and name == value) or (kind == "Prefix" and name.startswith(value)) or (
                kind == "Suffix" and name.endswith(value)
            ):
                return True
        return False

    notes: list[str] = []
    exported = Exported()
    macro = re.compile(r"\b(?:metrics::)?(counter|gauge|histogram)!\s*\(")
    for path, text in texts.items():
        rel = path.relative_to(repo)
        for m in macro.finditer(text):
            kind = m.group(1)
            close = matching_paren(text, m.end() - 1)
            if close < 0:
                continue
            args = text[m.end():close].strip()
            first = re.match(r'\s*(?:"([^"]+)"|([A-Za-z_][A-Za-z0-9_:]*))', args)
            if not first:
                continue
            if first.group(1):
                name = first.group(1)
            elif first.group(2) in consts:
                name = consts[first.group(2)]
            else:
                notes.append(f"{rel}: {kind}!({first.group(2)} ...) names a metric this check cannot resolve")
                continue
            rest = args[first.end():]
            labels: set[str] | None = set(re.findall(r'"([A-Za-z_][A-Za-z0-9_]*)"\s*=>', rest))
            ref = re.match(r"\s*,\s*&?\s*([a-z_][a-z0-9_]*)\s*$", rest)
            if ref:
                # Labels passed as `&labels`: the nearest `let labels = [...]`
                # above the call in the same file.
                lets = list(re.finditer(r"let\s+" + re.escape(ref.group(1)) + r"\s*(?::[^=]+)?=\s*\[(.*?)\];",
                                        text[:m.start()], re.S))
                if lets:
                    labels = set(re.findall(r'\(\s*"([A-Za-z_][A-Za-z0-9_]*)"\s*,', lets[-1].group(1)))
                else:
                    labels = None
                    notes.append(f"{rel}: labels of {name} come from `{ref.group(1)}`, which this check cannot read")
            origin = f"{kind}! in {rel}"
            if kind == "histogram":
                if bucketed(name):
                    exported.add(f"{name}_bucket", None if labels is None else labels | {"le"}, origin)
                else:
                    exported.add(name, None if labels is None else labels | {"quantile"}, origin)
                exported.add(f"{name}_sum", labels, origin)
                exported.add(f"{name}_count", labels, origin)
            else:
                exported.add(name, labels, origin)
    return exported, notes


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+\S+")


def from_metrics_file(path: Path) -> Exported:
    exported = Exported()
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"#\s*TYPE\s+(\S+)\s+(\S+)", line)
        if m:
            continue
        if not line.strip() or line.startswith("#"):
            continue
        s = SAMPLE.match(line)
        if not s:
            continue
        labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"', s.group(3) or ""))
        exported.add(s.group(1), labels, f"{path}")
    return exported


# ---------------------------------------------------------------- pending

def read_pending(path: Path) -> dict[str, tuple[set[str], str]]:
    """name -> (series labels, why). Lines: `name type labels|- why...`."""
    pending: dict[str, tuple[set[str], str]] = {}
    if not path.is_file():
        return pending
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 3)
        if len(parts) < 3:
            raise SystemExit(f"{path}: malformed line: {raw!r}")
        name, kind, labels = parts[0], parts[1], parts[2]
        why = parts[3] if len(parts) > 3 else ""
        label_set = set() if labels == "-" else set(labels.split(","))
        if kind == "histogram":
            pending[f"{name}_bucket"] = (label_set | {"le"}, why)
            pending[f"{name}_sum"] = (label_set, why)
            pending[f"{name}_count"] = (label_set, why)
        elif kind in ("counter", "gauge"):
            pending[name] = (label_set, why)
        else:
            raise SystemExit(f"{path}: unknown type {kind!r} in {raw!r}")
    return pending


# ---------------------------------------------------------------- PromQL

@dataclass
class Use:
    metrics: list[str] = field(default_factory=list)
    # (metric or None, label) from selectors
    selector_labels: list[tuple[str | None, str]] = field(default_factory=list)
    # labels in by/without/on/ignoring/group_* and label_replace sources
    clause_labels: set[str] = field(default_factory=set)
    created_labels: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)


TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<var>\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[^\]]*\]\])
  | (?P<range>\[[^\]]*\])
  | (?P<number>0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?[a-zA-Z]*)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^=<>(){},@])
    """,
    re.X,
)


def tokenize(expr: str) -> list[tuple[str, str]]:
    tokens = []
    pos = 0
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot read PromQL at {expr[pos:pos + 20]!r}")
        kind = m.lastgroup
        if kind not in ("ws", "comment"):
            tokens.append((kind, m.group()))
        pos = m.end()
    return tokens


def analyse(expr: str) -> Use:
    use = Use()
    try:
        tokens = tokenize(expr)
    except ValueError as e:
        use.errors.append(str(e))
        return use
    # Stack of (function name or None, argument index) for each open paren.
    frames: list[list] = []
    last_metric: str | None = None
    i = 0
    n = len(tokens)

    def nxt(j: int) -> tuple[str, str] | None:
        return tokens[j] if j < n else None

    while i < n:
        kind, text = tokens[i]
        if kind == "ident":
            low = text.lower()
            after = nxt(i + 1)
            if low in LABEL_LIST_KEYWORDS:
                # by (a, b) / on (a) / group_left (a) / group_left with no list
                if after and after[1] == "(":
                    j = i + 2
                    while j < n and tokens[j][1] != ")":
                        if tokens[j][0] == "ident":
                            use.clause_labels.add(tokens[j][1])
                        j += 1
                    i = j + 1
                    continue
                i += 1
                continue
            if low in KEYWORDS:
                i += 1
                continue
            if after and after[1] == "(":
                frames.append([text, 0])
                i += 2
                continue
            if text in AGGREGATORS and after and after[0] == "ident" and after[1].lower() in ("by", "without"):
                # `sum by (x) (...)`: the clause is read next; its paren opens a frame then
                i += 1
                continue
            use.metrics.append(text)
            last_metric = text
            if after and after[1] == "{":
                i = read_selector(tokens, i + 1, text, use)
                continue
            i += 1
            continue
        if kind == "op" and text == "{":
            # A selector with no metric name: {__name__="x", ...}
            i = read_selector(tokens, i, None, use)
            continue
        if kind == "op" and text == "(":
            frames.append([None, 0])
        elif kind == "op" and text == ")":
            if not frames:
                use.errors.append("unbalanced ')'")
            else:
                frames.pop()
        elif kind == "op" and text == ",":
            if frames:
                frames[-1][1] += 1
        elif kind == "string" and frames and frames[-1][0]:
            fname, arg = frames[-1]
            value = text[1:-1]
            if fname == "label_replace":
                if arg == 1:
                    use.created_labels.add(value)
                elif arg == 3:
                    use.clause_labels.add(value)
            elif fname == "label_join":
                if arg == 1:
                    use.created_labels.add(value)
                elif arg >= 3:
                    use.clause_labels.add(value)
            elif fname == "count_values" and arg == 0:
                use.created_labels.add(value)
        i += 1
    if frames:
        use.errors.append("unbalanced '('")
    del last_metric
    return use


def read_selector(tokens: list[tuple[str, str]], i: int, metric: str | None, use: Use) -> int:
    """Reads `{l op "v", ...}` starting at the `{`; returns the index after `}`."""
    j = i + 1
    while j < len(tokens) and tokens[j][1] != "}":
        kind, text = tokens[j]
        if kind == "ident" and j + 1 < len(tokens) and tokens[j + 1][1] in ("=", "!=", "=~", "!~"):
            value = tokens[j + 2][1][1:-1] if j + 2 < len(tokens) and tokens[j + 2][0] == "string" else None
            if text == "__name__" and value and tokens[j + 1][1] == "=":
                use.metrics.append(value)
                metric = value
            else:
                use.selector_labels.append((metric, text))
            j += 3
            continue
        j += 1
    if j >= len(tokens):
        use.errors.append("unbalanced '{'")
    return j + 1


# ---------------------------------------------------------------- inputs

def rule_expressions(path: Path) -> list[tuple[str, str]]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out = []
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("alert") or rule.get("record") or "?"
            out.append((f"{path.name}: {name}", str(rule.get("expr", ""))))
    return out


def dashboard_expressions(path: Path) -> list[tuple[str, str]]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    out: list[tuple[str, str]] = []

    def walk_panels(panels: list, trail: str) -> None:
        for panel in panels or []:
            title = panel.get("title", "?")
            for target in panel.get("targets", []) or []:
                if isinstance(target, dict) and target.get("expr"):
                    out.append((f"{path.name}: panel {title!r} {target.get('refId', '')}", target["expr"]))
            walk_panels(panel.get("panels", []), title)

    walk_panels(doc.get("panels", []), "")
    for var in (doc.get("templating") or {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if not isinstance(query, str):
            continue
        lv = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", query, re.S)
        if lv:
            # The label must exist on the series: check it as a selector label.
            out.append((f"{path.name}: variable {var.get('name')!r}", f'{lv.group(1)} and on() group({{{lv.group(2)}!=""}})'))
        else:
            qr = re.fullmatch(r"\s*query_result\((.*)\)\s*", query, re.S)
            if qr:
                out.append((f"{path.name}: variable {var.get('name')!r}", qr.group(1)))
    return out


# ---------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", type=Path, required=True)
    ap.add_argument("--rules", type=Path, nargs="*", default=[])
    ap.add_argument("--dashboard", type=Path, nargs="*", default=[])
    ap.add_argument("--pending", type=Path)
    args = ap.parse_args()

    strict = os.environ.get("METRICS_STRICT") == "1"
    metrics_file = os.environ.get("METRICS_FILE")
    source_exported, notes = from_sources(args.repo)
    if metrics_file:
        exported = from_metrics_file(Path(metrics_file))
        print(f"exported metrics: {len(exported.series)} series names in METRICS_FILE={metrics_file}")
    else:
        exported = source_exported
        print(f"exported metrics: {len(exported.series)} series names from the Rust sources (no METRICS_FILE)")
    for note in notes:
        print(f"note: {note}")
    pending = read_pending(args.pending) if args.pending else {}

    expressions = []
    for path in args.rules:
        expressions += rule_expressions(path)
    for path in args.dashboard:
        expressions += dashboard_expressions(path)

    errors: list[str] = []
    warnings: list[str] = []
    used: set[str] = set()

    def labels_of(metric: str) -> tuple[set[str] | None, str]:
        """Known labels of a series, and where they come from ('' if unknown)."""
        if metric in BUILTIN:
            return BUILTIN[metric], "prometheus"
        if metric in exported.series:
            return exported.series[metric], "exported"
        if metrics_file and metric in source_exported.series:
            return source_exported.series[metric], "sources"
        if metric in pending:
            return pending[metric][0], "pending"
        return None, ""

    for where, expr in expressions:
        use = analyse(expr)
        for e in use.errors:
            errors.append(f"{where}: {e}")
        if not use.metrics:
            errors.append(f"{where}: names no metric")
        for metric in use.metrics:
            used.add(metric)
            if metric in BUILTIN or metric in exported.series:
                continue
            if metrics_file and metric in source_exported.series:
                warnings.append(f"{where}: {metric} is declared in the sources "
                                f"({source_exported.origin[metric]}) but absent from METRICS_FILE: "
                                "not recorded yet when it was captured?")
                continue
            base = re.sub(r"_(bucket|sum|count)$", "", metric)
            hint = ""
            if base + "_bucket" in exported.series and metric == base:
                hint = " (a histogram: use _bucket, _sum or _count)"
            elif metric.endswith("_bucket") and base in exported.series:
                hint = " (exported as a summary: no buckets; give it buckets in metrics_setup.rs or use {quantile})"
            if metric in pending:
                msg = f"{where}: {metric} is not exported yet (deploy/metrics-pending.txt: {pending[metric][1]})"
                (errors if strict else warnings).append(msg)
            else:
                errors.append(f"{where}: {metric} is not a metric the server exports{hint}")

        metric_labels: set[str] = set()
        unknown = False
        for metric in use.metrics:
            known, _ = labels_of(metric)
            if known is None:
                unknown = True
            else:
                metric_labels |= known
        for metric, label in use.selector_labels:
            if label in TARGET_LABELS:
                continue
            if metric is None:
                continue
            known, src = labels_of(metric)
            if known is not None and label not in known:
                errors.append(f"{where}: {metric} has no label {label!r} (labels: {', '.join(sorted(known)) or 'none'}; from {src})")
        if not unknown:
            allowed = metric_labels | TARGET_LABELS | use.created_labels
            for label in sorted(use.clause_labels - allowed):
                errors.append(f"{where}: label {label!r} is on none of {', '.join(sorted(set(use.metrics)))}")

    for name, (_, why) in sorted(pending.items()):
        if name in source_exported.series or (metrics_file and name in exported.series):
            warnings.append(f"{name} is exported now: drop it from deploy/metrics-pending.txt")
        elif name not in used and not any(name == f"{u}" for u in used):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if not any(re.sub(r"_(bucket|sum|count)$", "", u) == base for u in used):
                warnings.append(f"{name} is listed in deploy/metrics-pending.txt but nothing uses it")

    print(f"checked {len(expressions)} expressions naming {len(used)} distinct series")
    for w in warnings:
        print(f"warning: {w}")
    for e in errors:
        print(f"error: {e}")
    if errors:
        print(f"metric check FAILED: {len(errors)} error(s)")
        return 1
    print("metric check passed" + (f" with {len(warnings)} warning(s)" if warnings else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
