"""``plateveil models list|show|unalias|workers``: read the model registry and what the workers serve.

Serving code: nothing here trains, evaluates or imports a deep-learning framework. The release verbs
(``publish``, ``promote`` with its quality gate, ``rollback``) are
:mod:`model_store.training.registry_cli`, which registers these beside its own.
"""

from __future__ import annotations

import argparse
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



@registry_command
def cmd_list(args: argparse.Namespace) -> int:
    registry, _ = open_registry(args)
    aliases = registry.aliases()
    by_version: dict[str, list[str]] = {}
    for alias, pointer in aliases.items():
        by_version.setdefault(pointer.version, []).append(alias)
    versions = registry.list_versions()
    if not versions:
        print(f"no versions in {registry}")
        return EXIT_OK
    for version in sorted(versions, key=Version):
        manifest = registry.show(version)
        tags = ",".join(sorted(by_version.get(version, [])))
        recall = (manifest.metrics or {}).get("recall_08")
        print(f"{version:<24} {manifest.created_at:<26} {manifest.size / 1e6:6.1f} MB  "
              f"recall@0.8 {recall if recall is not None else '-':<6}  {tags}")
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
        canary = f"  canary {s.get('canary')} ({s.get('canary_share', 0):.0%})" if s.get("canary") else ""
        error = f"  last error: {s['last_error']}" if s.get("last_error") else ""
        if not s.get("in_sync", True):
            error = f"  OUT OF SYNC (aliases: {s.get('targets')})" + error
        print(f"{worker:<32} {s.get('production')} [{s.get('source')}]{canary}  checked {s.get('last_check')}"
              f"{'  LOADING' if s.get('loading') else ''}{error}")
    return EXIT_OK
