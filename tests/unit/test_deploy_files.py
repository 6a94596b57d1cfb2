"""The deploy files cannot run here (no Docker, no cluster); check they parse and agree with the code."""

from __future__ import annotations

from pathlib import Path

import yaml

from plateveil.schema import DEFAULT_QUEUE, TASK_CONCEAL

ROOT = Path(__file__).resolve().parents[2]


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_compose_has_the_services_and_fails_fast_on_required_vars():
    compose = _docs(ROOT / "docker-compose.yml")[0]
    assert {"redis", "minio", "minio-init", "producer", "worker"} <= set(compose["services"])
    text = (ROOT / "docker-compose.yml").read_text()
    assert "${PLATEVEIL_API_KEYS:?" in text and "${MINIO_ROOT_PASSWORD:?" in text
    assert compose["services"]["producer"]["environment"]["PLATEVEIL_REDIS_URL"].startswith("redis://")


def test_k8s_manifests_parse_and_take_config_from_env():
    docs = [d for p in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")) for d in _docs(p)]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("Deployment", "plateveil-producer"), ("Deployment", "plateveil-worker"),
            ("Service", "plateveil-producer"), ("ScaledObject", "plateveil-worker"),
            ("ConfigMap", "plateveil-config")} <= kinds
    for d in docs:
        if d["kind"] == "Deployment":
            container = d["spec"]["template"]["spec"]["containers"][0]
            refs = [next(iter(e)) for e in container["envFrom"]]
            assert refs == ["configMapRef", "secretRef"]
            assert "livenessProbe" in container and "resources" in container
    scaled = next(d for d in docs if d["kind"] == "ScaledObject")
    assert scaled["spec"]["triggers"][0]["metadata"]["listName"] == DEFAULT_QUEUE
    worker = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "plateveil-worker")
    assert DEFAULT_QUEUE in worker["spec"]["template"]["spec"]["containers"][0]["command"]


def test_dockerfiles_start_the_right_programs():
    assert "producer.app:app" in (ROOT / "deploy" / "Dockerfile.producer").read_text()
    worker = (ROOT / "deploy" / "Dockerfile.worker").read_text()
    assert "workers.celery_app" in worker and DEFAULT_QUEUE in worker
    assert TASK_CONCEAL.startswith("plateveil.")
