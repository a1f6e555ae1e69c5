"""Write deploy/k8s/base/prometheus-rule.yaml (a PrometheusRule) from deploy/prometheus/alerts.yml.

One source for the alert rules: edit alerts.yml (docker-compose's Prometheus reads it), then run

    .venv/bin/python deploy/k8s/sync_prometheus_rule.py

tests/deploy fails while the two disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ALERTS = HERE.parent / "prometheus" / "alerts.yml"
TARGET = HERE / "base" / "prometheus-rule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/alerts.yml by deploy/k8s/sync_prometheus_rule.py: do not edit.
# The Prometheus Operator's Prometheus must select it (kube-prometheus-stack: label `release`).
"""


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL) as literal blocks, as they are written in alerts.yml."""


def _str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(alerts_text: str) -> str:
    groups = yaml.safe_load(alerts_text)["groups"]
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "djserve-alerts", "labels": {"app.kubernetes.io/part-of": "dj-universe"}},
        "spec": {"groups": groups},
    }
    return HEADER + yaml.dump(rule, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)


def main() -> int:
    text = render(ALERTS.read_text(encoding="utf-8"))
    if "--check" in sys.argv[1:]:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is out of date; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
