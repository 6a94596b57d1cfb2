"""``plateveil conceal`` (workers.cli): outputs, the exact report format, broken inputs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from plateveil import imaging
from workers.cli import register

TIMING_KEYS = {"decode", "detect", "landmarks", "conceal", "encode", "total"}


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="plateveil")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def write_image(path: Path, w: int, h: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return path


def is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def check_ok_line(line: dict) -> None:
    assert set(line) == {"input", "output", "plates", "timings_ms", "model"}
    assert isinstance(line["input"], str) and isinstance(line["output"], str)
    assert isinstance(line["plates"], list)
    for plate in line["plates"]:
        assert set(plate) == {"polygon", "score"}
        assert isinstance(plate["score"], float)
        assert len(plate["polygon"]) == 4
        assert all(len(pt) == 2 and all(is_number(c) for c in pt) for pt in plate["polygon"])
    assert set(line["timings_ms"]) == TIMING_KEYS
    assert all(isinstance(v, float) for v in line["timings_ms"].values())
    assert isinstance(line["model"], str) and "@" in line["model"]


def test_conceal_folders_and_files_with_a_broken_one(tmp_path, capsys):
    src = tmp_path / "in"
    a = write_image(src / "a" / "car.jpg", 160, 120, seed=1)
    b = write_image(src / "b" / "car.jpg", 200, 100, seed=2)
    c = write_image(src / "c.png", 90, 70, seed=3)
    (src / "notes.txt").write_text("not an image, and not an image extension")
    broken = src / "broken.jpg"
    broken.write_bytes(a.read_bytes()[:300])
    out, report = tmp_path / "out", tmp_path / "report.jsonl"

    code = run_cli(["conceal", str(src), str(broken), "--out", str(out), "--report", str(report),
                    "--style", "pixelate"])

    assert code != 0  # one input failed
    lines = [json.loads(s) for s in report.read_text().splitlines()]
    by_input = {Path(line["input"]).resolve(): line for line in lines}
    assert len(lines) == 4 and set(by_input) == {a, b, c, broken}  # broken listed once, .txt skipped

    err = by_input[broken]
    assert isinstance(err["error"], str) and err["error"]
    assert err["output"] is None

    outputs = set()
    for src_path, size in ((a, (160, 120)), (b, (200, 100)), (c, (90, 70))):
        line = by_input[src_path]
        check_ok_line(line)
        produced = Path(line["output"])
        assert produced.parent == out and produced.is_file()
        decoded = imaging.decode(produced.read_bytes())
        assert (decoded.width, decoded.height) == size
        assert decoded.format == imaging.sniff_image(src_path.read_bytes())
        outputs.add(produced.name)
    assert outputs == {"car.jpg", "car-1.jpg", "c.png"}  # same names from different folders kept apart

    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert "4 images" in summary and "1 failed" in summary and "p50" in summary and "p95" in summary


def test_all_good_inputs_exit_zero_with_default_report(tmp_path):
    img = write_image(tmp_path / "one.jpg", 64, 48)
    out = tmp_path / "out"
    assert run_cli(["conceal", str(img), "--out", str(out)]) == 0
    lines = (out / "report.jsonl").read_text().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    check_ok_line(line)
    assert line["input"] == str(img)


def test_missing_input_is_an_error_line(tmp_path):
    report = tmp_path / "r.jsonl"
    code = run_cli(["conceal", str(tmp_path / "nope.jpg"), "--out", str(tmp_path / "o"), "--report", str(report)])
    assert code == 1
    line = json.loads(report.read_text())
    assert line["output"] is None and line["error"]


def test_unknown_style_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as info:
        run_cli(["conceal", str(tmp_path), "--out", str(tmp_path), "--style", "glitter"])
    assert info.value.code == 2


def test_missing_model_dir_fails_cleanly(tmp_path, capsys):
    img = write_image(tmp_path / "one.jpg", 32, 32)
    code = run_cli(["conceal", str(img), "--out", str(tmp_path / "o"), "--model-dir", str(tmp_path / "nomodel")])
    assert code == 2
    assert "cannot load model" in capsys.readouterr().err
