"""``plateveil models publish|list|show|promote|rollback|unalias`` against moto_server and Redis,
and the promotion quality gate (with an injected evaluation, and with the real one on the shipped
golden set and on others); bundles that cannot load are refused with their own exit code."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import cv2
import pytest

from model_store.bundle import default_model_dir
from model_store.golden import drawn_photos
from model_store.registry import NUDGE_CHANNEL, Registry, redis_notifier
from model_training.registry_cli import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNLOADABLE,
    GateThresholds,
    promote_with_gate,
)
from plateveil_ops.cli import main

pytestmark = pytest.mark.integration

GOOD = {"recall_08": 0.93, "recall_05": 0.98, "spurious_per_image": 0.02, "excess": 0.2, "p50_ms": 30.0,
        "p95_ms": 45.0, "n_images": 50, "n_plates": 55}
POOR = dict(GOOD, recall_08=0.61, spurious_per_image=0.3)


@pytest.fixture
def cli_env(bucket: str, registry_moto_url: str, registry_redis_url: str, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "PLATEVEIL_REGISTRY_BUCKET": bucket, "PLATEVEIL_S3_ENDPOINT_URL": registry_moto_url,
        "PLATEVEIL_S3_REGION": "us-east-1", "PLATEVEIL_S3_ACCESS_KEY_ID": "testing",
        "PLATEVEIL_S3_SECRET_ACCESS_KEY": "testing", "PLATEVEIL_REDIS_URL": registry_redis_url,
        "PLATEVEIL_MODEL_CACHE_DIR": str(tmp_path / "cache"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PLATEVEIL_GATE_GOLDEN_DIR", raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["models", *argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_cli_round_trip(cli_env: None, registry: Registry, bundle_factory: Any, redis_client: Any,
                        capsys: pytest.CaptureFixture[str]) -> None:
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(NUDGE_CHANNEL)
    code, out = run(capsys, "publish", str(bundle_factory("1.0.0")))
    assert code == EXIT_OK and "plateveil-plates@1.0.0: 3 files" in out
    # checked before the upload; how many of the 18 the shipped model finds is its own (1.10.0: 17, 2.0.0: 18)
    assert re.search(r"onnx: loads; smoke check 1[2-8]/18 golden plates found on 17 photos", out), out
    assert run(capsys, "publish", str(bundle_factory("1.0.0")))[0] == EXIT_OK  # same bytes: fine
    changed = bundle_factory("other")
    (changed / "landmarks.onnx").write_bytes(b"different")
    code, out = run(capsys, "publish", str(changed), "--version", "1.0.0")
    assert code == EXIT_UNLOADABLE and "nothing uploaded" in out  # a broken file is refused before S3
    code, out = run(capsys, "publish", str(changed), "--version", "1.0.0", "--skip-checks")
    assert code == 2 and "already published with different bytes" in out
    assert run(capsys, "publish", str(bundle_factory("1.1.0")))[0] == EXIT_OK

    code, out = run(capsys, "show", "1.1.0")
    assert code == EXIT_OK and json.loads(out)["version"] == "1.1.0"
    assert run(capsys, "show", "7.7.7")[0] == 2

    code, out = run(capsys, "promote", "1.0.0")  # the shipped golden set by default, no production yet
    assert code == EXIT_OK and "production -> 1.0.0 (new alias)" in out, out
    assert "golden_set" in out and "candidate 1.0.0" in out and "(17 images, 18 plates)" in out
    assert "no worker of" in out  # no worker follows this bucket: nothing to wait for
    code, out = run(capsys, "promote", "1.1.0")  # the same weights: no worse than production
    assert code == EXIT_OK and "production 1.0.0" in out and "+0.000" in out, out
    assert run(capsys, "promote", "1.1.0", "--force", "--alias", "canary")[0] == EXIT_OK

    code, out = run(capsys, "list")
    lines = out.strip().splitlines()
    assert lines[0].split()[:4] == ["version", "published", "MB", "recall@0.8"]
    assert lines[1].startswith("1.0.0") and lines[2].startswith("1.1.0")
    val = json.loads((default_model_dir() / "model.json").read_text())["metrics"]["val"]["overall"]
    assert lines[2].split()[3:8] == [f"{val['recall_08']:.3f}", f"{val['spurious_per_image']:.3f}",
                                     f"{val['excess']:.3f}", str(val["n_images"]), "canary,production"]  # model.json's

    code, out = run(capsys, "rollback")
    assert code == EXIT_OK and registry.resolve("production") == "1.0.0"
    assert run(capsys, "rollback")[0] == 2  # nothing earlier
    assert run(capsys, "unalias", "canary")[0] == EXIT_OK and registry.resolve("canary") is None

    nudges = []
    for _ in range(50):
        message = pubsub.get_message(timeout=0.1)
        if message:
            nudges.append(json.loads(message["data"]))
        elif len(nudges) >= 5:
            break
    assert [(n["alias"], n["version"]) for n in nudges] == [
        ("production", "1.0.0"), ("production", "1.1.0"), ("canary", "1.1.0"), ("production", "1.0.0"),
        ("canary", None)]
    pubsub.close()


def test_missing_bucket_setting_is_a_clear_error(cli_env: None, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("PLATEVEIL_REGISTRY_BUCKET")
    code, out = run(capsys, "list")
    assert code == 2 and "PLATEVEIL_REGISTRY_BUCKET" in out
    monkeypatch.setenv("PLATEVEIL_REGISTRY_BUCKET", "no-such-registry-bucket")
    code, out = run(capsys, "list")
    assert code == 2 and "the registry bucket no-such-registry-bucket does not exist" in out


class FakeEvaluation:
    """Metrics per model version; records what it evaluated."""

    def __init__(self, by_version: dict[str, dict[str, Any]]) -> None:
        self.by_version = by_version
        self.calls: list[tuple[str, Path, str]] = []

    def __call__(self, model: Any, data_dir: Path, fmt: str = "auto") -> dict[str, Any]:
        self.calls.append((model.version, data_dir, fmt))
        return self.by_version[model.version]


def test_quality_gate_refuses_and_force_overrides(registry: Registry, bundle_factory: Any, redis_client: Any,
                                                  tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for v in ("1.0.0", "1.1.0", "1.2.0"):
        registry.publish(bundle_factory(v))
    registry.promote("1.0.0")
    registry.notify = redis_notifier(redis_client)
    evaluate = FakeEvaluation({"1.0.0": GOOD, "1.1.0": POOR, "1.2.0": GOOD})
    golden = tmp_path / "golden"
    assert promote_with_gate(registry, "1.2.0", golden_dir=golden, evaluate=evaluate) == 2  # no such folder
    assert "is not a folder" in capsys.readouterr().out
    golden.mkdir()
    kwargs: dict[str, Any] = dict(golden_dir=golden, fmt="corners", cache_dir=tmp_path / "cache",
                                  evaluate=evaluate, thresholds=GateThresholds())

    assert promote_with_gate(registry, "1.1.0", **kwargs) == EXIT_REFUSED
    out = capsys.readouterr().out
    assert "candidate 1.1.0" in out and "production 1.0.0" in out
    assert "refused" in out and "recall@0.8 0.610 < 0.75" in out and "spurious/img 0.300 is 0.280 above" in out
    assert registry.resolve("production") == "1.0.0"
    assert sorted(evaluate.calls) == [("1.0.0", golden, "corners"), ("1.1.0", golden, "corners")]

    assert promote_with_gate(registry, "1.1.0", force=True, **kwargs) == EXIT_OK
    assert "quality gate skipped (--force)" in capsys.readouterr().out
    assert registry.resolve("production") == "1.1.0"

    assert promote_with_gate(registry, "1.2.0", **kwargs) == EXIT_OK
    out = capsys.readouterr().out
    assert "refused" not in out and "production -> 1.2.0 (was 1.1.0)" in out
    assert registry.resolve("production") == "1.2.0"

    stricter = dict(kwargs, thresholds=GateThresholds(min_recall_08=0.95))
    assert promote_with_gate(registry, "1.0.0", alias="canary", **stricter) == EXIT_REFUSED
    assert registry.resolve("canary") is None

    # no worse than production by more than the margins: a small loss passes, a larger one does not
    evaluate.by_version["1.3.0"] = dict(GOOD, recall_08=0.90)
    evaluate.by_version["1.4.0"] = dict(GOOD, recall_08=0.86)  # above the floor, 0.07 below production
    for v in ("1.3.0", "1.4.0"):
        registry.publish(bundle_factory(v))
    capsys.readouterr()
    assert promote_with_gate(registry, "1.4.0", **kwargs) == EXIT_REFUSED
    assert "recall@0.8 0.860 is 0.070 below production's 0.930 (margin 0.06)" in capsys.readouterr().out
    assert promote_with_gate(registry, "1.3.0", **kwargs) == EXIT_OK
    assert registry.resolve("production") == "1.3.0"


def test_a_bundle_that_cannot_load_is_refused_with_its_own_exit_code(
        cli_env: None, registry: Registry, bundle_factory: Any, s3: Any, bucket: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    good = bundle_factory("1.0.0")
    assert run(capsys, "publish", str(good))[0] == EXIT_OK

    truncated = bundle_factory("1.1.0")
    (truncated / "detector.onnx").write_bytes((good / "detector.onnx").read_bytes()[:100_000])
    code, out = run(capsys, "publish", str(truncated))
    assert code == EXIT_UNLOADABLE and "cannot be served" in out and "detector" in out and "nothing uploaded" in out
    assert registry.list_versions() == ["1.0.0"]

    blind = bundle_factory("1.2.0")
    config = json.loads((blind / "model.json").read_text())
    config["detector"]["score_threshold"] = 1.01
    (blind / "model.json").write_text(json.dumps(config))
    code, out = run(capsys, "publish", str(blind))
    assert code == EXIT_UNLOADABLE and "finds 0 of the 18 golden plates (needs 12)" in out

    no_config = bundle_factory("1.3.0")
    (no_config / "model.json").write_text("{not json")
    code, out = run(capsys, "publish", str(no_config))
    assert code == EXIT_UNLOADABLE and "model.json" in out
    assert registry.list_versions() == ["1.0.0"]

    # published anyway (--skip-checks): promote refuses it as unloadable, not as "below the gate"
    assert run(capsys, "publish", str(truncated), "--skip-checks")[0] == EXIT_OK
    code, out = run(capsys, "promote", "1.1.0")
    assert code == EXIT_UNLOADABLE and "refused: plateveil-plates@1.1.0 cannot be loaded" in out
    assert "ModelLoadError" in out and "Traceback" not in out and registry.resolve("production") is None

    # a byte flipped in S3 after publishing: the checksum refuses it
    assert run(capsys, "publish", str(bundle_factory("1.4.0")))[0] == EXIT_OK
    key = "models/plateveil-plates/1.4.0/landmarks.onnx"
    body = bytearray(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    body[1000] ^= 0xFF
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(body))
    code, out = run(capsys, "promote", "1.4.0")
    assert code == EXIT_UNLOADABLE and "ModelIntegrityError" in out and "does not match the manifest" in out
    assert registry.resolve("production") is None
    assert run(capsys, "promote", "1.0.0")[0] == EXIT_OK


def test_gate_with_the_real_evaluation(cli_env: None, registry: Registry, bundle_factory: Any, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The real evaluation behind the gate: a golden set with a labelled plate where there is none (so the
    model misses a third of the plates) is refused; the true golden set lets the shipped model through."""

    def golden_set(folder: Path, phantom: bool) -> Path:
        (folder / "images").mkdir(parents=True)
        (folder / "corners").mkdir()
        for i, photo in enumerate(drawn_photos()[:2]):
            cv2.imwrite(str(folder / "images" / f"{photo.name}.jpg"), photo.image)
            plates = [[list(p) for p in plate] for plate in photo.plates]
            if phantom and i == 0:
                plates.append([[5, 5], [60, 5], [60, 20], [5, 20]])
            (folder / "corners" / f"{photo.name}.json").write_text(json.dumps({"plates": plates}))
        return folder

    registry.publish(bundle_factory("1.0.0"))
    code, out = run(capsys, "promote", "1.0.0", "--golden", str(golden_set(tmp_path / "phantom", True)),
                    "--format", "corners")
    assert code == EXIT_REFUSED, out
    assert "candidate 1.0.0" in out and "(2 images, 3 plates)" in out and "recall@0.8" in out
    assert registry.resolve("production") is None
    code, out = run(capsys, "promote", "1.0.0", "--golden", str(golden_set(tmp_path / "true", False)),
                    "--format", "corners")
    assert code == EXIT_OK, out
    assert registry.resolve("production") == "1.0.0"
