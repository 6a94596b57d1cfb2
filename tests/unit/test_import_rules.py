"""The import rules of the layout (issue 23), checked on the source and in fresh processes.

* The import graph (``scripts/import_graph.py``: every import, function-local ones too) has no
  cycle and at most ``MAX_UPWARD`` arrows from a lower layer to a higher one.
* Nothing outside ``model_training`` imports it, except the console script that wires every
  package's commands (``plateveil_ops/cli.py``) and the scripts.
* Importing ``workers``, ``producer`` or any serving module of ``model_store`` loads neither
  ``model_training`` nor mxnet nor gluoncv.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = {"plateveil_ops.cli"}   # + every module under scripts/
# the one module allowed to import mxnet: the mxnet backend, loaded only when PLATEVEIL_BACKEND=mxnet
FRAMEWORK_ADAPTERS = {"model_store.backends.mxnet_backend"}


def _load_script():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module
    spec.loader.exec_module(module)
    return module


import_graph = _load_script()


def test_the_import_graph_has_no_cycle_and_few_upward_arrows() -> None:
    graph = import_graph.import_graph(ROOT)
    assert len(graph.arrows) > 100   # the reader sees the project (not an empty folder)
    assert graph.cycles() == []
    assert len(graph.upward()) <= import_graph.MAX_UPWARD, graph.upward()


def test_the_graph_reader_sees_function_local_imports_and_cycles(tmp_path: Path) -> None:
    for package in import_graph.PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "model_store" / "a.py").write_text("def f():\n    from model_store import b\n")
    (tmp_path / "model_store" / "b.py").write_text("from . import a\nimport workers.w\n")
    (tmp_path / "workers" / "w.py").write_text("import numpy\n")
    graph = import_graph.import_graph(tmp_path)
    assert graph.arrows == {("model_store.a", "model_store.b"), ("model_store.b", "model_store.a"),
                            ("model_store.b", "workers.w")}
    assert graph.cycles() == [["model_store.a", "model_store.b"]]
    assert graph.upward() == [("model_store.b", "workers.w")]


def test_nothing_outside_training_imports_it() -> None:
    graph = import_graph.import_graph(ROOT)
    training = "model_training"
    offenders = sorted((a, b) for a, b in graph.arrows
                       if (b == training or b.startswith(training + "."))
                       and not (a == training or a.startswith(training + "."))
                       and a not in ENTRY_POINTS and not a.startswith("scripts."))
    assert offenders == []


def _modules(package: str) -> list[str]:
    names = sorted(import_graph.find_modules(ROOT))
    return [m for m in names if (m == package or m.startswith(package + "."))
            and not m.startswith("model_training") and m not in FRAMEWORK_ADAPTERS]


@pytest.mark.parametrize("package", ["workers", "producer", "model_store"])
def test_services_and_serving_modules_import_no_training_code(package: str) -> None:
    modules = _modules(package)
    assert modules
    code = ("import importlib, json, sys\n"
            "bad = {}\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "    loaded = sorted(m for m in sys.modules if m.startswith('model_training') "
            "or m.split('.')[0] in ('mxnet', 'gluoncv'))\n"
            "    if loaded:\n"
            "        bad[name] = loaded\n"
            "        break\n"
            "print(json.dumps(bad))\n")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PLATEVEIL_REDIS_URL": "redis://127.0.0.1:1/0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout) == {}
