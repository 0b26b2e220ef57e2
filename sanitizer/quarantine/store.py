"""Zones under one storage root, reached through fsspec, and the file operations moves need.

Layout (``<root>`` is a local path or any fsspec URL)::

    <root>/landing/<dataset>/<file>                 incoming batches
    <root>/accepted/<dataset>/<batch_id>/<file>     passed or released
    <root>/quarantine/<dataset>/<batch_id>/<file>   flagged, awaiting a decision
    <root>/rejected/<dataset>/<batch_id>/<file>     rejected, kept for the record

Every batch folder holds the data file (bytes unchanged), ``report.json``,
``report.html`` and ``manifest.json``; the manifest is written last, after the
copy was verified, so its presence marks a complete copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sanitizer.io import SUPPORTED_SUFFIXES
from sanitizer.quarantine.errors import StoreError, UnsafePathError

if TYPE_CHECKING:
    import pandas as pd
    from fsspec import AbstractFileSystem

log = logging.getLogger(__name__)

ZONES: tuple[str, ...] = ("landing", "accepted", "quarantine", "rejected")
#: Files a batch folder holds next to the data file.
MANIFEST = "manifest.json"
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
RESERVED_NAMES = frozenset({MANIFEST, REPORT_JSON, REPORT_HTML})
MAX_NAME_CHARS = 200
_CHUNK = 1024 * 1024
_DATASET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class LandingEntry:
    """One object in a landing folder, classified before anything reads it."""

    name: str
    path: str
    size: int
    mtime: float | None
    kind: str  # "file", "symlink", "directory", "hidden", "marker", "other"

    @property
    def display_name(self) -> str:
        return display_name(self.name)


def display_name(name: str) -> str:
    """A name safe to print and store: non-printable characters escaped, length capped."""
    text = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in name)
    return text if len(text) <= MAX_NAME_CHARS else text[: MAX_NAME_CHARS - 1] + "…"


def unsafe_name_problem(name: str) -> str | None:
    """Why a landing file name is unsafe to use as a path component, or None."""
    if not name or name in {".", ".."}:
        return "empty or dot name"
    if "/" in name or "\\" in name:
        return "contains a path separator"
    if not name.isprintable():
        return "contains control or non-printable characters"
    if len(name) > MAX_NAME_CHARS:
        return f"longer than {MAX_NAME_CHARS} characters"
    if name.strip() != name:
        return "leading or trailing whitespace"
    return None


def check_dataset_name(dataset: str) -> str:
    """Dataset names become path components: letters, digits, ``_ . -`` only."""
    if not _DATASET_RE.match(dataset) or ".." in dataset:
        raise UnsafePathError(
            f"dataset name {display_name(dataset)!r} cannot be used as a folder name; "
            "use letters, digits, '_', '.' and '-' (up to 100 characters)"
        )
    return dataset


def stored_name(original: str) -> str:
    """The data file's name inside a batch folder: the original when it is safe,
    otherwise ``data`` plus a known suffix (``.bin`` for anything else)."""
    if (
        unsafe_name_problem(original) is None
        and original not in RESERVED_NAMES
        and not original.startswith((".", "_"))
    ):
        return original
    suffix = Path(original).suffix.lower() if "/" not in original else ""
    return "data" + (suffix if suffix in SUPPORTED_SUFFIXES else ".bin")


class Store:
    """The four zones under one root. All paths it hands out are inside the root."""

    def __init__(self, root: str, *, fs: AbstractFileSystem | None = None) -> None:
        from fsspec.core import url_to_fs

        if fs is None:
            fs, path = url_to_fs(root)
        else:
            path = root
        self.fs: AbstractFileSystem = fs
        self.url = root
        self.root = str(path).rstrip("/") or "/"
        self.is_local = "file" in _protocols(fs)

    # -- paths --------------------------------------------------------------------

    def zone_dir(self, zone: str, dataset: str) -> str:
        if zone not in ZONES:
            raise StoreError(f"unknown zone {zone!r}; zones are {', '.join(ZONES)}")
        return posixpath.join(self.root, zone, check_dataset_name(dataset))

    def batch_dir(self, zone: str, dataset: str, batch_id: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{8,64}", batch_id):
            raise UnsafePathError(f"{batch_id!r} is not a batch id")
        return posixpath.join(self.zone_dir(zone, dataset), batch_id)

    def inside(self, path: str, parent: str) -> bool:
        """True when ``path`` (normalised, no symlinks followed) lies under ``parent``."""
        norm = posixpath.normpath(path)
        parent = posixpath.normpath(parent)
        return norm.startswith(parent.rstrip("/") + "/") and ".." not in norm.split("/")

    def ensure_inside_root(self, path: str) -> str:
        if not self.inside(path, self.root):
            raise UnsafePathError(f"{display_name(path)} is outside the storage root")
        return path

    def url_of(self, path: str) -> str:
        """A path for people and reports: a local path, or a full URL for remote stores."""
        if self.is_local:
            return path
        return self.fs.unstrip_protocol(path)

    # -- listing ------------------------------------------------------------------

    def list_landing(self, dataset: str, *, marker_suffix: str | None = None) -> list[LandingEntry]:
        """Everything directly in ``landing/<dataset>/``, classified, sorted by name.

        Symlinks are never followed; hidden (``.``) and ``_``-prefixed names are
        writers' temporary files or markers; names that would escape the zone are
        reported as they are listed and never joined into a path elsewhere.
        """
        folder = self.zone_dir("landing", dataset)
        if not self.fs.exists(folder):
            return []
        out = []
        for info in self.fs.ls(folder, detail=True):
            full = str(info["name"]).rstrip("/")
            name = full.rsplit("/", 1)[-1]
            if posixpath.dirname(posixpath.normpath(full)) != posixpath.normpath(folder):
                kind = "other"  # an object-store key like "a/../../b": never touched
            elif info.get("islink"):
                kind = "symlink"
            elif info.get("type") == "directory":
                kind = "directory"
            elif info.get("type") != "file":
                kind = "other"
            elif name.startswith((".", "_")):
                kind = "hidden"
            elif marker_suffix and name.endswith(marker_suffix):
                kind = "marker"
            else:
                kind = "file"
            out.append(
                LandingEntry(
                    name=name,
                    path=full,
                    size=int(info.get("size") or 0),
                    mtime=_mtime(info),
                    kind=kind,
                )
            )
        return sorted(out, key=lambda e: e.name)

    def stat(self, path: str) -> tuple[int, float | None]:
        info = self.fs.info(path)
        return int(info.get("size") or 0), _mtime(info)

    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(path))

    def batch_dirs(self, zone: str, dataset: str) -> list[str]:
        """Batch ids that have a folder in ``zone/<dataset>/``."""
        folder = self.zone_dir(zone, dataset)
        if not self.fs.exists(folder):
            return []
        return sorted(
            p.rstrip("/").rsplit("/", 1)[-1]
            for p in self.fs.ls(folder, detail=False)
            if self.fs.isdir(p)
        )

    def datasets(self) -> list[str]:
        """Dataset folders found in any zone."""
        names: set[str] = set()
        for zone in ZONES:
            folder = posixpath.join(self.root, zone)
            if self.fs.exists(folder):
                names.update(
                    p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(folder, detail=False)
                )
        return sorted(n for n in names if _DATASET_RE.match(n))

    # -- content ------------------------------------------------------------------

    def sha256(self, path: str) -> tuple[str, int]:
        """SHA-256 and size of a file, streamed."""
        digest = hashlib.sha256()
        size = 0
        with self.fs.open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size

    def copy_file(self, src: str, dst: str) -> str:
        """Stream ``src`` to ``dst`` (through a temporary name on local disks);
        returns the SHA-256 of the bytes written."""
        self.ensure_inside_root(dst)
        parent = posixpath.dirname(dst)
        self.fs.makedirs(parent, exist_ok=True)
        target = (
            posixpath.join(parent, f".{posixpath.basename(dst)}.part") if self.is_local else dst
        )
        digest = hashlib.sha256()
        with self.fs.open(src, "rb") as fin, self.fs.open(target, "wb") as fout:
            while chunk := fin.read(_CHUNK):
                digest.update(chunk)
                fout.write(chunk)
        if target != dst:
            self.fs.mv(target, dst)
        return digest.hexdigest()

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write a small file whole (temporary name + rename on local disks)."""
        self.ensure_inside_root(path)
        parent = posixpath.dirname(path)
        self.fs.makedirs(parent, exist_ok=True)
        if self.is_local:
            tmp = posixpath.join(parent, f".{posixpath.basename(path)}.part")
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, path)
        else:
            self.fs.pipe_file(path, data)

    def write_json(self, path: str, value: Any) -> None:
        self.write_bytes(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())

    def read_json(self, path: str) -> Any:
        with self.fs.open(path, "rb") as fh:
            return json.loads(fh.read().decode("utf-8"))

    def remove_file(self, path: str) -> None:
        self.ensure_inside_root(path)
        if self.fs.exists(path):
            self.fs.rm_file(path)

    def remove_dir(self, path: str) -> None:
        self.ensure_inside_root(path)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    @contextmanager
    def local_path(self, path: str) -> Iterator[str]:
        """A local file with the content of ``path``: the path itself on local disks,
        a temporary download (same suffix, so the parser picks the format) otherwise."""
        if self.is_local:
            yield path
            return
        import tempfile

        suffix = Path(posixpath.basename(path)).suffix.lower()
        with tempfile.TemporaryDirectory(prefix="sanitizer-") as tmp:
            local = str(Path(tmp) / f"batch{suffix}")
            self.fs.get_file(path, local)
            yield local


def read_batch_frame(store: Store, path: str) -> pd.DataFrame:
    """Parse a batch file from any zone with the same reader as local files
    (``sanitizer.io.read_table``); every failure is an ``InputError``."""
    from sanitizer.io import read_table

    with store.local_path(path) as local:
        return read_table(local)


def _mtime(info: dict[str, Any]) -> float | None:
    for key in ("mtime", "LastModified", "last_modified", "updated", "modified"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, int | float):
            return float(value)
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        if isinstance(value, str):
            from datetime import datetime

            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None


def _protocols(fs: AbstractFileSystem) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


__all__ = [
    "MANIFEST",
    "REPORT_HTML",
    "REPORT_JSON",
    "ZONES",
    "LandingEntry",
    "Store",
    "check_dataset_name",
    "display_name",
    "read_batch_frame",
    "stored_name",
    "unsafe_name_problem",
]
