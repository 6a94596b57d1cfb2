"""The deploy files cannot run here (no Docker, no cluster); check they parse and agree with the code."""

from __future__ import annotations

import json
import re
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
