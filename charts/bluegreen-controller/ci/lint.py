"""Lint the chart with Helm's own library (PyPI helm-sdkpy), for several sets of values.

helm-sdkpy offers lint but no `helm template`, and lint only reads the chart's values.yaml.
So each case lints a temporary copy of the chart whose values.yaml has the case's
overrides appended (later top-level keys win), plus a probe template that renders the real
templates with `include` and errors when an expected line is missing or an unexpected one
present. Lint renders every template, so a broken template or a failed expectation is a lint
error.

Run: .tools/py/bin/python charts/bluegreen-controller/ci/lint.py
"""

import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path

import helm_sdkpy

CHART = Path(__file__).resolve().parent.parent
NAME = "bluegreen-controller"
WARNING = 2  # helm's support.WarningSev; INFO (e.g. "icon is recommended") is fine

# (case, top-level value overrides, [(template, text, expected present?)])
CASES = [
    (
        "defaults",
        {},
        [
            ("deployment.yaml", "type: Recreate", True),
            ("deployment.yaml", 'image: "ghcr.io/bluegreen-dev/bluegreen-controller:0.1.0"', True),
            ("deployment.yaml", "path: /healthz", True),
            ("deployment.yaml", "path: /readyz", True),
            ("deployment.yaml", "fieldPath: metadata.name", True),
            ("deployment.yaml", "fieldPath: metadata.namespace", True),
            ("deployment.yaml", "readOnlyRootFilesystem: true", True),
            ("deployment.yaml", "runAsNonRoot: true", True),
            ("deployment.yaml", 'value: "0.0.0.0:8080"', True),
            ("deployment.yaml", 'value: "false"', True),
            ("clusterrole.yaml", '- apiGroups: ["apps"]', True),
            ("clusterrole.yaml", 'resources: ["pods/log"]', True),
            ("clusterrole.yaml", 'resources: ["customresourcedefinitions"]', False),
            ("clusterrole.yaml", 'resources: ["replicasets/scale"]', True),
            ("role.yaml", "kind: Role", False),
            ("leader-election-rbac.yaml", "leases", False),
            ("servicemonitor.yaml", "ServiceMonitor", False),
            ("service.yaml", "port: 8080", True),
            ("deployment.yaml", "memory: 64Mi", True),
            ("deployment.yaml", "memory: 128Mi", True),
            ("deployment.yaml", "topologySpreadConstraints", False),
            ("poddisruptionbudget.yaml", "PodDisruptionBudget", False),
            ("networkpolicy.yaml", "NetworkPolicy", False),
            ("dashboard-configmap.yaml", "ConfigMap", False),
        ],
    ),
    (
        "ha",
        {"replicas": 3},
        [
            ("deployment.yaml", "replicas: 3", True),
            ("deployment.yaml", "type: RollingUpdate", True),
            ("deployment.yaml", 'value: "true"', True),
            ("leader-election-rbac.yaml", 'resources: ["leases"]', True),
            ("poddisruptionbudget.yaml", "kind: PodDisruptionBudget", True),
            ("poddisruptionbudget.yaml", "maxUnavailable: 1", True),
            ("deployment.yaml", "topologyKey: kubernetes.io/hostname", True),
            ("deployment.yaml", "whenUnsatisfiable: ScheduleAnyway", True),
        ],
    ),
    (
        "ha-own-spread-no-pdb",
        {
            "replicas": 2,
            "podDisruptionBudget": {"enabled": False, "maxUnavailable": 1},
            "topologySpreadConstraints": [
                {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule"}
            ],
        },
        [
            ("poddisruptionbudget.yaml", "PodDisruptionBudget", False),
            ("deployment.yaml", "topologyKey: topology.kubernetes.io/zone", True),
            ("deployment.yaml", "topologyKey: kubernetes.io/hostname", False),
        ],
    ),
    (
        "grafana-dashboard",
        {"grafana": {"dashboard": {"enabled": True, "label": "grafana_dashboard", "labelValue": "1", "namespace": "monitoring", "annotations": {"grafana_folder": "Releases"}}}},
        [
            ("dashboard-configmap.yaml", "kind: ConfigMap", True),
            ("dashboard-configmap.yaml", "namespace: monitoring", True),
            ("dashboard-configmap.yaml", 'grafana_dashboard: "1"', True),
            ("dashboard-configmap.yaml", "grafana_folder: Releases", True),
            ("dashboard-configmap.yaml", '"uid": "bluegreen-releases"', True),
            ("dashboard-configmap.yaml", "bluegreen_deployments_total", True),
        ],
    ),
    (
        "network-policy",
        {
            "networkPolicy": {
                "enabled": True,
                "metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
                "apiServerCIDRs": ["10.0.0.1/32"],
                "apiServerPorts": [6443],
                "prometheusPorts": [9090],
                "prometheusTo": [{"namespaceSelector": {"matchLabels": {"name": "observability"}}}],
            },
            "prometheus": {"address": "http://prometheus.observability:9090"},
        },
        [
            ("networkpolicy.yaml", "kind: NetworkPolicy", True),
            ("networkpolicy.yaml", "- port: 9090", True),
            ("networkpolicy.yaml", "name: observability", True),
            ("networkpolicy.yaml", "- port: 53", True),
            ("deployment.yaml", 'value: "http://prometheus.observability:9090"', True),
            ("networkpolicy.yaml", "- port: 8080", True),
            ("networkpolicy.yaml", "name: monitoring", True),
            ("networkpolicy.yaml", "cidr: 10.0.0.1/32", True),
            ("networkpolicy.yaml", "- port: 6443", True),
            ("networkpolicy.yaml", "- port: 443\n", False),
        ],
    ),
    (
        "one-namespace",
        {"watchNamespace": "shop", "image": {"repository": "example.org/bg", "tag": "dev"}},
        [
            ("role.yaml", "namespace: shop", True),
            ("role.yaml", '- apiGroups: ["apps"]', True),
            ("clusterrole.yaml", '- apiGroups: ["apps"]', False),
            ("clusterrolebinding.yaml", "ClusterRoleBinding", False),
            ("deployment.yaml", 'value: "shop"', True),
            ("deployment.yaml", 'image: "example.org/bg:dev"', True),
        ],
    ),
    (
        # Lint's capabilities have no monitoring.coreos.com/v1: the value alone must not
        # produce a ServiceMonitor a cluster without the Prometheus Operator would reject.
        "service-monitor-without-operator",
        {"serviceMonitor": {"enabled": True, "interval": "30s", "scrapeTimeout": "10s", "labels": {}}},
        [("servicemonitor.yaml", "ServiceMonitor", False)],
    ),
]


def probe_template(checks):
    lines = []
    for template, text, present in checks:
        rendered = f'(include "{NAME}/templates/{template}" $)'
        condition = f"(contains {json.dumps(text)} {rendered})"
        if present:
            condition = f"(not {condition})"
        verb = "lacks" if present else "contains"
        message = json.dumps(f"{template} {verb} {text}")
        # In lint mode Helm's `fail` only logs its message (which helps reading the output),
        # so an out-of-range `index` turns the failed expectation into a real lint error.
        lines.append(
            f"{{{{- if {condition} }}}}{{{{ fail {message} }}}}{{{{ index (list) 1 }}}}{{{{- end }}}}"
        )
    return "\n".join(lines) + "\n"


def lint(overrides, checks):
    """Lint messages at warning level or worse for one set of values and checks."""
    with tempfile.TemporaryDirectory() as tmp:
        chart = Path(tmp) / NAME
        shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("ci", "argocd"))
        with open(chart / "values.yaml", "a") as values:
            values.write("\n# lint case overrides\n")
            for key, value in overrides.items():
                values.write(f"{key}: {json.dumps(value)}\n")
        (chart / "templates" / "zz-lint-probe.yaml").write_text(probe_template(checks))
        config = helm_sdkpy.Configuration()
        result = asyncio.run(helm_sdkpy.Lint(config).run(str(chart)))
        return [m for m in result.get("Messages") or [] if m.get("Severity", 0) >= WARNING]


def main():
    failed = False
    for case, overrides, checks in CASES:
        problems = lint(overrides, checks)
        if not problems:
            print(f"ok   {case}")
            continue
        failed = True
        # helm-sdkpy serialises Go errors as {}, so find the culprit by elimination.
        if lint(overrides, []):
            print(f"FAIL {case}: the chart does not lint with these values: {problems}")
            continue
        for check in checks:
            if lint(overrides, [check]):
                template, text, present = check
                expectation = "should contain" if present else "should not contain"
                print(f"FAIL {case}: {template} {expectation} {text!r}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
