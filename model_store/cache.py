"""The local copy of registry versions: ``<root>/<name>/<version>/`` (bundle files + manifest.json).

A version is downloaded under an exclusive file lock (so workers sharing a disk download it once)
into a temporary folder beside its final place; every file's sha256 and size are checked against the
manifest, then the folder is renamed into place in one step. A half-written or corrupt download is
never visible under the version's name. A cached version is reused after a cheap check: its
manifest.json has the same sha256 as the registry's and every file has the manifest's size (pass
``full=True`` to :meth:`ModelCache.verify` to re-hash every byte). :meth:`ModelCache.prune` removes
versions nobody fetched for a while.

The cache also remembers, per registry and alias, the last version a worker served after checking it
(:meth:`ModelCache.save_last_good`, ``<root>/<name>/.last-good/<registry hash>-<alias>.json``): a
worker that (re)starts while the alias points at a version it refuses, or while the registry cannot
be reached, starts from that version instead of the shipped bundle. :meth:`prune` keeps it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from model_store.errors import ModelIntegrityError
from model_store.registry import MANIFEST, Manifest, Registry, sha256_file
from plateveil.storage.locks import file_lock

logger = logging.getLogger(__name__)

LAST_GOOD_DIR = ".last-good"


class ModelCache:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    def path(self, name: str, version: str) -> Path:
        return self.root / name / version

    def _lock(self, name: str, version: str) -> contextlib.AbstractContextManager[None]:
        return file_lock(self.root / name / f".{version}.lock")

    def verify(self, folder: Path, manifest_bytes: bytes | None = None, full: bool = False) -> bool:
        """True when ``folder`` holds the version described by ``manifest_bytes`` (default: its own
        manifest.json): same manifest hash, every file present with its size (and hash when ``full``)."""
        local = folder / MANIFEST
        if not local.is_file():
            return False
        data = local.read_bytes()
        if manifest_bytes is not None and hashlib.sha256(data).digest() != hashlib.sha256(manifest_bytes).digest():
            return False
        try:
            manifest = Manifest.from_dict(json.loads(data))
        except (ValueError, KeyError):
            return False
        for entry in manifest.files:
            path = folder / entry.path
            if not path.is_file() or path.stat().st_size != entry.size:
                return False
            if full and sha256_file(path) != entry.sha256:
                return False
        return True

    def fetch(self, registry: Registry, version: str) -> Path:
        """The local folder of ``registry``'s ``version``, downloading and checking it if needed.

        Raises :class:`ModelIntegrityError` (nothing left behind) when a file's bytes differ from
        the manifest, ``VersionNotFoundError`` when the version is not published.
        """
        manifest_bytes = registry.manifest_bytes(version)
        assert manifest_bytes is not None
        target = self.path(registry.name, version)
        if self.verify(target, manifest_bytes):
            self._touch(target)
            return target
        with self._lock(registry.name, version):
            if self.verify(target, manifest_bytes):  # another process finished it while we waited
                return target
            manifest = Manifest.from_dict(json.loads(manifest_bytes))
            if manifest.version != version or manifest.name != registry.name:
                raise ModelIntegrityError(f"the manifest of {registry.name}@{version} names "
                                          f"{manifest.name}@{manifest.version}")
            for leftover in target.parent.glob(f".{version}.part-*"):  # a crashed download; we hold the lock
                shutil.rmtree(leftover, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{version}.part-", dir=target.parent))
            try:
                self._download_into(registry, manifest, tmp)
                (tmp / MANIFEST).write_bytes(manifest_bytes)
                if target.exists():
                    logger.warning("replacing a stale or incomplete cached copy at %s", target)
                    stale = Path(tempfile.mkdtemp(prefix=f".{version}.stale-", dir=target.parent))
                    os.rename(target, stale / "old")
                    shutil.rmtree(stale, ignore_errors=True)
                os.rename(tmp, target)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        logger.info("cached %s@%s at %s (%.1f MB)", registry.name, version, target, manifest.size / 1e6)
        return target

    @staticmethod
    def _download_into(registry: Registry, manifest: Manifest, folder: Path) -> None:
        for entry in manifest.files:
            if "/" in entry.path or entry.path.startswith("."):
                raise ModelIntegrityError(f"manifest of {manifest.name}@{manifest.version} names an unsafe "
                                          f"path {entry.path!r}")
            path = folder / entry.path
            with open(path, "wb") as f:
                digest = registry.download_file(manifest.version, entry.path, f)
            size = path.stat().st_size
            if digest != entry.sha256 or size != entry.size:
                raise ModelIntegrityError(
                    f"{manifest.name}@{manifest.version}/{entry.path}: downloaded sha256 {digest[:12]}... "
                    f"({size} bytes) does not match the manifest's {entry.sha256[:12]}... ({entry.size} bytes)")

    # -- the last version served after its checks ----------------------------------------------

    def _last_good_path(self, name: str, registry_id: str, alias: str) -> Path:
        key = hashlib.sha256(registry_id.encode()).hexdigest()[:16]
        return self.root / name / LAST_GOOD_DIR / f"{key}-{alias}.json"

    def save_last_good(self, name: str, version: str, *, registry_id: str, alias: str) -> None:
        """Remember ``version`` as the last one served for ``alias`` of the registry ``registry_id``
        (written atomically: a crash leaves the previous record)."""
        path = self._last_good_path(name, registry_id, alias)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"version": version, "registry": registry_id, "alias": alias,
                           "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            f.write(body)
        os.replace(tmp, path)

    def last_good(self, name: str, *, registry_id: str, alias: str) -> Path | None:
        """The cached folder of the last version served for ``alias`` of ``registry_id``, when it is
        still complete and every byte matches its manifest; else None."""
        path = self._last_good_path(name, registry_id, alias)
        try:
            version = str(json.loads(path.read_text())["version"])
        except (OSError, ValueError, KeyError):
            return None
        folder = self.path(name, version)
        if "/" in version or not self.verify(folder, full=True):
            logger.warning("the last good %s@%s is no longer complete in %s", name, version, self.root)
            return None
        return folder

    def _last_good_versions(self, name: str) -> set[str]:
        out = set()
        for path in (self.root / name / LAST_GOOD_DIR).glob("*.json"):
            try:
                out.add(str(json.loads(path.read_text())["version"]))
            except (OSError, ValueError, KeyError):
                continue
        return out

    def cached_versions(self, name: str) -> list[str]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))

    @staticmethod
    def _touch(folder: Path) -> None:
        """Mark a cached version as used now (what :meth:`prune` goes by)."""
        try:
            os.utime(folder / MANIFEST)
        except OSError:
            logger.debug("cannot touch %s", folder, exc_info=True)

    def prune(self, name: str, keep: set[str], min_idle_s: float = 0.0) -> list[str]:
        """Delete cached versions of ``name`` that are not in ``keep`` and were not fetched for
        ``min_idle_s`` seconds (another worker process may still be loading a recent one).
        Returns what was removed."""
        removed = []
        now = time.time()
        keep = set(keep) | self._last_good_versions(name)
        for version in self.cached_versions(name):
            if version in keep:
                continue
            folder = self.path(name, version)
            manifest = folder / MANIFEST
            if manifest.is_file() and now - manifest.stat().st_mtime < min_idle_s:
                continue
            with self._lock(name, version):
                shutil.rmtree(folder, ignore_errors=True)
            removed.append(version)
        if removed:
            logger.info("pruned cached %s versions %s", name, ", ".join(removed))
        return removed
