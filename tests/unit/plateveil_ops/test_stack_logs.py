"""The local stack reads a service's readiness from what it wrote in this run, not from the text
earlier runs left in the same log file; its env file exports what a shell needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from plateveil_ops.stack import MODELS_BUCKET, Stack, env_file


def test_log_text_is_this_runs_only(tmp_path: Path) -> None:
    stack = Stack(state_dir=tmp_path, ports={"redis": 1, "s3": 2, "api": 3})
    log = tmp_path / "logs" / "worker.log"
    log.parent.mkdir(parents=True)
    log.write_text("[old run] celery@host ready.\n")
    proc = stack._spawn("worker", [sys.executable, "-c", "print('starting')"], marker="-c")
    proc.wait(timeout=30)
    stack.stop()
    assert stack._log_text("worker") == "starting\n"
    assert log.read_text() == "[old run] celery@host ready.\nstarting\n"  # the file keeps both


def test_env_file_exports_api_registry_and_the_venv(tmp_path: Path) -> None:
    stack = Stack(state_dir=tmp_path, api_key="k'ey", ports={"redis": 1, "s3": 2, "api": 3})
    text = env_file(stack)
    assert "export API_URL=http://127.0.0.1:3\n" in text and "export API_KEY='k'\"'\"'ey'\n" in text
    assert f"export PLATEVEIL_REGISTRY_BUCKET={MODELS_BUCKET}\n" in text
    assert f"export PLATEVEIL_MODEL_CACHE_DIR={tmp_path.resolve() / 'model-cache'}\n" in text
    shell = subprocess.run(["bash", "-c", f"source /dev/stdin <<'EOF'\n{text}EOF\necho \"$API_KEY|$PATH\""],
                           capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    key, path = shell.stdout.strip().split("|")
    assert key == "k'ey" and path.split(":")[0] == str(Path(sys.executable).parent.absolute())
    no_registry = env_file(Stack(state_dir=tmp_path, with_registry=False, ports={"redis": 1, "s3": 2, "api": 3}))
    assert "PLATEVEIL_REGISTRY_BUCKET" not in no_registry
