#!/usr/bin/env python3
"""Structure checks for the PrometheusRule and the Grafana dashboard, run by .ci/check-prometheus.

promtool checks the PromQL itself; this file checks what promtool cannot see: that the CRD has the shape the
Prometheus Operator expects, that every alert carries severity/summary/description/runbook_url and has unit tests
that fire and that stay quiet, and that the rules and the dashboard only name metrics the service exports
(derived from src/metrics.rs, the source of truth) and that the catalogue in docs/operations.md lists them.

Subcommands (paths are relative to the repository root):
  metrics                                  print the exported metric names, one per line
  rules CRD OUT                            check the PrometheusRule, write its `spec` as a promtool rule file
  coverage CRD TEST...                     every alert has a firing and a non-firing unit test
  dashboard JSON OUT                       check the dashboard, write its queries as recording rules for promtool
  catalogue PAGE                          the page's `## Metrics` catalogue lists every exported metric
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

METRICS_RS = Path("src/metrics.rs")
# Series Prometheus itself adds to every target; rules may use them.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
SEVERITIES = {"critical", "warning", "info"}
RUNBOOK = "deploy/README.md#"
RUNBOOK_FILE = Path("deploy/README.md")


class Failure(Exception):
    pass


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # Multi-line expressions stay readable in the generated files (and in promtool's messages).
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


yaml.SafeDumper.add_representer(str, _str_presenter)


# --------------------------------------------------------------------------------------------------------------
# The metrics the service exports, from src/metrics.rs


def exported_metrics(src: Path = METRICS_RS) -> dict[str, str]:
    """Family name -> type ("counter", "gauge", "histogram"), as the Rust source registers them."""
    text = src.read_text(encoding="utf-8")
    prefix = re.search(r'sub_registry_with_prefix\(\s*"([a-zA-Z_:][\w:]*)"\s*\)', text)
    if not prefix:
        raise Failure(f'{src}: no sub_registry_with_prefix("...") found; update deploy/prometheus/validate.py')
    struct = re.search(r"pub struct Metrics \{(.*?)\n\}", text, re.S)
    if not struct:
        raise Failure(f"{src}: no `pub struct Metrics {{ ... }}` found; update deploy/prometheus/validate.py")
    field_types = dict(re.findall(r"^\s*(\w+):\s*(.+?),\s*$", struct.group(1), re.M))

    def kind_of(type_text: str) -> str | None:
        for needle, kind in (("Histogram", "histogram"), ("Counter", "counter"), ("Gauge", "gauge")):
            if needle in type_text:
                return kind
        return None

    families: dict[str, str] = {}
    # registry.register("name", "help" (possibly long), field.clone())
    register = re.compile(
        r'registry\.register\(\s*"([a-z_][a-z0-9_]*)"\s*,\s*"(?:[^"\\]|\\.)*"\s*,\s*(\w+)\.clone\(\)', re.S
    )
    calls = len(re.findall(r"registry\.register\(", text))
    found = register.findall(text)
    if len(found) != calls:
        raise Failure(
            f"{src}: {calls} registry.register( calls but only {len(found)} in the shape "
            '`register("name", "help", field.clone())`; update deploy/prometheus/validate.py'
        )
    for name, field in found:
        kind = kind_of(field_types.get(field, ""))
        if kind is None:
            raise Failure(f"{src}: cannot tell the type of `{field}` (registered as {name})")
        families[f"{prefix.group(1)}_{name}"] = kind
    # The process collector: gauges listed as ("process_x", "help", p.x), and the CPU counter.
    for name in re.findall(r'\(\s*"(process_[a-z_]+)"\s*,\s*"[^"]*"\s*,\s*p\.\w+\s*\)', text):
        families[name] = "gauge"
    counter_block = re.search(r"ConstCounter::new\(.*?encode_descriptor\(\s*\"(process_[a-z_]+)\"", text, re.S)
    if counter_block:
        families[counter_block.group(1)] = "counter"
    undecided = set(re.findall(r'"(process_[a-z_]+)"', text)) - set(families)
    if undecided:
        raise Failure(f"{src}: cannot tell the type of {sorted(undecided)}; update deploy/prometheus/validate.py")
    if not families:
        raise Failure(f"{src}: no metrics found")
    return families


def series_names(families: dict[str, str]) -> set[str]:
    """The names that end up in Prometheus (counters get _total; histograms _bucket/_sum/_count)."""
    names: set[str] = set()
    for name, kind in families.items():
        if kind == "counter":
            names.add(name if name.endswith("_total") else name + "_total")
        elif kind == "histogram":
            names.update({name + "_bucket", name + "_sum", name + "_count"})
        else:
            names.add(name)
    return names


# --------------------------------------------------------------------------------------------------------------
# A small PromQL scanner: which metric names an expression selects, with their label matchers

_TOKEN = re.compile(
    r"""
      (?P<ws>\s+)
    | (?P<comment>\#[^\n]*)
    | (?P<str>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
    | (?P<open>[{\[(])
    | (?P<close>[}\])])
    | (?P<num>(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?:[a-zA-Z]+\d*)*)
    | (?P<var>\$(?:\{[^}]*\}|\w+))
    | (?P<id>[A-Za-z_:][\w:]*)
    | (?P<other>.)
    """,
    re.X | re.S,
)
_LABEL_LIST = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = _LABEL_LIST | {"and", "or", "unless", "offset", "bool", "inf", "nan", "atan2"}
# Aggregations may put their grouping first: `sum by (x) (expr)`.
_AGGREGATIONS = {
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
}
_PAIRS = {"{": "}", "[": "]", "(": ")"}


def _tokens(expr: str) -> list[tuple[str, str]]:
    out = []
    for m in _TOKEN.finditer(expr):
        kind = m.lastgroup or "other"
        if kind not in ("ws", "comment"):
            out.append((kind, m.group()))
    return out


def _skip_group(toks: list[tuple[str, str]], i: int) -> int:
    """toks[i] is an opening bracket; returns the index just past its match."""
    stack = [_PAIRS[toks[i][1]]]
    i += 1
    while i < len(toks) and stack:
        kind, text = toks[i]
        if kind == "open":
            stack.append(_PAIRS[text])
        elif kind == "close":
            if text != stack.pop():
                raise Failure(f"unbalanced brackets near token {i}")
        i += 1
    if stack:
        raise Failure("unbalanced brackets")
    return i


def selectors(expr: str) -> list[tuple[str, str]]:
    """(metric name, text of its {matchers}) for every vector selector that names a metric."""
    toks = _tokens(expr)
    found: list[tuple[str, str]] = []
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else ("", "")
        if kind == "open" and text == "{":
            # A selector without a name ({__name__=~"..."}): not allowed here, it hides which metric is meant.
            end = _skip_group(toks, i)
            body = "".join(t for _, t in toks[i + 1 : end - 1])
            if "__name__" in body:
                raise Failure(f"selector by __name__ in: {expr.strip()}")
            i = end
        elif kind == "open" and text == "[":
            i = _skip_group(toks, i)
        elif kind == "id" and text.lower() in _LABEL_LIST and nxt == ("open", "("):
            i = _skip_group(toks, i + 1)
        elif kind == "id" and (nxt == ("open", "(") or (text in _AGGREGATIONS and nxt[1] in ("by", "without"))):
            i += 1  # a function or aggregation
        elif kind == "id" and text.lower() in _KEYWORDS:
            i += 1
        elif kind == "id":
            matchers = ""
            if nxt == ("open", "{"):
                end = _skip_group(toks, i + 1)
                matchers = "".join(t for _, t in toks[i + 2 : end - 1])
                i = end
            else:
                i += 1
            found.append((text, matchers))
        else:
            i += 1
    return found


def unknown_metrics(expr: str, known: set[str]) -> list[str]:
    return sorted({name for name, _ in selectors(expr) if name not in known})


# --------------------------------------------------------------------------------------------------------------
# The PrometheusRule


def load_rule_crd(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = []
    if not isinstance(doc, dict):
        raise Failure(f"{path}: not a YAML mapping")
    if doc.get("apiVersion") != "monitoring.coreos.com/v1":
        errors.append("apiVersion must be monitoring.coreos.com/v1")
    if doc.get("kind") != "PrometheusRule":
        errors.append("kind must be PrometheusRule")
    meta = doc.get("metadata") or {}
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", str(meta.get("name", ""))):
        errors.append("metadata.name missing or not a DNS label")
    groups = (doc.get("spec") or {}).get("groups")
    if not isinstance(groups, list) or not groups:
        errors.append("spec.groups must be a non-empty list")
        groups = []
    if set(doc.get("spec") or {}) - {"groups"}:
        errors.append(f"spec has unknown keys {sorted(set(doc['spec']) - {'groups'})}")
    if errors:
        raise Failure(f"{path}: " + "; ".join(errors))
    return doc


def alerts_of(doc: dict) -> list[dict]:
    return [r for g in doc["spec"]["groups"] for r in g.get("rules") or [] if "alert" in r]


def check_rules(path: Path, out: Path) -> None:
    doc = load_rule_crd(path)
    known = series_names(exported_metrics()) | SYNTHETIC
    # The runbook_url anchors land on deploy/README.md's `### AlertName` headings.
    runbook_headings = set(re.findall(r"^### (\w+)\s*$", RUNBOOK_FILE.read_text(encoding="utf-8"), re.MULTILINE))
    errors = []
    seen_groups, seen_alerts = set(), set()
    for g in doc["spec"]["groups"]:
        name = g.get("name")
        if not name or name in seen_groups:
            errors.append(f"group name missing or repeated: {name!r}")
        seen_groups.add(name)
        if not g.get("rules"):
            errors.append(f"group {name}: no rules")
        for r in g.get("rules") or []:
            alert = r.get("alert") or r.get("record")
            where = f"group {name}, {alert}"
            if "alert" in r:
                if alert in seen_alerts:
                    errors.append(f"{where}: alert name repeated")
                seen_alerts.add(alert)
                if not re.fullmatch(r"CantinaNotify[A-Z][A-Za-z]+", alert):
                    errors.append(f"{where}: alert names start with CantinaNotify, in CamelCase")
                labels = r.get("labels") or {}
                if labels.get("severity") not in SEVERITIES:
                    errors.append(f"{where}: labels.severity must be one of {sorted(SEVERITIES)}")
                ann = r.get("annotations") or {}
                for key in ("summary", "description", "runbook_url"):
                    if not str(ann.get(key, "")).strip():
                        errors.append(f"{where}: annotations.{key} missing")
                anchor = RUNBOOK + alert.lower()
                if not str(ann.get("runbook_url", "")).endswith(anchor):
                    errors.append(f"{where}: runbook_url must end with {anchor}")
                if alert not in runbook_headings:
                    errors.append(f"{where}: no `### {alert}` section in {RUNBOOK_FILE}'s runbook")
                if "for" not in r:
                    errors.append(f"{where}: say `for:` explicitly (0m when an alert fires at once)")
            expr = r.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                errors.append(f"{where}: expr missing")
                continue
            try:
                bad = unknown_metrics(expr, known)
            except Failure as e:
                errors.append(f"{where}: {e}")
                continue
            if bad:
                errors.append(f"{where}: unknown metric(s) {bad} (not registered in {METRICS_RS})")
    if errors:
        raise Failure(f"{path}:\n  " + "\n  ".join(errors))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        f"# Generated by .ci/check-prometheus from {path}'s spec: do not edit.\n"
        + yaml.safe_dump(doc["spec"], sort_keys=False, allow_unicode=True, width=1000),
        encoding="utf-8",
    )
    print(f"{path}: {len(seen_alerts)} alerts in {len(seen_groups)} groups; spec written to {out}")


def check_coverage(crd: Path, tests: list[Path]) -> None:
    alerts = {r["alert"] for r in alerts_of(load_rule_crd(crd))}
    fires: dict[str, int] = {}
    quiet: dict[str, int] = {}
    errors = []
    for t in tests:
        doc = yaml.safe_load(t.read_text(encoding="utf-8")) or {}
        for case in doc.get("tests") or []:
            for a in case.get("alert_rule_test") or []:
                name = a.get("alertname")
                if name not in alerts:
                    errors.append(f"{t}: test for unknown alert {name!r}")
                    continue
                target = fires if a.get("exp_alerts") else quiet
                target[name] = target.get(name, 0) + 1
    for a in sorted(alerts):
        if not fires.get(a):
            errors.append(f"{a}: no unit test where it fires")
        if not quiet.get(a):
            errors.append(f"{a}: no unit test where it stays quiet")
    if errors:
        raise Failure("rule unit-test coverage:\n  " + "\n  ".join(errors))
    print(
        f"unit-test coverage: {len(alerts)} alerts, each with firing and quiet cases "
        f"({sum(fires.values())} firing, {sum(quiet.values())} quiet checks)"
    )


# --------------------------------------------------------------------------------------------------------------
# The Grafana dashboard

# Grafana's built-in and our template variables, replaced by something PromQL parses for the promtool check.
_VAR_VALUES = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "job": ".*",
    "namespace": ".*",
}


def _substitute(expr: str) -> str:
    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        name = name.split(":")[0]  # ${var:regex}
        if name not in _VAR_VALUES:
            raise Failure(f"unknown template variable ${name} in: {expr.strip()}")
        return _VAR_VALUES[name]

    return re.sub(r"\$\{(\w+(?::\w+)?)\}|\$(\w+)", repl, expr)


def _panels(panels: list[dict]) -> list[dict]:
    out = []
    for p in panels:
        out.append(p)
        out.extend(_panels(p.get("panels") or []))
    return out


def check_dashboard(path: Path, out: Path) -> None:
    try:
        dash = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise Failure(f"{path}: not valid JSON: {e}") from e
    known = series_names(exported_metrics())
    errors = []
    for key in ("title", "uid", "schemaVersion", "panels", "templating"):
        if key not in dash:
            errors.append(f"top-level `{key}` missing")
    if not isinstance(dash.get("schemaVersion"), int) or dash.get("schemaVersion", 0) < 36:
        errors.append("schemaVersion must be an integer >= 36")
    variables = {v.get("name"): v for v in (dash.get("templating") or {}).get("list") or []}
    ds = variables.get("datasource") or {}
    if ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        errors.append("templating: a `datasource` variable of type datasource with query prometheus is required")
    for name in ("namespace", "job"):
        v = variables.get(name)
        if not v or v.get("type") != "query":
            errors.append(f"templating: a `{name}` query variable is required")
            continue
        if (v.get("datasource") or {}).get("uid") != "${datasource}":
            errors.append(f"templating: `{name}` must query the ${{datasource}} data source")
        query = v.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", str(query or ""), re.S)
        if not m or m.group(2) != name:
            errors.append(f"templating: `{name}` must be label_values(<metric>, {name})")
        elif bad := unknown_metrics(m.group(1), known):
            errors.append(f"templating: `{name}` queries unknown metric(s) {bad}")

    rules = []
    ids = set()
    for p in _panels(dash.get("panels") or []):
        title = p.get("title") or "(untitled)"
        where = f"panel {p.get('id')} {title!r}"
        if not isinstance(p.get("id"), int) or p["id"] in ids:
            errors.append(f"{where}: id missing or repeated")
        ids.add(p.get("id"))
        grid = p.get("gridPos") or {}
        if not all(isinstance(grid.get(k), int) for k in ("h", "w", "x", "y")) or grid["x"] + grid["w"] > 24:
            errors.append(f"{where}: gridPos needs integer h, w, x, y with x + w <= 24")
        if p.get("type") == "row":
            continue
        if (p.get("datasource") or {}).get("uid") != "${datasource}":
            errors.append(f"{where}: datasource must be ${{datasource}}")
        targets = p.get("targets") or []
        if not targets:
            errors.append(f"{where}: no targets")
        refs = set()
        for t in targets:
            ref = t.get("refId")
            if not ref or ref in refs:
                errors.append(f"{where}: refId missing or repeated")
            refs.add(ref)
            if (t.get("datasource") or {}).get("uid") != "${datasource}":
                errors.append(f"{where} {ref}: target datasource must be ${{datasource}}")
            expr = t.get("expr") or ""
            if not expr.strip():
                errors.append(f"{where} {ref}: empty expr")
                continue
            try:
                sels = selectors(expr)
                rules.append({"record": f"dashboard:panel{p.get('id')}:{ref}", "expr": _substitute(expr)})
            except Failure as e:
                errors.append(f"{where} {ref}: {e}")
                continue
            if not sels:
                errors.append(f"{where} {ref}: selects no metric")
            for name, matchers in sels:
                if name not in known:
                    errors.append(f"{where} {ref}: unknown metric {name} (not registered in {METRICS_RS})")
                # process_* come from every exporter: every selector must be narrowed to the chosen install.
                for var in ("$namespace", "$job"):
                    if var not in matchers:
                        errors.append(f"{where} {ref}: selector {name} does not filter on {var}")
    if errors:
        raise Failure(f"{path}:\n  " + "\n  ".join(errors))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        f"# Generated by .ci/check-prometheus from {path}'s queries: do not edit.\n"
        + yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}, sort_keys=False, width=1000),
        encoding="utf-8",
    )
    print(f"{path}: {len(ids)} panels, {len(rules)} queries, all on exported metrics; queries written to {out}")


def check_catalogue(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    section = re.search(r"^## Metrics\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    if not section:
        raise Failure(f"{path}: no `## Metrics` section")
    listed = set(re.findall(r"`([a-z_:][a-z0-9_:]*)`", section.group(1)))
    families = exported_metrics()
    missing = []
    for name, kind in sorted(families.items()):
        shown = name + "_total" if kind == "counter" and not name.endswith("_total") else name
        if shown not in listed:
            missing.append(shown)
    if missing:
        raise Failure(f"{path}: the Metrics catalogue does not list {missing}")
    print(f"{path}: the Metrics catalogue lists all {len(families)} exported metrics")


def main(argv: list[str]) -> int:
    try:
        match argv:
            case ["metrics"]:
                for n in sorted(series_names(exported_metrics())):
                    print(n)
            case ["rules", crd, out]:
                check_rules(Path(crd), Path(out))
            case ["coverage", crd, *tests] if tests:
                check_coverage(Path(crd), [Path(t) for t in tests])
            case ["dashboard", dash, out]:
                check_dashboard(Path(dash), Path(out))
            case ["catalogue", page]:
                check_catalogue(Path(page))
            case _:
                print(__doc__, file=sys.stderr)
                return 2
    except (Failure, OSError, yaml.YAMLError) as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
