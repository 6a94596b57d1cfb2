"""``plateveil models publish|list|show|promote|rollback|unalias|workers``: the model registry from the shell.

The S3 connection and bucket come from the same ``PLATEVEIL_*`` variables as the workers
(:class:`~model_store.registry_settings.RegistrySettings`; the gate's own in :class:`GateSettings`).
``list``, ``show``, ``unalias`` and ``workers`` read the registry and the workers' state only; they are
:mod:`model_store.commands` (serving code), registered here beside the release verbs.

* ``publish`` first checks the bundle: it loads with every backend it has files for (onnx; mxnet when
  installed) and passes the smoke check on the golden set; a bundle that does not is not uploaded.
* ``promote`` runs a quality gate (:mod:`model_training.gate`, which says why its margins are what they are):
  the candidate and the current production model are run, interleaved in this process, on labelled photos
  (the shipped ``model_store/golden_set/`` unless ``--golden DIR`` (repeatable) / ``PLATEVEIL_GATE_GOLDEN_DIR``
  or ``--data-root ROOT`` / ``PLATEVEIL_GATE_DATA_ROOT``: the validation split of each data folder, folder by
  folder); a comparison table and a per-folder table are printed, and a candidate below the absolute floors,
  worse than production on any folder by more than the margins (in plates and regions), or slower by more
  than the latency margin, is refused unless ``--force``. Then it
  moves the alias, nudges the workers on Redis (``PLATEVEIL_REDIS_URL``; they also notice by
  polling) and waits (``--wait``, default ``PLATEVEIL_PROMOTE_WAIT_S``) until every worker of this
  registry reports serving the version, naming the workers that refuse it.
* ``rollback`` points the alias at the last version the workers reported serving successfully
  (recorded in the registry by the workers), and waits the same way.

Exit codes: 0 done; 1 refused by the quality gate; 2 an error (S3, unknown version, bad settings);
3 the bundle cannot be loaded or fails the smoke check; 4 workers refused the version; 5 workers did
not report the version within the wait.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from math import nan
from pathlib import Path
from typing import Any, TextIO

from pydantic import Field, field_validator

from model_store.backends import (
    DEFAULT_BACKEND,
    backend_class,
    check_backend,
    complete_backends,
    distinct_backends,
)
from model_store.cache import ModelCache
from model_store.commands import (
    EXIT_ERROR,
    EXIT_OK,
    cmd_list,
    cmd_show,
    cmd_unalias,
    cmd_workers,
    registry_command,
    worker_states,
)
from model_store.errors import ModelIntegrityError, ModelLoadError
from model_store.registry import Registry, registry_from_settings
from model_store.registry_settings import RegistrySettings
from model_training import gate
from model_training.gate import Evaluate, GateData, GateThresholds, comparison_table, folder_table
from plateveil.settings import load_settings

__all__ = ["GateData", "GateSettings", "GateThresholds", "comparison_table", "folder_table", "promote_with_gate"]

EXIT_REFUSED = 1
EXIT_UNLOADABLE = 3
EXIT_WORKERS_REFUSED = 4
EXIT_WORKERS_TIMEOUT = 5

class GateSettings(RegistrySettings):
    """``plateveil models promote``: the registry settings plus the quality gate's (``PLATEVEIL_GATE_*``)."""

    backend: str = Field(DEFAULT_BACKEND, description="backend the quality gate evaluates with (onnx, mxnet)")
    gate_golden_dir: Path | None = Field(None, description="labelled photos the promotion quality gate evaluates "
                                                            "(unset: the shipped model_store/golden_set/, unless "
                                                            "PLATEVEIL_GATE_DATA_ROOT is set)")
    gate_format: str = Field("auto", description="format of the gate's golden set (auto, voc, yolo, corners)")
    gate_data_root: Path | None = Field(None, description="a data root (../shared/data) whose data folders' "
                                                          "validation split the gate judges folder by folder")
    gate_labels: str = Field("reviewed", description="labels of the data root's photos: reviewed (with the plates "
                                                     "the review added, as `plateveil models eval`) or given")
    gate_max_photos: int = Field(0, ge=0, description="at most this many photos per gate folder (a fixed subset; "
                                                      "0: all)")
    gate_latency_rounds: int = Field(0, ge=0, description="timed runs per photo and model, the fastest counts (0: "
                                                          "enough for 80 runs, at most 5)")
    gate_min_recall_08: float = Field(0.75, ge=0, le=1, description="gate floor: minimum recall at IoU 0.8")
    gate_max_spurious: float = Field(0.35, ge=0, description="gate floor: maximum spurious detections per image")
    gate_max_excess: float = Field(0.25, ge=0, description="gate floor: maximum excess (area beyond the plate)")
    gate_max_recall_drop: float = Field(0.02, ge=0, description="gate margin per folder: share of its plates the "
                                                                "candidate may find fewer than production")
    gate_max_recall_drop_plates: int = Field(1, ge=0, description="gate margin per folder: plates the candidate may "
                                                                  "lose whatever the folder's size")
    gate_max_spurious_rise: float = Field(0.02, ge=0, description="gate margin per folder: more spurious regions "
                                                                  "per photo than production")
    gate_max_spurious_rise_regions: int = Field(1, ge=0, description="gate margin per folder: more spurious "
                                                                     "regions whatever the folder's size")
    gate_max_excess_rise: float = Field(0.05, ge=0, description="gate margin per folder: excess rise over "
                                                                "production")
    gate_max_latency_rise: float = Field(0.20, ge=0, description="gate: candidate p50/p95 at most production's "
                                                                 "x (1 + this) + PLATEVEIL_GATE_LATENCY_SLACK_MS")
    gate_latency_slack_ms: float = Field(2.0, ge=0, description="gate: absolute slack on the latency margin (ms)")
    promote_wait_s: float = Field(60.0, ge=0, description="how long promote/rollback wait for the workers to "
                                                          "report the new version (0: do not wait)")

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        return check_backend(value)

    @field_validator("gate_labels")
    @classmethod
    def _known_labels(cls, value: str) -> str:
        if value not in ("reviewed", "given"):
            raise ValueError(f"{value!r} is not one of reviewed, given")
        return value


def promote_with_gate(registry: Registry, version: str, *, alias: str = "production", force: bool = False,
                      golden_dir: Path | None = None, fmt: str = "auto", data: GateData | None = None,
                      thresholds: GateThresholds | None = None, cache_dir: Path | None = None,
                      backend: str = DEFAULT_BACKEND, evaluate: Evaluate | None = None,
                      production_alias: str = "production", out: TextIO | None = None) -> int:
    """The ``promote`` command: quality gate (:mod:`model_training.gate`), then the alias change. Returns the
    exit code: EXIT_OK, EXIT_REFUSED (below the gate), EXIT_UNLOADABLE (the candidate does not load) or EXIT_ERROR.
    ``data``: what the gate evaluates; else ``golden_dir`` alone; else the shipped golden set. ``evaluate``:
    models by version and ``data`` -> reports by version (default :func:`model_training.gate.default_evaluate`:
    the real pipeline, interleaved). ``force`` skips the gate (and its loading) entirely."""
    from model_store.golden import GOLDEN_DIR, GOLDEN_FORMAT  # cv2: only when a gate runs
    from model_store.runtime import (
        load_model,  # cv2: only when a gate runs (`plateveil models list` stays light)
    )

    out = out or sys.stdout
    thresholds = thresholds or GateThresholds()
    evaluate = evaluate or gate.default_evaluate
    registry.show(version)  # fails early with the known versions
    if data is None:
        data = (GateData(folders=(Path(golden_dir),), fmt=fmt) if golden_dir is not None
                else GateData(folders=(GOLDEN_DIR,), fmt=GOLDEN_FORMAT if fmt == "auto" else fmt))
    if force:
        print(f"quality gate skipped (--force): {version} is neither loaded nor evaluated here", file=out)
    elif (problem := data.check()) is not None:
        print(f"error: {problem}", file=out)
        return EXIT_ERROR
    else:
        cache = ModelCache(cache_dir or Path("~/.cache/plateveil/models"))

        def load(v: str) -> Any:
            return load_model(cache.fetch(registry, v), backend=backend)

        try:
            models = {version: load(version)}
        except (ModelLoadError, ModelIntegrityError) as exc:
            print(f"refused: {registry.name}@{version} cannot be loaded ({backend}): {type(exc).__name__}: {exc}",
                  file=out)
            return EXIT_UNLOADABLE
        current = registry.resolve(production_alias)
        if current and current != version:
            try:
                models[current] = load(current)
            except (ModelLoadError, ModelIntegrityError) as exc:
                print(f"warning: production {current} cannot be loaded ({exc}); the candidate is held to the "
                      f"floors only", file=out)
        load_before = os.getloadavg()[0]
        try:
            reports = evaluate(models, data)
        except (OSError, ValueError) as exc:
            print(f"error: the gate cannot read its photos: {exc}", file=out)
            return EXIT_ERROR
        machine_load = max(load_before, os.getloadavg()[0])
        candidate = reports[version]
        production = (current, reports[current]) if current in models and current != version else None
        print(f"quality gate on {data.describe()}:", file=out)
        print(comparison_table((version, candidate["overall"]),
                               (production[0], production[1]["overall"]) if production else None, thresholds),
              file=out)
        print("per folder (plates found at IoU 0.8, spurious regions):", file=out)
        print(folder_table((version, candidate), production, thresholds), file=out)
        if production is None:
            print("no production model to compare with: latency not checked, the floors only", file=out)
        else:
            cores = os.cpu_count() or 1
            busy = " (busy: latencies are noisy)" if machine_load > cores else ""
            print(f"machine load during the gate: {machine_load:.1f} on {cores} cores{busy}", file=out)
        failures = thresholds.judge(candidate, production[1] if production else None)
        if production is not None and thresholds.latency_misses(candidate["overall"], production[1]["overall"]):
            # a busy machine can slow one model's runs more than the other's: a latency refusal stands only
            # when a second interleaved measurement confirms it
            print("latency over the margin: measuring both again to confirm", file=out)
            try:
                again = evaluate(models, data)
            except (OSError, ValueError) as exc:
                print(f"error: the gate cannot read its photos: {exc}", file=out)
                return EXIT_ERROR
            c2, p2 = again[version]["overall"], again[production[0]]["overall"]
            first = thresholds.latency_misses(candidate["overall"], production[1]["overall"])
            second = thresholds.latency_misses(c2, p2)
            confirmed = [key for key in first if key in second]
            print(f"second measurement: p50/p95 candidate {float(c2.get('p50_ms', nan)):.1f}/"
                  f"{float(c2.get('p95_ms', nan)):.1f} ms, production {float(p2.get('p50_ms', nan)):.1f}/"
                  f"{float(p2.get('p95_ms', nan)):.1f} ms: "
                  f"{'over the margin again' if confirmed else 'within the margin, the first was noise'}", file=out)
            failures = [f for f in failures if not f.startswith("latency:")]
            failures = [f"{first[key]}, and again {second[key].removeprefix('latency: ')}" for key in confirmed] + failures
        if failures:
            print(f"refused: {version} is below the quality gate: {'; '.join(failures)} (--force overrides)",
                  file=out)
            return EXIT_REFUSED
    before = registry.resolve(alias)
    result = registry.promote(version, alias)
    note = "already there" if before == version else f"was {before}" if before else "new alias"
    print(f"{registry.name} {alias} -> {result.version} ({note})", file=out)
    return EXIT_OK


def validate_bundle(bundle_dir: Path, *, smoke_max_ms: float, smoke_min_found: int, threads: int = 1,
                    out: TextIO | None = None) -> None:
    """Load ``bundle_dir`` with every backend it has files for (one per distinct set of files; those whose
    framework is not installed here are skipped) and run the smoke check on the golden set with each;
    ModelLoadError (SmokeCheckError) says what fails."""
    from model_store.golden import smoke_check
    from model_store.runtime import load_model

    out = out or sys.stdout
    checked = []
    present = complete_backends(bundle_dir)
    for backend in distinct_backends():
        if backend not in present:
            continue
        if not backend_class(backend).installed():
            print(f"  {backend}: not installed here, its files are not checked", file=out)
            continue
        model = load_model(bundle_dir, backend=backend, threads=threads)
        report = smoke_check(model, max_ms=smoke_max_ms, min_found=smoke_min_found or None)
        print(f"  {backend}: loads; smoke check {report['found']}/{report['plates']} golden plates found on "
              f"{report['photos']} photos, slowest {report['slowest_ms']:.0f} ms", file=out)
        checked.append(backend)
    if not checked:
        installed = [name for name in distinct_backends() if backend_class(name).installed()]
        raise ModelLoadError(f"{bundle_dir}: no backend available here can load it (it has the files of "
                             f"{', '.join(present) or 'no backend'}; installed here: {', '.join(installed) or 'none'})")


def _parse_iso(value: str | None) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def wait_for_workers(redis_client: Any, registry: Registry, alias: str, version: str, since: dt.datetime,
                     timeout: float, out: TextIO | None = None, poll: float = 0.25) -> int:
    """Wait until every worker of ``registry`` following ``alias`` reports serving ``version`` after
    ``since`` (when the alias moved). EXIT_OK; EXIT_WORKERS_REFUSED naming the workers that refused it
    and why; EXIT_WORKERS_TIMEOUT naming those that did not report it within ``timeout`` seconds."""
    out = out or sys.stdout
    me = repr(registry)

    def relevant() -> dict[str, tuple[str, dict[str, Any]]]:
        """The workers of this registry following ``alias``; not those whose last report is older than
        two of their polls before the alias moved (stopped; their state expires soon)."""
        found = {}
        for worker, state in worker_states(redis_client).items():
            aliases = state.get("aliases") or {}
            if state.get("registry") != me:
                continue
            checked = _parse_iso(state.get("last_check"))
            stale_after = dt.timedelta(seconds=2 * float(state.get("poll_seconds") or 10.0) + 5.0)
            if checked is None or checked < since - stale_after:
                continue
            if aliases.get("production") == alias:
                found[worker] = ("production", state)
            elif aliases.get("canary") == alias and float(state.get("canary_share") or 0) > 0:
                found[worker] = ("canary", state)
        return found

    def verdict(slot: str, state: dict[str, Any]) -> str:
        checked = _parse_iso(state.get("last_check"))
        if checked is None or checked < since:
            return "pending"
        if state.get(slot) == version and (slot == "canary" or state.get("source") == "registry"):
            return "serves"
        if version in (state.get("rejected") or {}):
            return "refused"
        return "pending"

    t0 = time.monotonic()
    workers = relevant()
    if not workers:
        print(f"no worker of {registry} reports its models on Redis (none running?): not waiting", file=out)
        return EXIT_OK
    print(f"waiting up to {timeout:.0f} s for {len(workers)} worker(s) to serve {version}...", file=out)
    while True:
        verdicts = {w: (verdict(slot, state), slot, state) for w, (slot, state) in workers.items()}
        if all(v[0] != "pending" for v in verdicts.values()) or time.monotonic() - t0 >= timeout:
            break
        time.sleep(poll)
        workers = relevant() or workers  # a worker that stopped meanwhile keeps its last state
    took = time.monotonic() - t0
    serving = [w for w, v in verdicts.items() if v[0] == "serves"]
    refused = {w: v for w, v in verdicts.items() if v[0] == "refused"}
    pending = {w: v for w, v in verdicts.items() if v[0] == "pending"}
    for worker in serving:
        print(f"  {worker}: serves {version}", file=out)
    for worker, (_, slot, state) in refused.items():
        print(f"  {worker}: REFUSED {version}, keeps serving {state.get(slot)}: {state['rejected'][version]}",
              file=out)
    for worker, (_, slot, state) in pending.items():
        error = f"; last error: {state.get('last_error')}" if state.get("last_error") else ""
        print(f"  {worker}: still serves {state.get(slot)} (last check {state.get('last_check')}){error}", file=out)
    if refused:
        print(f"error: {len(refused)} of {len(verdicts)} worker(s) refused {registry.name}@{version} "
              f"({', '.join(refused)}); {alias} points at a version they do not serve: fix it or run "
              f"'plateveil models rollback{'' if alias == 'production' else ' --alias ' + alias}'", file=out)
        return EXIT_WORKERS_REFUSED
    if pending:
        print(f"error: {len(pending)} of {len(verdicts)} worker(s) did not report serving {version} within "
              f"{timeout:.0f} s: {', '.join(pending)}", file=out)
        return EXIT_WORKERS_TIMEOUT
    print(f"all {len(serving)} worker(s) serve {registry.name}@{version} ({took:.1f} s)", file=out)
    return EXIT_OK


def _wait_after_alias_change(settings: RegistrySettings, registry: Registry, alias: str, version: str,
                             since: dt.datetime, wait: float) -> int:
    if wait <= 0:
        return EXIT_OK
    if not settings.redis_url:
        print("PLATEVEIL_REDIS_URL is unset: not waiting for the workers (they notice by polling)")
        return EXIT_OK
    import redis

    client = redis.Redis.from_url(settings.redis_url, decode_responses=True, socket_connect_timeout=3,
                                  socket_timeout=5)
    try:
        return wait_for_workers(client, registry, alias, version, since, wait)
    except redis.RedisError as exc:
        print(f"error: cannot read the workers' state from Redis: {exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        client.close()


# -- argparse -----------------------------------------------------------------------------------


@registry_command
def cmd_publish(args: argparse.Namespace) -> int:
    settings = load_settings(RegistrySettings)
    if args.skip_checks:
        print(f"checks skipped (--skip-checks): {args.bundle_dir} is uploaded without loading it")
    else:
        print(f"checking {args.bundle_dir}:")
        try:
            validate_bundle(args.bundle_dir, smoke_max_ms=settings.smoke_max_ms,
                            smoke_min_found=settings.smoke_min_found)
        except ModelLoadError as exc:
            print(f"refused: {args.bundle_dir} cannot be served: {type(exc).__name__}: {exc}; nothing uploaded",
                  file=sys.stderr)
            return EXIT_UNLOADABLE
    registry = registry_from_settings(settings)
    manifest = registry.publish(args.bundle_dir, version=args.version)
    print(f"{manifest.name}@{manifest.version}: {len(manifest.files)} files, {manifest.size / 1e6:.1f} MB, "
          f"digest {manifest.digest[:12]}")
    return EXIT_OK


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@registry_command
def cmd_promote(args: argparse.Namespace) -> int:
    settings = load_settings(GateSettings)
    registry = registry_from_settings(settings)
    since = _now()
    golden = args.golden or ([settings.gate_golden_dir] if settings.gate_golden_dir else [])
    data_root = args.data_root or settings.gate_data_root
    data = None
    if golden or data_root:
        data = GateData(folders=tuple(golden), fmt=args.format or settings.gate_format, data_root=data_root,
                        labels=args.labels or settings.gate_labels,
                        max_photos=settings.gate_max_photos if args.max_photos is None else args.max_photos,
                        rounds=settings.gate_latency_rounds)
    code = promote_with_gate(
        registry, args.version, alias=args.alias, force=args.force, data=data, fmt=args.format or settings.gate_format,
        thresholds=GateThresholds.from_settings(settings), cache_dir=settings.model_cache_dir,
        backend=args.backend or settings.backend, production_alias=settings.model_alias)
    if code != EXIT_OK:
        return code
    wait = settings.promote_wait_s if args.wait is None else args.wait
    return _wait_after_alias_change(settings, registry, args.alias, args.version, since, wait)


@registry_command
def cmd_rollback(args: argparse.Namespace) -> int:
    settings = load_settings(GateSettings)
    registry = registry_from_settings(settings)
    target, why = registry.rollback_target(args.alias)
    before = registry.resolve(args.alias)
    since = _now()
    result = registry.rollback(args.alias, to=target)
    print(f"{registry.name} {args.alias} -> {result.version} (rolled back from {before}: {why})")
    wait = settings.promote_wait_s if args.wait is None else args.wait
    return _wait_after_alias_change(settings, registry, args.alias, result.version, since, wait)


def _seconds(text: str) -> float:
    """``60``, ``60s``, ``2m``: seconds."""
    value = text.strip().lower()
    scale = 60.0 if value.endswith("m") else 1.0
    try:
        seconds = float(value.rstrip("sm")) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 60, 60s, 2m)") from None
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"a wait cannot be negative: {text!r}")
    return seconds


def register_registry_commands(models_subparsers: Any) -> None:
    """Add the registry commands (release verbs from here, reading verbs from model_store.commands) to the
    ``plateveil models`` sub-parsers, in the order ``--help`` lists them."""
    sub = models_subparsers
    p = sub.add_parser("publish", help="upload a bundle folder to the registry as an immutable version")
    p.add_argument("bundle_dir", type=Path, help="folder with model.json and the model files")
    p.add_argument("--version", help="version to publish as (default: model.json's)")
    p.add_argument("--skip-checks", action="store_true",
                   help="upload without loading it or running the smoke check (to try the workers' own checks)")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("list", help="versions in the registry and the aliases pointing at them")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="the manifest of one version")
    p.add_argument("version")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("promote", help="point an alias at a version, after the quality gate")
    p.add_argument("version")
    p.add_argument("--alias", default="production", help="alias to move (production, canary)")
    p.add_argument("--force", action="store_true", help="skip the quality gate (no loading, no evaluation)")
    p.add_argument("--golden", type=Path, action="append", metavar="DIR",
                   help="labelled photos for the gate, judged on their own (repeatable: each folder is judged apart; "
                        "default PLATEVEIL_GATE_GOLDEN_DIR, else the shipped model_store/golden_set/ unless "
                        "--data-root is given)")
    p.add_argument("--data-root", type=Path, metavar="ROOT",
                   help="judge the validation split of every data folder under ROOT folder by folder, as "
                        "`plateveil models eval --data val --data-root ROOT` reads it (default "
                        "PLATEVEIL_GATE_DATA_ROOT; e.g. ../shared/data)")
    p.add_argument("--labels", choices=["reviewed", "given"],
                   help="labels of --data-root's photos (default PLATEVEIL_GATE_LABELS, reviewed)")
    p.add_argument("--max-photos", type=int, metavar="N",
                   help="at most N photos per folder, a fixed subset (default PLATEVEIL_GATE_MAX_PHOTOS, 0: all)")
    p.add_argument("--format", help="format of the golden set (auto, voc, yolo, corners)")
    p.add_argument("--backend", help="backend to evaluate with (default PLATEVEIL_BACKEND)")
    p.add_argument("--wait", type=_seconds, metavar="SECONDS",
                   help="how long to wait for the workers to serve it, e.g. 60s (default PLATEVEIL_PROMOTE_WAIT_S, "
                        "60; 0: do not wait)")
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("rollback", help="point an alias back at the last version the workers served")
    p.add_argument("--alias", default="production")
    p.add_argument("--wait", type=_seconds, metavar="SECONDS", help="as for promote")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("unalias", help="remove an alias (e.g. end a canary)")
    p.add_argument("alias")
    p.set_defaults(func=cmd_unalias)

    p = sub.add_parser("workers", help="which model version each running worker serves (from Redis)")
    p.add_argument("--json", action="store_true", help="the full state of each worker as JSON")
    p.set_defaults(func=cmd_workers)
