"""``plateveil models publish|list|show|promote|rollback|unalias|workers``: the model registry from the shell.

The S3 connection and bucket come from the same ``PLATEVEIL_*`` variables as the workers
(:class:`~model_store.registry.RegistrySettings`). ``promote`` runs a quality gate first: the
candidate and the current production model are evaluated on a labelled golden set
(``--golden`` / ``PLATEVEIL_GATE_GOLDEN_DIR``), a comparison table is printed, and a candidate
below the thresholds is refused unless ``--force``. After an alias changes the workers are nudged
on Redis (``PLATEVEIL_REDIS_URL``); they also notice by polling.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from model_store.registry import (
    WORKER_STATUS_PREFIX,
    Registry,
    RegistryError,
    RegistrySettings,
    registry_from_settings,
    version_sort_key,
)
from plateveil.errors import StorageError
from plateveil.settings import load_settings

Evaluate = Callable[..., dict[str, Any]]
EXIT_OK, EXIT_REFUSED, EXIT_ERROR = 0, 1, 2

# (metric key, label, format, better when higher)
GATE_COLUMNS = (
    ("recall_08", "recall@0.8", "{:.3f}", True),
    ("recall_05", "recall@0.5", "{:.3f}", True),
    ("spurious_per_image", "spurious/img", "{:.3f}", False),
    ("excess", "excess", "{:.3f}", False),
    ("p95_ms", "p95 ms", "{:.1f}", False),
)


@dataclass(frozen=True)
class GateThresholds:
    min_recall_08: float = 0.85
    max_spurious: float = 0.1
    max_excess: float = 0.5

    @classmethod
    def from_settings(cls, settings: RegistrySettings) -> GateThresholds:
        return cls(settings.gate_min_recall_08, settings.gate_max_spurious, settings.gate_max_excess)

    def failures(self, metrics: dict[str, Any]) -> list[str]:
        """What ``metrics`` misses, one line each (empty: the gate passes)."""
        out = []
        if float(metrics["recall_08"]) < self.min_recall_08:
            out.append(f"recall@0.8 {metrics['recall_08']:.3f} < {self.min_recall_08}")
        if float(metrics["spurious_per_image"]) > self.max_spurious:
            out.append(f"spurious/img {metrics['spurious_per_image']:.3f} > {self.max_spurious}")
        if float(metrics["excess"]) > self.max_excess:
            out.append(f"excess {metrics['excess']:.3f} > {self.max_excess}")
        return out

    def describe(self, key: str) -> str:
        return {"recall_08": f">= {self.min_recall_08}", "spurious_per_image": f"<= {self.max_spurious}",
                "excess": f"<= {self.max_excess}"}.get(key, "")


def comparison_table(candidate: tuple[str, dict[str, Any]], production: tuple[str, dict[str, Any]] | None,
                     thresholds: GateThresholds) -> str:
    """A plain-text table: one row per metric, candidate vs production vs threshold."""
    headers = ["metric", f"candidate {candidate[0]}"]
    if production is not None:
        headers.append(f"production {production[0]}")
    headers.append("threshold")
    rows = [headers]
    for key, label, fmt, _ in GATE_COLUMNS:
        row = [label, fmt.format(float(candidate[1].get(key, float("nan"))))]
        if production is not None:
            row.append(fmt.format(float(production[1].get(key, float("nan")))))
        row.append(thresholds.describe(key))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    n = candidate[1].get("n_images")
    if n is not None:
        lines.append(f"({n} images, {candidate[1].get('n_plates', '?')} plates)")
    return "\n".join(lines)


def _default_evaluate(model: Any, data_dir: Path, fmt: str = "auto") -> dict[str, Any]:
    from model_store.evaluate import evaluate_folder

    return evaluate_folder(model, data_dir, fmt=fmt)


def promote_with_gate(registry: Registry, version: str, *, alias: str = "production", force: bool = False,
                      golden_dir: Path | None = None, fmt: str = "auto",
                      thresholds: GateThresholds | None = None, cache_dir: Path | None = None,
                      backend: str = "onnx", evaluate: Evaluate | None = None,
                      production_alias: str = "production", out: TextIO | None = None) -> int:
    """The ``promote`` command: quality gate, then the alias change. Returns the exit code."""
    from model_store.cache import ModelCache
    from model_store.runtime import load_model

    out = out or sys.stdout
    thresholds = thresholds or GateThresholds()
    evaluate = evaluate or _default_evaluate
    registry.show(version)  # fails early with the known versions
    if golden_dir is None:
        if not force:
            print(f"refused: no golden set for the quality gate (--golden DIR or PLATEVEIL_GATE_GOLDEN_DIR); "
                  f"--force promotes {version} without it", file=out)
            return EXIT_REFUSED
        print("no golden set: quality gate skipped (--force)", file=out)
    elif not Path(golden_dir).is_dir():
        print(f"error: the golden set {golden_dir} is not a folder", file=out)
        return EXIT_ERROR
    else:
        cache = ModelCache(cache_dir or Path("~/.cache/plateveil/models"))

        def measure(v: str) -> dict[str, Any]:
            model = load_model(cache.fetch(registry, v), backend=backend)
            return evaluate(model, Path(golden_dir), fmt)

        candidate = measure(version)
        current = registry.resolve(production_alias)
        production = (current, measure(current)) if current and current != version else None
        print(comparison_table((version, candidate), production, thresholds), file=out)
        failures = thresholds.failures(candidate)
        if failures and not force:
            print(f"refused: {version} is below the quality gate: {'; '.join(failures)} (--force overrides)",
                  file=out)
            return EXIT_REFUSED
        if failures:
            print(f"below the quality gate ({'; '.join(failures)}) but promoted anyway (--force)", file=out)
    before = registry.resolve(alias)
    result = registry.promote(version, alias)
    note = "already there" if before == version else f"was {before}" if before else "new alias"
    print(f"{registry.name} {alias} -> {result.version} ({note})", file=out)
    return EXIT_OK


# -- argparse -----------------------------------------------------------------------------------


def _registry(args: argparse.Namespace) -> tuple[Registry, RegistrySettings]:
    settings = load_settings(RegistrySettings)
    return registry_from_settings(settings), settings


def _run(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except (RegistryError, StorageError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR

    return wrapper


@_run
def cmd_publish(args: argparse.Namespace) -> int:
    registry, _ = _registry(args)
    manifest = registry.publish(args.bundle_dir, version=args.version)
    print(f"{manifest.name}@{manifest.version}: {len(manifest.files)} files, {manifest.size / 1e6:.1f} MB, "
          f"digest {manifest.digest[:12]}")
    return EXIT_OK


@_run
def cmd_list(args: argparse.Namespace) -> int:
    registry, _ = _registry(args)
    aliases = registry.aliases()
    by_version: dict[str, list[str]] = {}
    for alias, pointer in aliases.items():
        by_version.setdefault(pointer.version, []).append(alias)
    versions = registry.list_versions()
    if not versions:
        print(f"no versions in {registry}")
        return EXIT_OK
    for version in sorted(versions, key=version_sort_key):
        manifest = registry.show(version)
        tags = ",".join(sorted(by_version.get(version, [])))
        recall = (manifest.metrics or {}).get("recall_08")
        print(f"{version:<24} {manifest.created_at:<26} {manifest.size / 1e6:6.1f} MB  "
              f"recall@0.8 {recall if recall is not None else '-':<6}  {tags}")
    return EXIT_OK


@_run
def cmd_show(args: argparse.Namespace) -> int:
    registry, _ = _registry(args)
    print(json.dumps(registry.show(args.version).to_dict(), indent=2, sort_keys=True))
    return EXIT_OK


@_run
def cmd_promote(args: argparse.Namespace) -> int:
    registry, settings = _registry(args)
    return promote_with_gate(
        registry, args.version, alias=args.alias, force=args.force,
        golden_dir=args.golden or settings.gate_golden_dir, fmt=args.format or settings.gate_format,
        thresholds=GateThresholds.from_settings(settings), cache_dir=settings.model_cache_dir,
        backend=args.backend or settings.backend, production_alias=settings.model_alias)


@_run
def cmd_rollback(args: argparse.Namespace) -> int:
    registry, _ = _registry(args)
    result = registry.rollback(args.alias)
    print(f"{registry.name} {args.alias} -> {result.version} (rolled back)")
    return EXIT_OK


@_run
def cmd_unalias(args: argparse.Namespace) -> int:
    registry, _ = _registry(args)
    removed = registry.remove_alias(args.alias)
    print(f"{registry.name} {args.alias} " + ("removed" if removed else "was not set"))
    return EXIT_OK


def worker_states(redis_client: Any) -> dict[str, dict[str, Any]]:
    """What each running worker process serves, from the hashes its model swapper refreshes."""
    states = {}
    for key in sorted(redis_client.scan_iter(match=WORKER_STATUS_PREFIX + "*", count=500)):
        key = key.decode() if isinstance(key, bytes) else key
        raw = redis_client.hget(key, "models")
        if raw:
            states[key[len(WORKER_STATUS_PREFIX):]] = json.loads(raw)
    return states


def cmd_workers(args: argparse.Namespace) -> int:
    settings = load_settings(RegistrySettings)
    if not settings.redis_url:
        print("error: set PLATEVEIL_REDIS_URL to see the workers", file=sys.stderr)
        return EXIT_ERROR
    import redis

    client = redis.Redis.from_url(settings.redis_url, decode_responses=True, socket_connect_timeout=3,
                                  socket_timeout=5)
    try:
        states = worker_states(client)
    except redis.RedisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(states, indent=2, sort_keys=True))
        return EXIT_OK
    if not states:
        print("no worker has reported a model state (workers without a registry do not)")
        return EXIT_OK
    for worker, s in states.items():
        canary = f"  canary {s.get('canary')} ({s.get('canary_share', 0):.0%})" if s.get("canary") else ""
        error = f"  last error: {s['last_error']}" if s.get("last_error") else ""
        if not s.get("in_sync", True):
            error = f"  OUT OF SYNC (aliases: {s.get('targets')})" + error
        print(f"{worker:<32} {s.get('production')} [{s.get('source')}]{canary}  checked {s.get('last_check')}"
              f"{'  LOADING' if s.get('loading') else ''}{error}")
    return EXIT_OK


def register_registry_commands(models_subparsers: Any) -> None:
    """Add the registry commands to the ``plateveil models`` sub-parsers."""
    sub = models_subparsers
    p = sub.add_parser("publish", help="upload a bundle folder to the registry as an immutable version")
    p.add_argument("bundle_dir", type=Path, help="folder with model.json and the model files")
    p.add_argument("--version", help="version to publish as (default: model.json's)")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("list", help="versions in the registry and the aliases pointing at them")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="the manifest of one version")
    p.add_argument("version")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("promote", help="point an alias at a version, after the quality gate")
    p.add_argument("version")
    p.add_argument("--alias", default="production", help="alias to move (production, canary)")
    p.add_argument("--force", action="store_true", help="promote even below the gate or without a golden set")
    p.add_argument("--golden", type=Path, help="labelled photos for the gate (default PLATEVEIL_GATE_GOLDEN_DIR)")
    p.add_argument("--format", help="format of the golden set (auto, voc, yolo, corners)")
    p.add_argument("--backend", help="backend to evaluate with (default PLATEVEIL_BACKEND)")
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("rollback", help="point an alias back at its previous version")
    p.add_argument("--alias", default="production")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("unalias", help="remove an alias (e.g. end a canary)")
    p.add_argument("alias")
    p.set_defaults(func=cmd_unalias)

    p = sub.add_parser("workers", help="which model version each running worker serves (from Redis)")
    p.add_argument("--json", action="store_true", help="the full state of each worker as JSON")
    p.set_defaults(func=cmd_workers)
