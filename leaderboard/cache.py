"""The build cache: what an earlier build read, computed and rendered, reused while its inputs stand.

It lives beside the site, never inside it (``site/`` -> ``.site.cache/``; ``--cache_dir`` moves it), so
it is neither published nor swapped away with the site. Three kinds of entries, each keyed by all of
its inputs, so a stale entry is never found rather than found and distrusted:

* ingest (``ingest.json`` + ``runs/``): one entry per results file, keyed by the file signatures
  (size, mtime, ctime, inode) of the results file and of every samples file of its ``date_id`` beside
  it, the folder it is shown relative to, and the digest of the code that reads them. A run's
  per-question values are stored under their content digest and loaded only when a statistic needs them;
* statistics (``estimates.json``): a model's estimates and a comparison's rows, keyed by the content
  digests of the runs behind them, the seed, the resamples and the statistics code;
* rendering (``render/``): each page and plot, keyed by the sha256 of exactly what it is rendered from.

A file changed within ``RACY_NS`` before its entry was written could change again within one tick of
the file system's clock without its signature changing (git's "racy clean" case), so such an entry is
not trusted: the file is read again. Entries not used by a build are dropped when it saves. A cache that
cannot be read (corrupt, another version) is ignored and rebuilt; only a cache that cannot be written
is an error, as that is the only way a build could lose work.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = 1
#: file times this close to the moment an entry was written do not prove the file unchanged.
RACY_NS = 2_000_000_000
HERE = Path(__file__).resolve().parent


def default_cache_dir(out: Path) -> Path:
    """``<parent>/.<site name>.cache``: beside the site, hidden, outside what is published."""
    out = Path(out)
    return out.parent / f".{out.name}.cache"


def code_digest(*paths: Path) -> str:
    """sha256 over source files (folders: every file under them), so a code change invalidates."""
    digest = hashlib.sha256(f"format {FORMAT}".encode())
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if file.suffix == ".pyc":
                continue
            digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def value_digest(value: Any) -> str:
    """sha256 of a JSON-ready value (dicts, lists, strings, numbers, None).

    ``marshal`` format 2 spells it losslessly, types included, and never by object identity (unlike
    format 3's back-references), several times faster than ``json``. Dict keys are taken in order:
    every value digested here is built in a fixed order, and another order could only cost a
    recomputation, never reuse a wrong result.
    """
    return hashlib.sha256(marshal.dumps(value, 2)).hexdigest()


def signature(path: Path) -> list[int] | None:
    """What identifies one version of a file without reading it; None when it does not exist."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def settled(sig: list[int] | None, written_ns: int) -> bool:
    """False when the file changed too close to ``written_ns`` for its signature to prove anything."""
    return sig is None or max(sig[1], sig[2]) < written_ns - RACY_NS


class CacheError(OSError):
    """The cache folder cannot be written; the message names it."""


class BuildCache:
    """One cache folder: JSON documents plus content-addressed files, all written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._ids: dict[str, tuple[str, ...]] = {}

    # ------------------------------------------------------------------------------ documents
    def load(self, name: str) -> dict[str, Any]:
        """A JSON document written by ``save``; empty when missing, unreadable or of another format."""
        try:
            doc = json.loads((self.root / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            return {}
        entries = doc.get("entries")
        return entries if isinstance(entries, dict) else {}

    def save(self, name: str, entries: dict[str, Any]) -> None:
        text = json.dumps({"format": FORMAT, "entries": entries}, ensure_ascii=False, allow_nan=False)
        self._write(self.root / name, text.encode("utf-8"))

    def _write(self, path: Path, data: bytes) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except OSError as err:
            raise CacheError(f"{self.root}: cannot write the build cache ({err}); pass --no_cache") from err

    # --------------------------------------------------------------------------- blobs
    def _blob(self, kind: str, key: str) -> Path:
        if not key.isalnum():
            raise ValueError(f"cache key {key!r} is not a digest")
        return self.root / kind / key[:2] / key

    def get_blob(self, kind: str, key: str) -> bytes | None:
        try:
            return self._blob(kind, key).read_bytes()
        except OSError:
            return None

    def put_blob(self, kind: str, key: str, data: bytes) -> None:
        path = self._blob(kind, key)
        if not path.is_file():
            self._write(path, data)

    def prune(self, kind: str, keep: Iterable[str]) -> None:
        """Delete the blobs of ``kind`` no entry refers to any more."""
        wanted = set(keep)
        for path in (self.root / kind).glob("*/*"):
            if path.name not in wanted and not path.name.startswith("."):
                path.unlink(missing_ok=True)

    # ----------------------------------------------------------------- per-question values
    def put_run(self, ids: tuple[str, ...], matrix: np.ndarray) -> tuple[str, str, tuple[str, ...]]:
        """Store a run's question ids and value matrix (one row per metric, one column per question);
        returns ``(ids digest, values digest, ids)``, ``ids`` being the one tuple every run over the
        same questions shares."""
        ids_key, values_key = run_digests(ids, matrix)
        self.put_blob("ids", ids_key, "\n".join(ids).encode("utf-8"))
        self.put_blob("values", values_key, np.ascontiguousarray(matrix, dtype="<f8").tobytes())
        return ids_key, values_key, self._ids.setdefault(ids_key, ids)

    def has_run(self, ids_key: str, values_key: str, size: int) -> bool:
        """Both files of a stored run are there, the values at the expected size."""
        try:
            values = self._blob("values", values_key).stat().st_size
            return values == size and self._blob("ids", ids_key).is_file()
        except OSError:
            return False

    def get_run(self, ids_key: str, values_key: str, rows: int) -> tuple[tuple[str, ...], np.ndarray]:
        """The ids and matrix ``put_run`` stored; runs over the same questions share one ids tuple."""
        ids = self._ids.get(ids_key)
        if ids is None:
            text = self.get_blob("ids", ids_key)
            if text is None or hashlib.sha256(text).hexdigest() != ids_key:
                raise CacheError(f"{self.root}: cached question ids {ids_key[:12]} are missing or damaged")
            ids = self._ids.setdefault(ids_key, tuple(text.decode("utf-8").split("\n")))
        raw = self.get_blob("values", values_key)
        matrix = None if raw is None else np.frombuffer(raw, dtype="<f8")
        if matrix is None or matrix.size != len(ids) * rows:
            raise CacheError(f"{self.root}: cached values {values_key[:12]} are missing or damaged")
        matrix = matrix.reshape(rows, len(ids))
        if run_digests(ids, matrix)[1] != values_key:
            raise CacheError(
                f"{self.root}: cached values {values_key[:12]} were changed after the build that wrote "
                "them; delete the cache folder (or pass --no_cache)"
            )
        return ids, matrix


def run_digests(ids: tuple[str, ...], matrix: np.ndarray) -> tuple[str, str]:
    """Content digests of a run's question ids, and of ids plus values: what its statistics depend on."""
    ids_key = hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()
    raw = np.ascontiguousarray(matrix, dtype="<f8")
    values = hashlib.sha256(f"{ids_key} {raw.shape}".encode() + raw.tobytes()).hexdigest()
    return ids_key, values


def now_ns() -> int:
    return time.time_ns()
