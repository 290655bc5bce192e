"""The one file layer: reading text and JSON with ``path:line`` errors, checksums, verified downloads, caches,
and replacing an output folder atomically.

Every package (the Sharma loader, ``saa_data``, ``training``, ``leaderboard``) reads its inputs through
these functions, so one rule holds everywhere: an unreadable input is a ``DataError`` that names the
file, the line and what was expected, never a raw ``UnicodeDecodeError ... position N`` or a
``JSONDecodeError`` with no file. Pinned downloads are streamed to a temporary file beside the target,
checked against their sha256 and only then moved into place, so a cache never holds a bad copy. Output
folders (an SAA build, a leaderboard site) are written the same way: in full beside the target, then
swapped in, and a run killed part-way is repaired by the next one (``replacing_dir``, ``recover_dir``).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import logging
import os
import shutil
import signal
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not on Windows: leftovers are then always treated as stale
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

ENV_CACHE_DIR = "SYCOPHANCY_CACHE_DIR"
CACHE_NAME = "sycophancy-eval"


class DataError(ValueError):
    """Bad or missing input data; the message names the file, the line and what was expected.

    ``where`` (``path`` or ``path:line``) and ``detail`` are the two halves of the message, for callers
    that report problems in a layout of their own (the leaderboard's skipped-run list).
    """

    def __init__(self, detail: str, where: str | None = None) -> None:
        super().__init__(f"{where}: {detail}" if where else detail)
        self.where = where
        self.detail = detail


# ------------------------------------------------------------------------------------------ text
def _decode_error(path: Path, raw: bytes, err: UnicodeDecodeError, first_line: int = 1) -> DataError:
    """A decoding error as ``path:line:column`` (1-based), with the offending byte."""
    before = raw[: err.start]
    line = first_line + before.count(b"\n")
    column = err.start - (before.rfind(b"\n") + 1) + 1
    byte = raw[err.start : err.start + 1].hex()
    return DataError(
        f"not UTF-8 text (byte 0x{byte} at column {column}); expected a UTF-8 encoded file", f"{path}:{line}"
    )


def read_text(path: str | os.PathLike[str]) -> str:
    """The whole file as UTF-8 text (a leading BOM dropped); errors name the file and line."""
    p = Path(path)
    raw = _read_bytes(p)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise _decode_error(p, raw, err) from None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", str(path)) from None
    except IsADirectoryError:
        raise DataError("is a folder; expected a file", str(path)) from None
    except OSError as err:
        raise DataError(f"cannot read it ({err.strerror})", str(path)) from err


def load_json(path: str | os.PathLike[str], what: str = "a JSON document") -> Any:
    """A whole JSON file; a syntax error names the line and column (bare ``NaN`` is accepted)."""
    p = Path(path)
    text = read_text(p)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(
            f"not valid JSON ({err.msg} at column {err.colno}); expected {what}", f"{p}:{err.lineno}"
        ) from err


def iter_json_lines(
    path: str | os.PathLike[str], what: str = "one JSON object per line", strict: bool = True
) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for every non-blank line of a JSON-lines file.

    A line that is not UTF-8 or not JSON raises ``DataError`` naming ``path:line``; with
    ``strict=False`` it is yielded as ``(line, DataError)`` instead, so a caller can collect every bad
    line before it reports. Bare ``NaN`` tokens (as in Sharma et al.'s files) are accepted.
    """
    p = Path(path)
    try:
        handle = open(p, "rb")
    except FileNotFoundError:
        raise DataError("file not found", str(p)) from None
    except OSError as err:
        raise DataError(f"cannot read it ({err.strerror})", str(p)) from err
    with handle:
        for line_no, raw in enumerate(handle, start=1):
            error: DataError | None = None
            try:
                text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as err:
                error = _decode_error(p, raw, err, first_line=line_no)
            else:
                if not text.strip():
                    continue
                try:
                    yield line_no, json.loads(text)
                    continue
                except json.JSONDecodeError as err:
                    error = DataError(f"not valid JSON ({err.msg}); expected {what}", f"{p}:{line_no}")
            if strict:
                raise error
            yield line_no, error


# ------------------------------------------------------------------------------------- checksums
def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------- downloads
def download_verified(url: str, target: Path, expected: str, timeout: float = 60.0) -> str | None:
    """Stream ``url`` to ``target`` if its sha256 is ``expected``; else return the sha actually seen.

    Nothing is written at ``target`` unless the checksum matches. Network errors propagate.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".part") as tmp:
        tmp_path = Path(tmp.name)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (pinned URL)
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    digest.update(chunk)
                    tmp.write(chunk)
        except BaseException:
            tmp.close()
            tmp_path.unlink(missing_ok=True)
            raise
    if digest.hexdigest() != expected:
        tmp_path.unlink(missing_ok=True)
        return digest.hexdigest()
    shutil.move(str(tmp_path), target)
    logger.info("Downloaded %s to %s (sha256 verified).", url, target)
    return None


def fetch_verified(
    urls: Sequence[str], target: Path, expected: str, offline_hint: str, timeout: float = 60.0
) -> Path:
    """``target`` if it holds the file whose sha256 is ``expected``, else the first URL that serves it.

    A cached copy that fails its check is deleted and fetched again; a download that fails its check
    is discarded (nothing is cached) and the next URL is tried. When none succeeds the error lists
    every URL with what went wrong, then ``offline_hint`` (how to pass a local copy instead).
    """
    if target.is_file():
        if sha256_file(target) == expected:
            return target
        logger.warning("Cached %s fails its sha256 check; downloading it again.", target)
        target.unlink()
    failures: list[str] = []
    mismatch = False
    for url in urls:
        try:
            seen = download_verified(url, target, expected, timeout)
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            failures.append(f"{url}: {err}")
            continue
        if seen is None:
            return target
        mismatch = True
        failures.append(f"{url}: sha256 {seen}, expected {expected}")
    detail = f" from {failures[0]}" if len(failures) == 1 else ":\n  " + "\n  ".join(failures)
    if mismatch:
        raise DataError(
            f"Downloaded {target.name} does not match the pinned sha256 (nothing was cached){detail}"
        )
    raise DataError(f"Could not download {target.name}{detail}\n{offline_hint}")


# ---------------------------------------------------------------------------------------- caches
def cache_root() -> Path:
    """``$SYCOPHANCY_CACHE_DIR``, else ``$XDG_CACHE_HOME/sycophancy-eval`` (``~/.cache/sycophancy-eval``)."""
    if env := os.environ.get(ENV_CACHE_DIR):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / CACHE_NAME


def cache_dir(*parts: str) -> Path:
    """A folder under ``cache_root()`` for one kind of cached input (not created here)."""
    return cache_root().joinpath(*parts)


# --------------------------------------------------------------------------- folder replacement
TMP_TAG = ".tmp-"  # ``.NAME.tmp-XXXX``: a copy being written (or, after an exchange, the one it replaced)
OLD_TAG = ".old-"  # ``.NAME.old-XXXX``: the previous copy moved aside by the two-rename fallback
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2  # linux/fs.h


@lru_cache(maxsize=1)
def _renameat2() -> Any:
    """glibc's ``renameat2`` (Linux >= 3.15, glibc >= 2.28), or None; Python's ``os`` does not expose it."""
    try:
        func = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    func.restype = ctypes.c_int
    return func


def exchange_paths(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step; False where the OS or the file system cannot."""
    func = _renameat2()
    if func is None:
        return False
    if func(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOENT):
        return False  # e.g. a file system without RENAME_EXCHANGE, or ``b`` vanished meanwhile
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _lock(folder: Path) -> int | None:
    """Hold an exclusive lock on ``folder`` (released when the process dies, even by SIGKILL)."""
    if fcntl is None:
        return None
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _is_held(folder: Path) -> bool:
    """Another live process holds ``folder``'s lock: it is that process's work in progress."""
    if fcntl is None:
        return False
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops our probe lock too
    return False


def _unlock(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


@contextmanager
def _signals_held() -> Iterator[None]:
    """Defer SIGINT / SIGTERM for the few system calls of a swap (only SIGKILL can split it then)."""
    held = {signal.SIGINT, signal.SIGTERM}
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _leftovers(target: Path, tag: str) -> list[Path]:
    prefix = f".{target.name}{tag}"
    try:
        names = os.listdir(target.parent)
    except OSError:
        return []
    found = [target.parent / n for n in names if n.startswith(prefix)]
    return sorted((p for p in found if p.is_dir() and not p.is_symlink()), key=lambda p: p.stat().st_mtime_ns)


def recover_dir(target: str | os.PathLike[str]) -> list[str]:
    """Repair what a replacement of ``target`` killed part-way left beside it; returns (and logs) each step.

    * ``.NAME.old-*`` is the previous copy, moved aside by the two-rename fallback. When ``target`` is
      missing the kill fell between the two renames: the newest such copy is put back. Otherwise it is
      a copy already replaced, and is removed.
    * ``.NAME.tmp-*`` is an unfinished new copy (killed while writing) or, after an atomic exchange,
      the copy it replaced (killed before removing it): removed either way, ``target`` being intact.

    A folder whose lock a live process holds is its work in progress and is left alone.
    """
    target = Path(target)
    notes: list[str] = []
    for old in reversed(_leftovers(target, OLD_TAG)):  # newest first: the one to put back
        if _is_held(old):
            continue
        if not os.path.lexists(target):
            os.rename(old, target)
            notes.append(
                f"{target} was missing (a replacement was interrupted between its two renames); "
                f"restored the previous copy from {old.name}"
            )
        else:
            shutil.rmtree(old, ignore_errors=True)
            notes.append(f"removed {old}, a replaced copy an interrupted run left behind")
    for tmp in _leftovers(target, TMP_TAG):
        if _is_held(tmp):
            continue
        shutil.rmtree(tmp, ignore_errors=True)
        notes.append(f"removed {tmp}, an unfinished copy an interrupted run left behind")
    for note in notes:
        logger.warning("%s", note)
    return notes


def _swap_in(new: Path, target: Path) -> None:
    """Put ``new`` at ``target``: one atomic exchange where the file system has it, else two renames."""
    with _signals_held():
        if not os.path.lexists(target):
            os.rename(new, target)
            return
        if exchange_paths(new, target):
            replaced = new  # the exchange left the previous copy at the temporary name
        else:
            replaced = new.with_name(new.name.replace(TMP_TAG, OLD_TAG, 1))
            held = _lock(target)  # so that a concurrent recover_dir leaves the moved-aside copy alone
            try:
                os.rename(target, replaced)
                try:
                    os.rename(new, target)
                except OSError:
                    os.rename(replaced, target)  # put the previous copy back
                    raise
            finally:
                _unlock(held)
    shutil.rmtree(replaced, ignore_errors=True)


def writable_folder(folder: str | os.PathLike[str], flag: str) -> Path:
    """``folder``, created if missing, after a probe file was written there and removed: checked before
    hours of work whose output would otherwise be lost at the end. Raises ``RefusedFolder``."""
    folder = Path(folder)
    if os.path.lexists(folder) and not folder.is_dir():
        raise RefusedFolder(f"{flag} {folder} exists and is not a folder; give a folder for the results")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = err.strerror or err
        raise RefusedFolder(f"{flag} {folder}: cannot write there ({reason}); give a writable one") from err
    return folder


def fingerprint_folder(folder: str | os.PathLike[str]) -> str:
    """A cheap, stable fingerprint of a folder's files (names, sizes, modification times; no contents
    read): it changes when model weights are replaced, without hashing gigabytes."""
    root = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        stat = path.stat()
        digest.update(f"{path.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def looks_like_a_path(value: str) -> bool:
    """A model reference that can only be a local folder (``./out``, ``/models/x``, ``~/m``, ``a/b/c``):
    a Hub id is ``name`` or ``org/name``. (``out/model`` is both; it is left to transformers.)"""
    return value.startswith(("/", "./", "../", "~")) or value in (".", "..") or value.count("/") >= 2


def check_model_folder(value: str, flag: str) -> None:
    """A local model folder that does not exist is said to be missing (transformers would answer
    "Repo id must be in the form ..." for it). Hub ids (``org/name``) pass untouched."""
    if not looks_like_a_path(value):
        return
    path = Path(value).expanduser()
    if not path.exists():
        raise RefusedFolder(f"{flag} {value}: no such folder (a local model folder was expected there)")
    if not path.is_dir():
        raise RefusedFolder(f"{flag} {value} is a file; a model folder was expected")


class RefusedFolder(ValueError):
    """A folder a command will not replace: not built by that command, an input, a link or a file."""


def built_marker(tool: str) -> str:
    """The file a command writes into every folder it builds (``.syco-saa``): its licence to replace it."""
    return f".{tool}"


def check_replaceable(target: str | os.PathLike[str], tool: str, flag: str = "--out") -> None:
    """The one rule of every command that replaces a folder: a missing or empty ``target`` may be built,
    one that ``tool`` built (its ``built_marker``) may be replaced, anything else is refused with its
    path and what is in it. Leftovers of a replacement killed part-way are repaired first
    (``recover_dir``). Each command also refuses a ``target`` that holds one of its inputs.
    """
    target = Path(target)
    recover_dir(target)
    if target.is_symlink():
        raise RefusedFolder(f"{flag} {target} is a symbolic link; give the real folder")
    if not os.path.lexists(target):
        return
    if not target.is_dir():
        raise RefusedFolder(f"{flag} {target} exists and is not a folder")
    held = sorted(p.name for p in target.iterdir())
    if held and built_marker(tool) not in held:
        shown = ", ".join(held[:8]) + (f", ... ({len(held)} entries)" if len(held) > 8 else "")
        raise RefusedFolder(
            f"{flag} {target} is a non-empty folder that {tool} did not build (no {built_marker(tool)}; "
            f"it holds {shown}); refusing to replace it: choose a new or empty folder"
        )


def mark_built(folder: str | os.PathLike[str], tool: str) -> None:
    """Write ``tool``'s marker into a folder it is building (see ``check_replaceable``)."""
    text = f"built by {tool}; {tool} may replace this folder with a new build\n"
    (Path(folder) / built_marker(tool)).write_text(text, encoding="utf-8")


@contextmanager
def replacing_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """A new empty folder beside ``target``; when the block ends it takes ``target``'s place atomically.

    An exception in the block removes the new folder and leaves ``target`` as it was. The caller decides
    beforehand whether ``target`` may be replaced, after calling :func:`recover_dir`. The new folder
    gets the usual permissions (``mkdtemp``'s 0700 would stick to the published folder) and is locked
    while it exists, so a concurrent ``recover_dir`` does not take it for a leftover.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(prefix=f".{target.name}{TMP_TAG}", dir=target.parent))
    held = _lock(new)
    try:
        umask = os.umask(0)
        os.umask(umask)
        new.chmod(0o777 & ~umask)
        yield new
        _swap_in(new, target)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    finally:
        _unlock(held)
