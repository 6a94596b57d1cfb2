"""``plateveil models list|show|unalias|workers``: read the model registry and what the workers serve.

Serving code: nothing here trains, evaluates or imports a deep-learning framework. The release verbs
(``publish``, ``promote`` with its quality gate, ``rollback``) are
:mod:`model_training.registry_cli`, which registers these beside its own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from typing import Any

from model_store.bundle import Version
from model_store.errors import RegistryError
from model_store.registry import WORKER_STATUS_PREFIX, Registry, registry_from_settings
from model_store.registry_settings import RegistrySettings
from plateveil.errors import StorageError
from plateveil.settings import load_settings

EXIT_OK, EXIT_ERROR = 0, 2


def open_registry(args: argparse.Namespace | None = None) -> tuple[Registry, RegistrySettings]:
    """The configured registry and its settings (``PLATEVEIL_*``)."""
    settings = load_settings(RegistrySettings)
    return registry_from_settings(settings), settings


def registry_command(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A command whose registry and storage errors print one line and exit 2."""
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except (RegistryError, StorageError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR

    return wrapper



def validation_metrics(metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The overall validation numbers of a manifest's ``metrics`` (model.json's): ``{"val": {"overall":
    {...}}}`` as the training recipe writes them, or a flat dict."""
    metrics = metrics or {}
    overall = (metrics.get("val") or {}).get("overall") if isinstance(metrics.get("val"), dict) else None
    return dict(overall) if isinstance(overall, dict) else dict(metrics)


def _cell(value: Any, fmt: str = "{:.3f}") -> str:
    return fmt.format(float(value)) if isinstance(value, int | float) else "-"


@registry_command
def cmd_list(args: argparse.Namespace) -> int:
    registry, settings = open_registry(args)
    aliases = registry.aliases()
    by_version: dict[str, list[str]] = {}
    for alias, pointer in aliases.items():
        by_version.setdefault(pointer.version, []).append(alias)
    versions = registry.list_versions()
    if not versions:
        print(f"no versions in {registry}")
        return EXIT_OK
    served = registry.served(settings.model_alias)
    rows = [["version", "published", "MB", "recall@0.8", "spurious/img", "excess", "val images", "aliases",
             f"served ({settings.model_alias})"]]
    for version in sorted(versions, key=Version):
        manifest = registry.show(version)
        m = validation_metrics(manifest.metrics)
        rows.append([version, manifest.created_at, f"{manifest.size / 1e6:.1f}", _cell(m.get("recall_08")),
                     _cell(m.get("spurious_per_image")), _cell(m.get("excess")), _cell(m.get("n_images"), "{:.0f}"),
                     ",".join(sorted(by_version.get(version, []))) or "-",
                     "yes" + (" (last)" if served and served[0] == version else "") if version in served else "-"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print("(metrics: the validation numbers in each version's model.json)")
    return EXIT_OK


@registry_command
def cmd_show(args: argparse.Namespace) -> int:
    registry, _ = open_registry(args)
    print(json.dumps(registry.show(args.version).to_dict(), indent=2, sort_keys=True))
    return EXIT_OK



@registry_command
def cmd_unalias(args: argparse.Namespace) -> int:
    registry, _ = open_registry(args)
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

    from plateveil.redisconn import redis_from_url

    client = redis_from_url(settings.redis_url, decode_responses=True, socket_connect_timeout=3, socket_timeout=5)
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
        print(describe_worker(worker, s))
    return EXIT_OK


def describe_worker(worker: str, s: dict[str, Any]) -> str:
    """One worker's model state in a line or two: what it serves since when, from where, when it
    last checked the registry, and (only while it does not serve what the aliases say) why."""
    canary = f"  canary {s.get('canary')} ({s.get('canary_share', 0):.0%}) since {s.get('canary_since')}" \
        if s.get("canary") else ""
    line = (f"{worker}  {s.get('production')} [{s.get('source')}] since {s.get('production_since')}{canary}  "
            f"checked {s.get('last_check')}{'  LOADING' if s.get('loading') else ''}")
    try:
        quiet = (dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(str(s.get("last_check")))).total_seconds()
    except (TypeError, ValueError):
        quiet = 0.0
    if quiet > 2 * float(s.get("poll_seconds") or 10.0) + 5.0:
        line += f"  NO REPORT FOR {quiet:.0f} s (stopped?)"
    if s.get("in_sync", True):
        return line + "  in sync"
    targets = s.get("targets") or {}
    wanted = ", ".join(f"{slot} -> {v}" for slot, v in targets.items() if v is not None) or "none"
    rejected = s.get("rejected") or {}
    refused = [f"refused {v}: {rejected[v]}" for v in dict.fromkeys(targets.values()) if v in rejected]
    error = f"last error at {s.get('last_error_at')}: {s['last_error']}" if s.get("last_error") else ""
    details = "; ".join(refused) or error
    return line + f"  OUT OF SYNC (aliases: {wanted})" + (f"\n    {details}" if details else "")
