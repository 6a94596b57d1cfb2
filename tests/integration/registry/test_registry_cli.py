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
from model_training import gate
from model_training.gate import GateData
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
        # real timings never decide a test (the machine is shared): the latency margin is tested with injected
        # latencies (test_gate_refuses_a_slower_candidate_and_a_loss_on_one_folder)
        "PLATEVEIL_GATE_MAX_LATENCY_RISE": "100",
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
    # checked before the upload; how many of the 18 the shipped model finds is its own (1.10.0: 17, 2.0.0: 18, 3.0.0: 18)
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
    """Reports per model version (flat metrics: one folder, ``golden``; a list: one per call, in turn); records
    what it evaluated."""

    def __init__(self, by_version: dict[str, Any]) -> None:
        self.by_version = by_version
        self.calls: list[tuple[list[str], GateData]] = []

    def __call__(self, models: dict[str, Any], data: GateData) -> dict[str, dict[str, Any]]:
        assert all(model.version == v for v, model in models.items())  # the real models, loaded from the registry
        self.calls.append((sorted(models), data))
        out = {}
        for v in models:
            r = self.by_version[v]
            if isinstance(r, list):
                r = r.pop(0) if len(r) > 1 else r[0]
            out[v] = r if "per_folder" in r else {"overall": r, "per_folder": {"golden": r}}
        return out


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
    assert "refused" in out and "recall@0.8 0.610 < 0.75" in out and "spurious regions +14 (1 -> 15 on 50 photos" in out
    assert registry.resolve("production") == "1.0.0"
    assert evaluate.calls == [(["1.0.0", "1.1.0"], GateData(folders=(golden,), fmt="corners"))]

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

    # no worse than production by more than the margins: one plate of 55 lost passes, two do not
    evaluate.by_version["1.3.0"] = dict(GOOD, recall_08=50 / 55)
    evaluate.by_version["1.4.0"] = dict(GOOD, recall_08=49 / 55)  # above the floor, 2 plates below production
    for v in ("1.3.0", "1.4.0"):
        registry.publish(bundle_factory(v))
    capsys.readouterr()
    assert promote_with_gate(registry, "1.4.0", **kwargs) == EXIT_REFUSED
    assert "golden: recall@0.8 loses 2 plates (51 -> 49 of 55, 0.930 -> 0.891; margin 1 plate)" in capsys.readouterr().out
    assert promote_with_gate(registry, "1.3.0", **kwargs) == EXIT_OK
    assert registry.resolve("production") == "1.3.0"


def _folders(found: dict[str, int], **overall: Any) -> dict[str, Any]:
    """A two-folder report: ``found`` plates at IoU 0.8 of open-lpr's 205 and oi-streets' 350."""
    sizes = {"open-lpr": (205, 203), "oi-streets": (350, 230)}
    per_folder = {name: dict(GOOD, recall_08=found[name] / sizes[name][0], n_plates=sizes[name][0],
                             n_images=sizes[name][1], spurious_per_image=0.05) for name in sizes}
    total = sum(found.values()) / 555
    return {"overall": dict(GOOD, recall_08=total, n_plates=555, n_images=433, spurious_per_image=0.05, **overall),
            "per_folder": per_folder}


def test_gate_refuses_a_slower_candidate_and_a_loss_on_one_folder(
        registry: Registry, bundle_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Latency against production (as measured by the evaluation, injected here) and the margins per folder."""
    for v in ("2.0.0", "3.0.0", "3.0.1", "3.0.2", "3.0.3"):  # and 3.0.4 below
        registry.publish(bundle_factory(v))
    prod = _folders({"open-lpr": 180, "oi-streets": 300}, p50_ms=80.0, p95_ms=113.0)
    evaluate = FakeEvaluation({
        "2.0.0": prod,
        "3.0.0": _folders({"open-lpr": 195, "oi-streets": 310}, p50_ms=150.0, p95_ms=265.0),  # better, twice as slow
        "3.0.1": _folders({"open-lpr": 195, "oi-streets": 310}, p50_ms=95.0, p95_ms=135.0),  # within the margin
        "3.0.2": _folders({"open-lpr": 200, "oi-streets": 291}, p50_ms=80.0, p95_ms=113.0),  # -9 plates, +20
        "3.0.3": _folders({"open-lpr": 200, "oi-streets": 294}, p50_ms=80.0, p95_ms=113.0),  # -6 plates: within
    })
    kwargs: dict[str, Any] = dict(golden_dir=tmp_path, cache_dir=tmp_path / "cache", evaluate=evaluate)
    assert promote_with_gate(registry, "2.0.0", **kwargs) == EXIT_OK
    out = capsys.readouterr().out
    assert "no production model to compare with: latency not checked, the floors only" in out
    assert next(line for line in out.splitlines() if line.startswith("p95 ms")).endswith("not checked (no production)")

    assert promote_with_gate(registry, "3.0.0", **kwargs) == EXIT_REFUSED
    out = capsys.readouterr().out
    assert "refused: 3.0.0 is below the quality gate: latency: p50 150.0 ms > 98.0 ms allowed" in out
    assert "latency: p95 265.0 ms > 137.6 ms allowed (production 113.0 ms x 1.2 + 2 ms), and again p95 265.0" in out
    assert "latency over the margin: measuring both again to confirm" in out and "over the margin again" in out
    assert "machine load during the gate: " in out
    assert next(line for line in out.splitlines() if line.startswith("p95 ms")).split()[-1] == "FAIL"
    assert registry.resolve("production") == "2.0.0"

    assert promote_with_gate(registry, "3.0.2", **kwargs) == EXIT_REFUSED
    out = capsys.readouterr().out
    assert "oi-streets: recall@0.8 loses 9 plates (300 -> 291 of 350" in out and "latency" not in out.split("refused")[1]
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("open-lpr", "oi-streets"))}
    # (these reports carry no plate widths: every plate is judged per folder, in the "plates" columns)
    assert rows["open-lpr"][8:12] == ["200", "180", "+20", "-4"] and rows["open-lpr"][-1] == "ok"
    assert rows["oi-streets"][8:12] == ["291", "300", "-9", "-7"] and rows["oi-streets"][-1] == "FAIL"
    assert registry.resolve("production") == "2.0.0"

    # slow once, within the margin when measured again (a busy machine): the latency does not refuse it
    registry.publish(bundle_factory("3.0.4"))
    evaluate.by_version["3.0.4"] = [_folders({"open-lpr": 180, "oi-streets": 300}, p50_ms=80.0, p95_ms=180.0),
                                    _folders({"open-lpr": 180, "oi-streets": 300}, p50_ms=81.0, p95_ms=115.0)]
    n_calls = len(evaluate.calls)
    assert promote_with_gate(registry, "3.0.4", **kwargs) == EXIT_OK
    out = capsys.readouterr().out
    assert len(evaluate.calls) == n_calls + 2 and "within the margin, the first was noise" in out, out
    assert "production -> 3.0.4 (was 2.0.0)" in out
    registry.promote("2.0.0")

    assert promote_with_gate(registry, "3.0.1", **kwargs) == EXIT_OK  # 19% slower (p95), more plates everywhere
    assert "production -> 3.0.1 (was 2.0.0)" in capsys.readouterr().out
    registry.promote("2.0.0")
    assert promote_with_gate(registry, "3.0.3", **kwargs) == EXIT_OK  # 6 plates of 350 lost: within 2%
    assert registry.resolve("production") == "3.0.3"


def test_gate_settings_come_from_the_environment(cli_env: None, registry: Registry, bundle_factory: Any,
                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    for v in ("2.0.0", "3.0.0"):
        registry.publish(bundle_factory(v))
    registry.promote("2.0.0")
    evaluate = FakeEvaluation({"2.0.0": dict(GOOD, p95_ms=113.0), "3.0.0": dict(GOOD, p95_ms=265.0)})
    monkeypatch.setattr(gate, "default_evaluate", evaluate)
    monkeypatch.delenv("PLATEVEIL_GATE_MAX_LATENCY_RISE")  # the default, 0.2
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("PLATEVEIL_GATE_DATA_ROOT", str(root))
    monkeypatch.setenv("PLATEVEIL_GATE_MAX_PHOTOS", "40")
    code, out = run(capsys, "promote", "3.0.0", "--wait", "0")
    assert code == EXIT_REFUSED and "latency: p95 265.0 ms > 137.6 ms allowed" in out, out
    assert evaluate.calls[-1][1] == GateData(data_root=root, max_photos=40)  # the data root alone, no golden set
    assert f"the validation split of each data folder under {root} (reviewed labels), at most 40 photos" in out

    monkeypatch.setenv("PLATEVEIL_GATE_MAX_LATENCY_RISE", "1.5")
    code, out = run(capsys, "promote", "3.0.0", "--wait", "0", "--max-photos", "0", "--labels", "given")
    assert code == EXIT_OK and "<= prod x 2.5 + 2 ms" in out, out
    assert evaluate.calls[-1][1] == GateData(data_root=root, labels="given")
    assert registry.resolve("production") == "3.0.0"

    monkeypatch.setenv("PLATEVEIL_GATE_MAX_LATENCY_RISE", "fast")
    with pytest.raises(SystemExit, match="PLATEVEIL_GATE_MAX_LATENCY_RISE: Input should be a valid number"):
        main(["models", "promote", "2.0.0", "--wait", "0"])


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
    (tmp_path / "empty").mkdir()
    code, out = run(capsys, "promote", "1.0.0", "--data-root", str(tmp_path / "empty"))
    assert code == 2 and "error: the gate cannot read its photos: no labelled photos in" in out, out
    code, out = run(capsys, "promote", "1.0.0", "--golden", str(golden_set(tmp_path / "phantom", True)),
                    "--format", "corners")
    assert code == EXIT_REFUSED, out
    assert "candidate 1.0.0" in out and "(2 images, 3 plates) p50/p95: the fastest of 5 timed run(s)" in out, out
    assert "no production model to compare with: latency not checked" in out and "recall@0.8" in out
    assert registry.resolve("production") is None
    code, out = run(capsys, "promote", "1.0.0", "--golden", str(golden_set(tmp_path / "true", False)),
                    "--format", "corners")
    assert code == EXIT_OK, out
    assert registry.resolve("production") == "1.0.0"
