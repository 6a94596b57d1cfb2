"""Monitoring deploy files (compose Prometheus + Grafana, Kubernetes monitors and rules) validate
offline against their schemas and name the real metrics, ports and queue."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from plateveil.metrics import QUEUE_DEPTH, QUEUE_OLDEST_AGE, QUEUE_UP
from plateveil.schema import DEFAULT_QUEUE

ROOT = Path(__file__).resolve().parents[2]
MON = ROOT / "deploy" / "monitoring"
K8S = ROOT / "deploy" / "k8s"
SERIES = re.compile(r"\bplateveil_[a-z0-9_]+")


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _exposed_series() -> set[str]:
    """Every series name the services can expose, from their real metric objects."""
    from producer.metrics import ApiMetrics
    from workers.metrics import metrics as worker_metrics

    families = [*ApiMetrics().registry.collect(), *worker_metrics().registry.collect()]
    names = {QUEUE_DEPTH, QUEUE_OLDEST_AGE, QUEUE_UP}
    for fam in families:
        if fam.type == "counter":
            names.add(fam.name + "_total")
        elif fam.type == "histogram":
            names |= {fam.name + s for s in ("_bucket", "_sum", "_count")}
        else:
            names.add(fam.name)
    return names


def _expressions() -> list[str]:
    rules = yaml.safe_load((MON / "alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dash = json.loads((MON / "grafana" / "dashboards" / "plateveil.json").read_text())
    exprs += [t["expr"] for p in dash["panels"] for t in p["targets"]]
    return exprs


def test_dashboards_and_alerts_name_real_metrics_and_the_real_queue():
    exposed = _exposed_series()
    used = {m for e in _expressions() for m in SERIES.findall(e)}
    assert used and used - exposed == set(), f"unknown metrics: {sorted(used - exposed)}"
    for expr in _expressions():
        for queue in re.findall(r'queue="([^"]+)"', expr):
            assert queue == DEFAULT_QUEUE
    # the worker and queue metrics the issue asks the dashboard for are all on it
    for name in ("plateveil_jobs_total", "plateveil_job_latency_seconds_bucket", "plateveil_queue_depth",
                 "plateveil_queue_oldest_job_age_seconds", "plateveil_plates_per_photo_sum"):
        assert name in used


def test_dashboard_panels_and_provisioning_agree():
    dash = json.loads((MON / "grafana" / "dashboards" / "plateveil.json").read_text())
    titles = " | ".join(p["title"] for p in dash["panels"])
    for words in ("Throughput", "p50 / p95 / p99", "Failures by reason", "Queue depth", "Oldest waiting job",
                  "Plates per photo by model version"):
        assert words in titles
    ds = yaml.safe_load((MON / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = ds["datasources"][0]["uid"]
    assert {t["datasource"]["uid"] for p in dash["panels"] for t in p["targets"]} == {uid}
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])


def test_compose_validates_against_the_compose_spec_and_mounts_real_files():
    tool = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    if not Path(tool).exists():
        pytest.skip("check-jsonschema not installed (requirements-dev.lock)")
    out = subprocess.run([tool, "--builtin-schema", "vendor.compose-spec", str(ROOT / "docker-compose.yml")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    compose = _docs(ROOT / "docker-compose.yml")[0]
    for name in ("prometheus", "grafana"):
        for volume in compose["services"][name]["volumes"]:
            assert (ROOT / volume.split(":")[0]).exists(), volume
    assert "${GRAFANA_ADMIN_PASSWORD:?" in (ROOT / "docker-compose.yml").read_text()


def test_scrape_ports_agree_everywhere():
    from workers.settings import WorkerSettings

    default_port = WorkerSettings.model_fields["metrics_port"].default
    compose = _docs(ROOT / "docker-compose.yml")[0]
    assert int(compose["services"]["worker"]["environment"]["PLATEVEIL_METRICS_PORT"]) == default_port
    assert compose["services"]["worker"]["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    prom = yaml.safe_load((MON / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    assert jobs["plateveil-producer"]["static_configs"][0]["targets"] == ["producer:8000"]
    assert "127.0.0.1:8000:8000" in compose["services"]["producer"]["ports"]  # loopback only (issue 27)
    assert jobs["plateveil-worker"]["dns_sd_configs"][0] == {"names": ["worker"], "type": "A", "port": default_port,
                                                              "refresh_interval": "15s"}
    assert prom["rule_files"] == ["/etc/prometheus/alerts.yml"]
    config = next(d for d in _docs(K8S / "configmap.yaml") if d["kind"] == "ConfigMap")
    assert int(config["data"]["PLATEVEIL_METRICS_PORT"]) == default_port
    worker = next(d for d in _docs(K8S / "worker.yaml") if d["kind"] == "Deployment")
    pod = worker["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["ports"] == [{"name": "metrics", "containerPort": default_port}]
    assert int(pod["metadata"]["annotations"]["prometheus.io/port"]) == default_port
    multiproc = next(e["value"] for e in container["env"] if e["name"] == "PROMETHEUS_MULTIPROC_DIR")
    assert multiproc in {m["mountPath"] for m in container["volumeMounts"]}
    assert f"EXPOSE {default_port}" in (ROOT / "deploy" / "Dockerfile.worker").read_text()


def test_kubernetes_monitors_select_the_real_pods_and_rules_equal_the_compose_ones():
    docs = {d["kind"]: d for d in _docs(K8S / "monitoring.yaml")}
    producer = [d for d in _docs(K8S / "producer.yaml")]
    service = next(d for d in producer if d["kind"] == "Service")
    deployment = next(d for d in producer if d["kind"] == "Deployment")
    assert docs["ServiceMonitor"]["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert docs["ServiceMonitor"]["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    worker = next(d for d in _docs(K8S / "worker.yaml") if d["kind"] == "Deployment")
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert docs["PodMonitor"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert docs["PodMonitor"]["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert docs["PrometheusRule"]["spec"]["groups"] == yaml.safe_load((MON / "alerts.yml").read_text())["groups"]
    for rule in docs["PrometheusRule"]["spec"]["groups"][0]["rules"]:
        assert rule["alert"].startswith("Plateveil") and rule["labels"]["severity"] in {"warning", "critical"}


def test_core_kubernetes_resources_validate_against_the_kubernetes_schemas():
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate not installed (requirements-dev.lock)")
    version = kv.latest_version()
    checked = 0
    for path in sorted(K8S.glob("*.yaml")):
        for doc in _docs(path):
            if "." in doc["apiVersion"].split("/")[0] and not doc["apiVersion"].startswith(("apps/", "autoscaling/")):
                continue  # CRDs (KEDA, Prometheus Operator): no schema offline
            kv.validate(doc, version, strict=True)
            checked += 1
    assert checked >= 6


def test_every_alert_has_its_runbook_section():
    runbook = (ROOT / "docs" / "operations.md").read_text()
    anchors = {line[4:].strip().lower() for line in runbook.splitlines() if line.startswith("### ")}
    rules = yaml.safe_load((MON / "alerts.yml").read_text())["groups"][0]["rules"]
    for rule in rules:
        assert rule["alert"].lower() in anchors, rule["alert"]
        assert rule["annotations"]["runbook"] == f"docs/operations.md#{rule['alert'].lower()}"


def test_alert_rules_pass_promtool_and_their_unit_tests():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not on PATH (Debian package prometheus); rules checked for names only")
    check = subprocess.run([promtool, "check", "rules", "alerts.yml"], cwd=MON, capture_output=True, text=True,
                           timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    tests = subprocess.run([promtool, "test", "rules", "alerts.test.yml"], cwd=MON, capture_output=True, text=True,
                           timeout=120)
    assert tests.returncode == 0, tests.stdout + tests.stderr
