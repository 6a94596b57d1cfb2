"""The import rules of the layout (issue 34), checked on the source and in fresh processes.

* The import graph (:mod:`plateveil_ops.import_graph`: every import, function-local ones too) has
  no cycle and **no** arrow from a lower layer to a higher one (core < serving < services <
  training < ops < scripts), with no exception; the two services do not import each other.
* The core (``plateveil``) imports nothing else of the project.
* Importing the API app (``producer.app``) or the worker app (``workers.celery_app`` and the task
  modules it includes) loads neither mxnet, gluoncv nor ``model_training``; neither does importing any
  module of ``workers``, ``producer`` or ``model_store`` (but the mxnet backend).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from plateveil_ops import import_graph

ROOT = Path(__file__).resolve().parents[2]
# the one module allowed to import mxnet: the mxnet backend, loaded only when PLATEVEIL_BACKEND=mxnet
FRAMEWORK_ADAPTERS = {"model_store.backends.mxnet_backend"}
FORBIDDEN = "sorted(m for m in sys.modules if m.split('.')[0] in ('mxnet', 'gluoncv', 'model_training'))"


def test_the_import_graph_has_no_cycle_and_no_upward_arrow() -> None:
    graph = import_graph.import_graph(ROOT)
    assert len(graph.arrows) > 100   # the reader sees the project (not an empty folder)
    assert graph.cycles() == []
    assert graph.upward() == []
    assert graph.across() == []


def test_every_module_has_a_layer() -> None:
    for module in import_graph.find_modules(ROOT):
        assert import_graph.layer(module)[1] in {"core", "serving", "services", "training", "ops", "scripts"}


def test_the_core_imports_nothing_else_of_the_project() -> None:
    graph = import_graph.import_graph(ROOT)
    out = sorted((a, b) for a, b in graph.arrows
                 if a.split(".")[0] == "plateveil" and b.split(".")[0] != "plateveil")
    assert out == []


def test_nothing_imports_operations_but_scripts() -> None:
    graph = import_graph.import_graph(ROOT)
    offenders = sorted((a, b) for a, b in graph.arrows if b.split(".")[0] == "plateveil_ops"
                       and a.split(".")[0] not in ("plateveil_ops", "scripts"))
    assert offenders == []


def test_the_graph_reader_sees_function_local_imports_upward_arrows_and_cycles(tmp_path: Path) -> None:
    for package in import_graph.PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "model_store" / "a.py").write_text("def f():\n    from model_store import b\n")
    (tmp_path / "model_store" / "b.py").write_text("from . import a\nimport workers.w\n")
    (tmp_path / "workers" / "w.py").write_text("import numpy\nif False:\n    from producer import p\n")
    (tmp_path / "producer" / "p.py").write_text("def g():\n    import model_training.t\n")
    (tmp_path / "model_training" / "t.py").write_text("")
    (tmp_path / "plateveil" / "c.py").write_text("def h():\n    from plateveil_ops import cli\n")
    (tmp_path / "plateveil_ops" / "cli.py").write_text("import plateveil.c\n")
    graph = import_graph.import_graph(tmp_path)
    assert graph.arrows == {("model_store.a", "model_store.b"), ("model_store.b", "model_store.a"),
                            ("model_store.b", "workers.w"), ("workers.w", "producer.p"),
                            ("producer.p", "model_training.t"), ("plateveil.c", "plateveil_ops.cli"),
                            ("plateveil_ops.cli", "plateveil.c")}
    assert graph.cycles() == [["model_store.a", "model_store.b"], ["plateveil.c", "plateveil_ops.cli"]]
    assert graph.upward() == [("model_store.b", "workers.w"), ("plateveil.c", "plateveil_ops.cli"),
                              ("producer.p", "model_training.t")]
    assert graph.across() == [("workers.w", "producer.p")]
    assert import_graph.main(["--root", str(tmp_path)]) == 1


def _run(code: str) -> object:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PLATEVEIL_REDIS_URL": "redis://127.0.0.1:1/0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_api_app_loads_neither_mxnet_nor_training_code() -> None:
    loaded = _run("import json, sys\nimport producer.app\nassert producer.app.app.routes\n"
                  f"print(json.dumps({FORBIDDEN}))\n")
    assert loaded == []


def test_the_worker_app_loads_neither_mxnet_nor_training_code() -> None:
    loaded = _run("import json, sys\nfrom workers.celery_app import app\napp.loader.import_default_modules()\n"
                  "assert 'plateveil.conceal_photo' in app.tasks\n"
                  f"print(json.dumps({FORBIDDEN}))\n")
    assert loaded == []


def _modules(package: str) -> list[str]:
    names = sorted(import_graph.find_modules(ROOT))
    return [m for m in names if (m == package or m.startswith(package + ".")) and m not in FRAMEWORK_ADAPTERS]


@pytest.mark.parametrize("package", ["workers", "producer", "model_store"])
def test_services_and_serving_modules_import_no_training_code(package: str) -> None:
    modules = _modules(package)
    assert modules
    code = ("import importlib, json, sys\n"
            "bad = {}\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            f"    loaded = {FORBIDDEN}\n"
            "    if loaded:\n"
            "        bad[name] = loaded\n"
            "        break\n"
            "print(json.dumps(bad))\n")
    assert _run(code) == {}


def _script_imports(root: Path) -> list[str]:
    """Places under ``root/tests`` that import a script: ``import``/``from`` of a script's module name (or of
    ``scripts``), or a line that puts a script on ``sys.path`` / loads one by file location."""
    stems = {p.stem for p in (root / "scripts").rglob("*.py")} | {"scripts"}
    found = []
    for path in sorted((root / "tests").rglob("*.py")):
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            found += [f"{path.relative_to(root)}:{node.lineno} imports {n}" for n in names if n.split(".")[0] in stems]
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                    "insert", "append", "spec_from_file_location", "run_path", "import_module"):
                if any(isinstance(c, ast.Constant) and isinstance(c.value, str) and "scripts" in c.value
                       for arg in node.args for c in ast.walk(arg)):
                    found.append(f"{path.relative_to(root)}:{node.lineno} loads a script")
    return found


def test_no_test_imports_a_script() -> None:
    assert _script_imports(ROOT) == []


def test_the_script_import_check_finds_one(tmp_path: Path) -> None:
    (tmp_path / "scripts" / "bench").mkdir(parents=True)
    (tmp_path / "scripts" / "bench" / "bench_e2e.py").write_text("")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text("def test():\n    import bench_e2e\n")
    (tmp_path / "tests" / "test_b.py").write_text('import sys\nsys.path.insert(0, "scripts")\n')
    assert _script_imports(tmp_path) == ["tests/test_a.py:2 imports bench_e2e", "tests/test_b.py:2 loads a script"]
