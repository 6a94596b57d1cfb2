"""Count the project's import graph: arrows, arrows that run up the layers, and import cycles.

    python -m plateveil_ops.import_graph [--root DIR] [--list] [--json]   (or scripts/dev/import_graph.py)

Read with :mod:`ast` (stdlib, no import is executed): every ``import`` / ``from ... import`` in every
module of ``plateveil``, ``model_store``, ``producer``, ``workers``, ``model_training``,
``plateveil_ops`` and ``scripts`` counts, wherever it stands (module level, inside a function, under
``if TYPE_CHECKING``), so a function-local import cannot hide an arrow. An arrow is one (importing
module, imported project module) pair, counted once however often the import is written;
``from pkg import name`` points at ``pkg.name`` when that is a module, else at ``pkg``. Imports of
third-party packages are not arrows.

Layers, lowest first (a module belongs to the longest prefix listed)::

    0 core       plateveil              what every service needs: schema, settings base, errors, job store and
                                        Redis key names, imaging, geometry, conceal styles, storage, pipeline, logs
    1 serving    model_store            bundle format, backends, runtime, registry, cache, golden check
    2 services   producer, workers      the upload service and the Celery worker (neither imports the other)
    3 training   model_training         making and judging models, release tooling
    4 ops        plateveil_ops          console script, doctor, local stack, samples, key verbs
    5 scripts    scripts                benchmarks, reliability runs, model tools, docs helpers

An arrow from a module to a higher layer is *upward*; there must be none (``tests/unit/test_import_rules.py``).
Exit status 1 when there is a cycle or an upward arrow.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("plateveil", "model_store", "producer", "workers", "model_training", "plateveil_ops", "scripts")
LAYERS: dict[str, tuple[int, str]] = {
    "plateveil": (0, "core"),
    "model_store": (1, "serving"),
    "producer": (2, "services"),
    "workers": (2, "services"),
    "model_training": (3, "training"),
    "plateveil_ops": (4, "ops"),
    "scripts": (5, "scripts"),
}
# packages of one layer that must not import each other either (the two services)
APART = (("producer", "workers"),)


def layer(module: str) -> tuple[int, str]:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


def find_modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under the project's packages (``pkg/__init__.py`` is ``pkg``)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _imported(node: ast.AST, module: str, is_package: bool) -> Iterable[tuple[str, list[str]]]:
    """(base module, names imported from it) for one import statement."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name, []
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join(package + ([base] if base else []))
        yield base, [a.name for a in node.names]


@dataclass(frozen=True)
class Graph:
    arrows: frozenset[tuple[str, str]]

    def upward(self) -> list[tuple[str, str]]:
        return sorted((a, b) for a, b in self.arrows if layer(b)[0] > layer(a)[0])

    def across(self) -> list[tuple[str, str]]:
        """Arrows between packages of one layer that must stay apart (producer <-> workers)."""
        top = {a: a.split(".")[0] for pair in self.arrows for a in pair}
        return sorted((a, b) for a, b in self.arrows
                      for x, y in APART if {top[a], top[b]} == {x, y})

    def cycles(self) -> list[list[str]]:
        """Strongly connected components of more than one module (Tarjan), each sorted."""
        succ: dict[str, list[str]] = {}
        for a, b in self.arrows:
            succ.setdefault(a, []).append(b)
            succ.setdefault(b, [])
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        found: list[list[str]] = []

        def visit(v: str) -> None:
            index[v] = low[v] = len(index)
            stack.append(v)
            on_stack.add(v)
            for w in succ[v]:
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

        for v in sorted(succ):
            if v not in index:
                visit(v)
        return sorted(found)


def import_graph(root: Path = ROOT) -> Graph:
    modules = find_modules(root)
    arrows = set()
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            for base, names in _imported(node, module, path.name == "__init__.py"):
                targets = [f"{base}.{n}" for n in names if f"{base}.{n}" in modules] or [base]
                if len(targets) < len(names):   # names that are not modules import from base itself
                    targets.append(base)
                for target in targets:
                    # the closest enclosing project module: `import model_training.data` -> itself
                    while target and target not in modules:
                        target = target.rpartition(".")[0]
                    if target and target != module:
                        arrows.add((module, target))
    return Graph(frozenset(arrows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    parser.add_argument("--list", action="store_true", help="also list every arrow")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args(argv)
    graph = import_graph(args.root)
    upward, across, cycles = graph.upward(), graph.across(), graph.cycles()
    bad = 1 if (cycles or upward or across) else 0
    if args.json:
        print(json.dumps({"arrows": len(graph.arrows), "upward": [list(a) for a in upward],
                          "across": [list(a) for a in across], "cycles": cycles}, indent=1))
        return bad
    if args.list:
        for a, b in sorted(graph.arrows):
            print(f"{a} -> {b}")
    print(f"{len(graph.arrows)} import arrows between {len({m for a in graph.arrows for m in a})} modules")
    print(f"{len(upward)} upward (allowed: 0):")
    for a, b in upward:
        print(f"  {a} [{layer(a)[1]}] -> {b} [{layer(b)[1]}]")
    print(f"{len(across)} between producer and workers (allowed: 0)" + "".join(f"\n  {a} -> {b}" for a, b in across))
    print(f"{len(cycles)} cycle(s)" + "".join(f"\n  {' <-> '.join(c)}" for c in cycles))
    return bad


if __name__ == "__main__":
    sys.exit(main())
