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


def _setting_names() -> set[str]:
    from plateveil.settings import ENV_PREFIX
    from producer.settings import ProducerSettings
    from workers.settings import WorkerSettings

    return {ENV_PREFIX + name.upper() for cls in (ProducerSettings, WorkerSettings) for name in cls.model_fields}


def test_every_variable_in_the_deploy_files_is_a_setting():
    """The settings ignore unknown variables, so a misspelt one in a deploy file would be silently dropped."""
    names = _setting_names()
    compose = _docs(ROOT / "docker-compose.yml")[0]
    used = {k for svc in compose["services"].values() for k in (svc.get("environment") or {})
            if k.startswith("PLATEVEIL_")}
    config = next(d for d in _docs(ROOT / "deploy" / "k8s" / "configmap.yaml") if d["kind"] == "ConfigMap")
    used |= set(config["data"])
    assert used - names == set()


def test_workers_serve_the_registry_whose_bucket_is_created():
    compose = _docs(ROOT / "docker-compose.yml")[0]
    worker_env = compose["services"]["worker"]["environment"]
    assert worker_env["PLATEVEIL_REGISTRY_BUCKET"] == "${PLATEVEIL_REGISTRY_BUCKET:-plateveil-models}"
    init = compose["services"]["minio-init"]
    assert init["environment"]["MODELS"] == worker_env["PLATEVEIL_REGISTRY_BUCKET"]
    assert '"local/$$MODELS"' in init["command"][0].split("&&")[1]
    config = next(d for d in _docs(ROOT / "deploy" / "k8s" / "configmap.yaml") if d["kind"] == "ConfigMap")
    worker = next(d for d in _docs(ROOT / "deploy" / "k8s" / "worker.yaml") if d["kind"] == "Deployment")
    mounts = worker["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert config["data"]["PLATEVEIL_REGISTRY_BUCKET"]
    assert config["data"]["PLATEVEIL_MODEL_CACHE_DIR"] in {m["mountPath"] for m in mounts}  # writable as non-root
