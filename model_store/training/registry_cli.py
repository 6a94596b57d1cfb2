"""``plateveil models publish|list|show|promote|rollback|unalias|workers``: the model registry from the shell.

The S3 connection and bucket come from the same ``PLATEVEIL_*`` variables as the workers
(:class:`~model_store.registry_settings.RegistrySettings`; the gate's own in :class:`GateSettings`).
``list``, ``show``, ``unalias`` and ``workers`` read the registry and the workers' state only; they are
:mod:`model_store.commands` (serving code), registered here beside the release verbs. ``promote`` runs a quality gate first: the
candidate and the current production model are evaluated on a labelled golden set
(``--golden`` / ``PLATEVEIL_GATE_GOLDEN_DIR``), a comparison table is printed, and a candidate
below the thresholds is refused unless ``--force``. After an alias changes the workers are nudged
on Redis (``PLATEVEIL_REDIS_URL``); they also notice by polling.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from pydantic import Field, field_validator

from model_store.backends import DEFAULT_BACKEND, check_backend
from model_store.cache import ModelCache
from model_store.commands import (
    EXIT_ERROR,
    EXIT_OK,
    cmd_list,
    cmd_show,
    cmd_unalias,
    cmd_workers,
    open_registry,
    registry_command,
)
from model_store.registry import Registry, registry_from_settings
from model_store.registry_settings import RegistrySettings
from plateveil.settings import load_settings

Evaluate = Callable[..., dict[str, Any]]
EXIT_REFUSED = 1

# (metric key, label, format, better when higher)
GATE_COLUMNS = (
    ("recall_08", "recall@0.8", "{:.3f}", True),
    ("recall_05", "recall@0.5", "{:.3f}", True),
    ("spurious_per_image", "spurious/img", "{:.3f}", False),
    ("excess", "excess", "{:.3f}", False),
    ("p95_ms", "p95 ms", "{:.1f}", False),
)


class GateSettings(RegistrySettings):
    """``plateveil models promote``: the registry settings plus the quality gate's (``PLATEVEIL_GATE_*``)."""

    backend: str = Field(DEFAULT_BACKEND, description="backend the quality gate evaluates with (onnx, mxnet)")
    gate_golden_dir: Path | None = Field(None, description="labelled photos the promotion quality gate evaluates")
    gate_format: str = Field("auto", description="format of the gate's golden set (auto, voc, yolo, corners)")
    gate_min_recall_08: float = Field(0.85, ge=0, le=1, description="gate: minimum recall at IoU 0.8")
    gate_max_spurious: float = Field(0.1, ge=0, description="gate: maximum spurious detections per image")
    gate_max_excess: float = Field(0.5, ge=0, description="gate: maximum excess (concealed area beyond the plate)")

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        return check_backend(value)


@dataclass(frozen=True)
class GateThresholds:
    min_recall_08: float = 0.85
    max_spurious: float = 0.1
    max_excess: float = 0.5

    @classmethod
    def from_settings(cls, settings: GateSettings) -> GateThresholds:
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
    from model_store.training.evaluate import (
        evaluate_folder,  # cv2 and the data readers: only when a gate runs
    )

    return evaluate_folder(model, data_dir, fmt=fmt)


def promote_with_gate(registry: Registry, version: str, *, alias: str = "production", force: bool = False,
                      golden_dir: Path | None = None, fmt: str = "auto",
                      thresholds: GateThresholds | None = None, cache_dir: Path | None = None,
                      backend: str = DEFAULT_BACKEND, evaluate: Evaluate | None = None,
                      production_alias: str = "production", out: TextIO | None = None) -> int:
    """The ``promote`` command: quality gate, then the alias change. Returns the exit code."""
    from model_store.runtime import (
        load_model,  # cv2: only when a gate runs (`plateveil models list` stays light)
    )

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


@registry_command
def cmd_publish(args: argparse.Namespace) -> int:
    registry, _ = open_registry(args)
    manifest = registry.publish(args.bundle_dir, version=args.version)
    print(f"{manifest.name}@{manifest.version}: {len(manifest.files)} files, {manifest.size / 1e6:.1f} MB, "
          f"digest {manifest.digest[:12]}")
    return EXIT_OK


@registry_command
def cmd_promote(args: argparse.Namespace) -> int:
    settings = load_settings(GateSettings)
    registry = registry_from_settings(settings)
    return promote_with_gate(
        registry, args.version, alias=args.alias, force=args.force,
        golden_dir=args.golden or settings.gate_golden_dir, fmt=args.format or settings.gate_format,
        thresholds=GateThresholds.from_settings(settings), cache_dir=settings.model_cache_dir,
        backend=args.backend or settings.backend, production_alias=settings.model_alias)


@registry_command
def cmd_rollback(args: argparse.Namespace) -> int:
    registry, _ = open_registry(args)
    result = registry.rollback(args.alias)
    print(f"{registry.name} {args.alias} -> {result.version} (rolled back)")
    return EXIT_OK


def register_registry_commands(models_subparsers: Any) -> None:
    """Add the registry commands (release verbs from here, reading verbs from model_store.commands) to the
    ``plateveil models`` sub-parsers, in the order ``--help`` lists them."""
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
