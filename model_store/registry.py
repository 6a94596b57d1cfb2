"""The versioned model registry, kept in an object store (:mod:`plateveil.storage`: S3, or a local
directory for development). No deep-learning framework is imported here.

Layout under ``<store>://<bucket>/<prefix>/<name>/``::

    <version>/model.json + the files of each backend the bundle has (model_store.backends declares them:
                                   detector.onnx, detector-symbol.json, detector-0000.params, landmarks...)
    <version>/manifest.json        written LAST, only if absent: a version is immutable
    <version>/.publishing.json     while an upload runs: who claimed the version (digest, start)
    aliases/<alias>.json           {"version", "updated_at", "previous": [newest first]}
    served/<alias>.json            {"versions": [{"version", "at"}, newest first]}: what workers served
                                   successfully for that alias (written by the workers; ``rollback``
                                   goes back to the newest of these that is not the current version)

A version exists once its manifest exists; files without a manifest are an unfinished upload and
are never served. An upload first claims its version (``.publishing.json``, conditional write), so
two publishers with different bytes for one version cannot mix their files. Every file is named in the
manifest with its sha256 and size, and the local cache (:mod:`model_store.cache`) refuses a download whose
bytes differ.

Writes are conditional (:meth:`ObjectStore.put_if <plateveil.storage.base.ObjectStore.put_if>`: on S3
``If-None-Match: *`` for a new version or alias, ``If-Match: <etag>`` for an alias update; the local store
under a file lock), so two workers bootstrapping at once, or two people promoting at once, cannot lose a
write. On an S3 server that rejects conditional writes the store falls back to check-then-write and logs a
warning once. The registry is built in one place, :func:`registry_from_settings`.

Errors: :class:`~model_store.errors.RegistryError` and its subclasses (:mod:`model_store.errors`
draws the tree); settings: :mod:`model_store.registry_settings`. The bundle format and version order
are :mod:`model_store.bundle`'s, the files of each backend :mod:`model_store.backends`'.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from model_store.backends import (
    backend_class,
    backend_files,
    bundle_file_names,
    complete_backends,
    distinct_backends,
)
from model_store.bundle import CONFIG_FILE, Version, default_model_dir, read_config
from model_store.errors import AliasError, RegistryError, VersionConflictError, VersionNotFoundError
from model_store.registry_settings import RegistryOptions
from plateveil import keys
from plateveil.errors import BucketMissingError, SourceMissingError, StorageError
from plateveil.settings import CommonSettings
from plateveil.storage import ObjectStore, get_store

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
CLAIM = ".publishing.json"
CLAIM_STALE_S = 600.0
NUDGE_CHANNEL = keys.MODELS_CHANNEL
WORKER_STATUS_PREFIX = keys.WORKER_STATUS_PREFIX
HISTORY_LIMIT = 20
SCHEMA = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_RESERVED = {"aliases", "served"}
SERVED_LIMIT = 20
_CHUNK = 1 << 20


def registry_from_settings(settings: RegistryOptions, notify: bool = True) -> Registry:
    """The configured registry, the one place it is built: from
    :class:`~model_store.registry_settings.RegistrySettings` (the ``plateveil models`` commands, the local
    stack) or the worker's settings (both have the registry options and the store's connection). Its
    bundles live in the ``registry_storage`` store (S3, or the local directory store). With ``notify``
    and a Redis URL, alias changes nudge the workers."""
    if not settings.registry_bucket:
        raise RegistryError("no model registry configured: set PLATEVEIL_REGISTRY_BUCKET")
    assert isinstance(settings, CommonSettings), "the registry needs the store's connection settings too"
    store = get_store(settings, settings.registry_storage)
    notifier = None
    if notify and settings.redis_url:
        from plateveil.redisconn import redis_from_url

        notifier = redis_notifier(redis_from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=5))
    return Registry(store, settings.registry_bucket, settings.registry_prefix, settings.model_name, notify=notifier)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _check_name(kind: str, value: str) -> str:
    if not _NAME_RE.match(value) or value in _RESERVED:
        raise RegistryError(f"invalid {kind} {value!r}: use letters, digits and . _ + - (not 'aliases' or 'served')")
    return value


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def git_commit(cwd: Path | None = None) -> str:
    """``git rev-parse HEAD`` of the source tree, or ``"unknown"``."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd or Path(__file__).parent,
                             capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def bundle_files(bundle_dir: Path) -> list[str]:
    """The files of a bundle folder that belong in the registry: model.json first, then every file a
    backend declares (:mod:`model_store.backends`) that is there; the files of one backend at least
    must all be there. Other files of the folder are not published."""
    bundle_dir = Path(bundle_dir)
    if not (bundle_dir / CONFIG_FILE).is_file():
        raise RegistryError(f"{bundle_dir} is not a model bundle: {CONFIG_FILE} missing")
    if not complete_backends(bundle_dir):
        wanted = [f"the {name} files ({', '.join(n for files in backend_files(name).values() for n in files.values())})"
                  for name in distinct_backends()]
        raise RegistryError(f"{bundle_dir} holds the files of no backend: neither {' nor '.join(wanted)}")
    return [CONFIG_FILE] + [n for n in bundle_file_names() if (bundle_dir / n).is_file()]


def bundle_framework(bundle_dir: Path) -> str:
    """The manifest's ``framework``: the formats of the backends the bundle has every file of."""
    return "+".join(sorted({backend_class(name).framework for name in complete_backends(bundle_dir)}))


@dataclass(frozen=True)
class FileEntry:
    path: str
    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FileEntry:
        return cls(path=str(d["path"]), sha256=str(d["sha256"]), size=int(d["size"]))


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    files: tuple[FileEntry, ...]
    framework: str
    detector_input: dict[str, Any]
    landmark_input: dict[str, Any]
    created_at: str
    git_commit: str
    training: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None

    @property
    def digest(self) -> str:
        """sha256 over the (path, sha256) pairs: equal digests = identical bundle bytes."""
        text = "\n".join(f"{f.path} {f.sha256}" for f in sorted(self.files, key=lambda f: f.path))
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def file(self, path: str) -> FileEntry:
        for f in self.files:
            if f.path == path:
                return f
        raise KeyError(path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "name": self.name,
            "version": self.version,
            "framework": self.framework,
            "files": [f.to_dict() for f in self.files],
            "digest": self.digest,
            "detector_input": self.detector_input,
            "landmark_input": self.landmark_input,
            "training": self.training,
            "metrics": self.metrics,
            "created_at": self.created_at,
            "git_commit": self.git_commit,
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True).encode()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        return cls(
            name=str(d["name"]),
            version=str(d["version"]),
            files=tuple(FileEntry.from_dict(f) for f in d["files"]),
            framework=str(d.get("framework", "")),
            detector_input=dict(d.get("detector_input") or {}),
            landmark_input=dict(d.get("landmark_input") or {}),
            created_at=str(d.get("created_at", "")),
            git_commit=str(d.get("git_commit", "unknown")),
            training=d.get("training"),
            metrics=d.get("metrics"),
        )

    @classmethod
    def for_bundle(cls, bundle_dir: Path, name: str, version: str) -> Manifest:
        """Hash the files of a local bundle folder."""
        bundle_dir = Path(bundle_dir)
        names = bundle_files(bundle_dir)
        config = read_config(bundle_dir)
        det, lm = config.get("detector", {}), config.get("landmarks", {})
        return cls(
            name=name,
            version=version,
            files=tuple(FileEntry(n, sha256_file(bundle_dir / n), (bundle_dir / n).stat().st_size) for n in names),
            framework=bundle_framework(bundle_dir),
            detector_input={"long_side": det.get("long_side"), "pad_to": det.get("pad_to")},
            landmark_input={"width": lm.get("input_w"), "height": lm.get("input_h")},
            created_at=_now(),
            git_commit=git_commit(),
            training=config.get("training"),
            metrics=config.get("metrics"),
        )


@dataclass(frozen=True)
class Alias:
    version: str
    updated_at: str
    previous: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "updated_at": self.updated_at, "previous": list(self.previous)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Alias:
        return cls(version=str(d["version"]), updated_at=str(d.get("updated_at", "")),
                   previous=tuple(str(v) for v in d.get("previous", [])))


Notifier = Callable[[str, str, "str | None"], None]


def redis_notifier(redis_client: Any, channel: str = NUDGE_CHANNEL) -> Notifier:
    """A notifier that publishes ``{"name", "alias", "version"}`` on the Redis channel the
    workers' model swappers listen to. A failed publish is logged, never raised: the workers'
    polling picks the change up anyway."""

    def notify(name: str, alias: str, version: str | None) -> None:
        message = json.dumps({"name": name, "alias": alias, "version": version})
        try:
            redis_client.publish(channel, message)
        except Exception:  # redis errors of every kind; polling covers a lost nudge
            logger.warning("could not publish the model nudge on %s; workers will notice by polling",
                           channel, exc_info=True)

    return notify


class Registry:
    """Versions and aliases of one model name in one bucket of an object store."""

    def __init__(self, store: ObjectStore, bucket: str, prefix: str = "models", name: str = "plateveil-plates",
                 notify: Notifier | None = None) -> None:
        self.store = store
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.name = _check_name("model name", name)
        self.notify = notify

    def __repr__(self) -> str:
        return f"Registry({self.store.location(self.bucket, self._root)})"

    # -- keys ----------------------------------------------------------------------------------

    @property
    def _root(self) -> str:
        return f"{self.prefix}/{self.name}" if self.prefix else self.name

    def key(self, version: str, filename: str) -> str:
        return f"{self._root}/{version}/{filename}"

    def alias_key(self, alias: str) -> str:
        return f"{self._root}/aliases/{alias}.json"

    def served_key(self, alias: str) -> str:
        return f"{self._root}/served/{alias}.json"

    # -- the store -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _store_errors(self) -> Iterator[None]:
        """The store's errors as they are, with a hint added when the registry bucket itself is missing."""
        try:
            yield
        except (BucketMissingError, StorageError) as exc:
            if not (isinstance(exc, BucketMissingError) or exc.bucket_missing):
                raise
            raise StorageError(f"{exc} (the registry bucket {self.bucket} does not exist: create it, or point "
                               f"PLATEVEIL_REGISTRY_BUCKET at the one your workers use; 'make up' creates "
                               f"plateveil-models)", bucket_missing=True) from exc

    def _get(self, key: str) -> tuple[bytes, str] | None:
        """(body, etag) or None when the object does not exist."""
        with self._store_errors():
            try:
                obj = self.store.get(self.bucket, key)
            except BucketMissingError:
                raise
            except SourceMissingError:
                return None
        return obj.data, obj.info.etag

    def _put(self, key: str, body: bytes, *, if_none_match: bool = False, if_match: str | None = None,
             metadata: dict[str, str] | None = None) -> bool:
        """Write an object; False when the condition failed (someone else wrote first)."""
        content_type = "application/json" if key.endswith(".json") else "application/octet-stream"
        with self._store_errors():
            if if_none_match or if_match is not None:
                return self.store.put_if(self.bucket, key, body, content_type, metadata, if_none_match=if_none_match,
                                         if_match=if_match) is not None
            self.store.put(self.bucket, key, body, content_type, metadata)
        return True

    def _exists(self, key: str) -> bool:
        with self._store_errors():
            return self.store.head(self.bucket, key) is not None

    def _list(self, prefix: str) -> list[str]:
        with self._store_errors():
            return list(self.store.list_keys(self.bucket, prefix))

    def _delete(self, key: str) -> None:
        with self._store_errors():
            self.store.delete(self.bucket, key)

    # -- versions ------------------------------------------------------------------------------

    def publish(self, bundle_dir: str | Path, version: str | None = None) -> Manifest:
        """Upload a bundle folder as an immutable version (``version`` defaults to model.json's;
        another one is written into the stored model.json).

        Publishing a version that exists with the same bytes returns the stored manifest; with
        different bytes it raises :class:`VersionConflictError`.
        """
        bundle_dir = Path(bundle_dir)
        config = read_config(bundle_dir)
        version = _check_name("version", version or str(config.get("version", "")))
        if str(config.get("version")) != version:
            # the stored bundle must name the version it is stored under (workers check it)
            with tempfile.TemporaryDirectory(prefix="plateveil-publish-") as tmp:
                staged = Path(tmp)
                for name in bundle_files(bundle_dir):
                    if name != CONFIG_FILE:
                        os.symlink((bundle_dir / name).resolve(), staged / name)
                (staged / CONFIG_FILE).write_text(json.dumps(dict(config, version=version), indent=2, sort_keys=True))
                logger.info("publishing %s as version %s (model.json says %s)", bundle_dir, version,
                            config.get("version"))
                return self._publish(staged, version)
        return self._publish(bundle_dir, version)

    def _publish(self, bundle_dir: Path, version: str) -> Manifest:
        local = Manifest.for_bundle(bundle_dir, self.name, version)
        existing = self.manifest_bytes(version, missing_ok=True)
        if existing is not None:
            return self._same_or_conflict(local, Manifest.from_dict(json.loads(existing)))
        self._claim(version, local.digest)
        for entry in local.files:
            self._put(self.key(version, entry.path), (bundle_dir / entry.path).read_bytes(),
                      metadata={"sha256": entry.sha256})
        if not self._put(self.key(version, MANIFEST), local.to_json(), if_none_match=True):
            stored = self.manifest_bytes(version)
            assert stored is not None
            return self._same_or_conflict(local, Manifest.from_dict(json.loads(stored)))
        self._release(version)
        logger.info("published %s@%s (%d files, %.1f MB) to %s/%s/", self.name, version,
                    len(local.files), local.size / 1e6, self.store.location(self.bucket, self._root), version)
        return local

    def _claim(self, version: str, digest: str) -> None:
        """Claim an unpublished version before uploading its files, so that two publishers with
        different bytes cannot both write them (identical bytes may upload side by side). A claim
        older than :data:`CLAIM_STALE_S` is a crashed upload and is taken over."""
        key = self.key(version, CLAIM)
        body = json.dumps({"digest": digest, "started_at": _now()}).encode()
        for _ in range(4):
            if self._put(key, body, if_none_match=True):
                return
            got = self._get(key)
            if got is None:
                continue  # released meanwhile: try again
            claim = json.loads(got[0])
            if claim.get("digest") == digest:
                return
            try:
                age = (dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(str(claim["started_at"]))).total_seconds()
            except (KeyError, ValueError, TypeError):
                age = float("inf")
            if age < CLAIM_STALE_S:
                raise VersionConflictError(
                    f"{self.name}@{version} is being published right now with different bytes (since "
                    f"{claim.get('started_at')}); versions are immutable: publish under a new version")
            logger.warning("taking over the stale upload of %s@%s started %s", self.name, version,
                           claim.get("started_at"))
            if self._put(key, body, if_match=got[1]):
                return
        raise VersionConflictError(f"{self.name}@{version} is being published concurrently; try again")

    def _release(self, version: str) -> None:
        try:
            self._delete(self.key(version, CLAIM))
        except StorageError:  # a leftover claim is harmless once the manifest exists
            logger.warning("could not remove the upload claim of %s@%s", self.name, version, exc_info=True)

    def _same_or_conflict(self, local: Manifest, stored: Manifest) -> Manifest:
        if stored.digest == local.digest:
            logger.info("%s@%s is already published with identical bytes", self.name, local.version)
            return stored
        ours = {f.path: f.sha256 for f in local.files}
        theirs = {f.path: f.sha256 for f in stored.files}
        differ = sorted(p for p in set(ours) | set(theirs) if ours.get(p) != theirs.get(p))
        raise VersionConflictError(
            f"{self.name}@{local.version} is already published with different bytes ({', '.join(differ)} "
            f"differ); versions are immutable: publish under a new version")

    def manifest_bytes(self, version: str, missing_ok: bool = False) -> bytes | None:
        got = self._get(self.key(_check_name("version", version), MANIFEST))
        if got is None:
            if missing_ok:
                return None
            raise VersionNotFoundError(f"{self.name}@{version} is not in {self}; known: "
                                       f"{', '.join(self.list_versions()) or 'none'}")
        return got[0]

    def show(self, version: str) -> Manifest:
        data = self.manifest_bytes(version)
        assert data is not None
        return Manifest.from_dict(json.loads(data))

    def exists(self, version: str) -> bool:
        return self._exists(self.key(_check_name("version", version), MANIFEST))

    def list_versions(self) -> list[str]:
        """Published versions (those with a manifest), oldest version number first."""
        versions = []
        for key in self._list(f"{self._root}/"):
            parts = key[len(self._root) + 1:].split("/")
            if len(parts) == 2 and parts[1] == MANIFEST and parts[0] not in _RESERVED:
                versions.append(parts[0])
        return sorted(versions, key=Version)

    def download_file(self, version: str, filename: str, dest: BinaryIO) -> str:
        """Write one file of a version into ``dest``; returns the sha256 of what was written."""
        got = self._get(self.key(version, filename))
        if got is None:
            raise VersionNotFoundError(f"{self.store.location(self.bucket, self.key(version, filename))} is missing")
        dest.write(got[0])
        return hashlib.sha256(got[0]).hexdigest()

    # -- aliases -------------------------------------------------------------------------------

    def read_alias(self, alias: str) -> tuple[Alias | None, str | None]:
        got = self._get(self.alias_key(_check_name("alias", alias)))
        if got is None:
            return None, None
        return Alias.from_dict(json.loads(got[0])), got[1]

    def resolve(self, alias: str) -> str | None:
        current = self.read_alias(alias)[0]
        return current.version if current is not None else None

    def aliases(self) -> dict[str, Alias]:
        out = {}
        for key in self._list(f"{self._root}/aliases/"):
            name = key.rsplit("/", 1)[-1]
            if name.endswith(".json"):
                found = self.read_alias(name[:-5])[0]
                if found is not None:
                    out[name[:-5]] = found
        return out

    def _update_alias(self, alias: str, change: Callable[[Alias | None], Alias | None]) -> Alias | None:
        """Read-modify-write of an alias with optimistic concurrency. ``change`` returns the new
        alias, or None to leave it as it is."""
        key = self.alias_key(_check_name("alias", alias))
        for _ in range(8):
            current, etag = self.read_alias(alias)
            new = change(current)
            if new is None:
                return current
            body = json.dumps(new.to_dict(), indent=2).encode()
            written = (self._put(key, body, if_match=etag) if etag
                       else self._put(key, body, if_none_match=True))
            if written:
                if current is None or current.version != new.version:
                    logger.info("%s alias %s: %s -> %s", self.name, alias,
                                current.version if current else None, new.version)
                    if self.notify is not None:
                        self.notify(self.name, alias, new.version)
                return new
        raise AliasError(f"alias {alias} of {self.name} keeps changing under us; try again")

    def promote(self, version: str, alias: str = "production") -> Alias:
        """Point ``alias`` at ``version``; the version it pointed at goes to the history."""
        if not self.exists(version):
            raise VersionNotFoundError(f"{self.name}@{version} is not in {self}; known: "
                                       f"{', '.join(self.list_versions()) or 'none'}")

        def change(current: Alias | None) -> Alias | None:
            if current is not None and current.version == version:
                return None
            history = ((current.version,) + current.previous) if current else ()
            return Alias(version, _now(), history[:HISTORY_LIMIT])

        result = self._update_alias(alias, change)
        assert result is not None
        return result

    def rollback_target(self, alias: str = "production") -> tuple[str, str]:
        """(version, why) ``rollback`` would point ``alias`` at: the newest version workers reported
        serving successfully for it (:meth:`record_served`) that is not the current one, else the
        version the alias pointed at before the last promotion."""
        current = self.read_alias(alias)[0]
        if current is None:
            raise AliasError(f"alias {alias} of {self.name} is not set")
        for version in self.served(alias):
            if version != current.version and self.exists(version):
                skipped = [v for v in current.previous[:current.previous.index(version)]
                           if v != current.version] if version in current.previous else []
                note = f"the last version workers served; skipped {', '.join(skipped)} (never served)" if skipped \
                    else "the last version workers served"
                return version, note
        history = [v for v in current.previous if v != current.version]
        if not history:
            raise AliasError(f"alias {alias} of {self.name} has no earlier version to roll back to")
        return history[0], "the previous version of the alias (no worker has reported serving another one)"

    def rollback(self, alias: str = "production", to: str | None = None) -> Alias:
        """Point ``alias`` back at ``to`` (default: :meth:`rollback_target`). The versions of the
        alias's history newer than the target are dropped from it, as is the current one."""
        target = to or self.rollback_target(alias)[0]

        def change(current: Alias | None) -> Alias | None:
            if current is None:
                raise AliasError(f"alias {alias} of {self.name} is not set")
            if current.version == target:
                return None
            history = [v for v in current.previous if v != current.version]
            rest = history[history.index(target) + 1:] if target in history else [v for v in history if v != target]
            return Alias(target, _now(), tuple(rest))

        result = self._update_alias(alias, change)
        assert result is not None
        return result

    # -- what the workers served ---------------------------------------------------------------

    def served(self, alias: str = "production") -> list[str]:
        """Versions workers reported serving successfully for ``alias``, newest first."""
        got = self._get(self.served_key(_check_name("alias", alias)))
        if got is None:
            return []
        return [str(item["version"]) for item in json.loads(got[0]).get("versions", [])]

    def record_served(self, alias: str, version: str) -> bool:
        """Note that a worker serves ``version`` for ``alias`` after loading and checking it (what
        ``rollback`` goes back to). Cheap when it is already the newest entry (one GET, no write).
        True when written."""
        key = self.served_key(_check_name("alias", alias))
        for _ in range(8):
            got = self._get(key)
            entries = json.loads(got[0]).get("versions", []) if got is not None else []
            if entries and entries[0].get("version") == version:
                return False
            entries = [{"version": version, "at": _now()}] + [e for e in entries if e.get("version") != version]
            body = json.dumps({"versions": entries[:SERVED_LIMIT]}, indent=2).encode()
            if got is not None and self._put(key, body, if_match=got[1]):
                return True
            if got is None and self._put(key, body, if_none_match=True):
                return True
        raise AliasError(f"the served record of {self.name} {alias} keeps changing under us")

    def remove_alias(self, alias: str) -> bool:
        """Delete an alias (e.g. end a canary). False when it was not set."""
        key = self.alias_key(_check_name("alias", alias))
        if not self._exists(key):
            return False
        self._delete(key)
        logger.info("%s alias %s removed", self.name, alias)
        if self.notify is not None:
            self.notify(self.name, alias, None)
        return True


def ensure_bootstrap(registry: Registry, bundle_dir: str | Path | None = None,
                     alias: str = "production") -> str | None:
    """On an empty registry, publish the shipped bundle and point ``alias`` at it, so a fresh
    system runs offline. Safe to run from many workers at once. Returns the version published, or
    None when the registry already had versions."""
    if registry.list_versions():
        return None
    bundle_dir = Path(bundle_dir) if bundle_dir is not None else default_model_dir()
    manifest = registry.publish(bundle_dir)

    def change(current: Alias | None) -> Alias | None:
        return None if current is not None else Alias(manifest.version, _now(), ())

    registry._update_alias(alias, change)
    logger.info("bootstrapped %s with the shipped bundle %s", registry, manifest.version)
    return manifest.version
