"""Verdicts on disk: a SQLite file shared by processes, so a rerun or a resumed run asks nothing twice."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sycophancy_eval_kit.core import files
from sycophancy_eval_kit.core.judge.requests import JudgeRequest, Judgment
from sycophancy_eval_kit.core.judge.settings import ENV_JUDGE_CACHE, JudgeConfigError

logger = logging.getLogger(__name__)

CACHE_FILENAME = "judgments.sqlite3"
#: how many verdicts, and how many seconds of them, a killed process can lose (see ``JudgeCache``).
COMMIT_EVERY = 64
COMMIT_SECONDS = 0.5
def default_cache_dir() -> Path:
    """Where verdicts are kept: ``$SYCOPHANCY_JUDGE_CACHE``, else ``files.cache_root()/judge``."""
    if env := os.environ.get(ENV_JUDGE_CACHE):
        return Path(env).expanduser()
    return files.cache_dir("judge")


class JudgeCache:
    """Verdicts on disk (SQLite, one row per judgment), safe for several processes at once.

    Only valid verdicts are stored: a failed or malformed judgment is asked again by the next run.
    ``put`` commits every ``commit_every`` verdicts (default ``COMMIT_EVERY``); ``flush`` commits
    what is pending (``Judge`` calls it every ``commit_seconds``, default ``COMMIT_SECONDS``, and
    when a batch ends or fails), so
    a process killed outright loses at most that window. A commit per verdict cost 35 us per
    judgment, more than building its prompt, its key and parsing its verdict together; in groups of
    64, 11 us (``benchmarks/judge.py --breakdown``).
    """

    def __init__(
        self,
        folder: str | os.PathLike[str] | None = None,
        commit_every: int | None = None,
        commit_seconds: float | None = None,
    ) -> None:
        self.folder = Path(folder) if folder is not None else default_cache_dir()
        self.path = self.folder / CACHE_FILENAME
        self.commit_every = commit_every or COMMIT_EVERY
        self.commit_seconds = commit_seconds or COMMIT_SECONDS
        self._pending: list[tuple[Any, ...]] = []
        #: why the file stopped working mid-run (None while it works)
        self.broken: str | None = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS judgments (key TEXT PRIMARY KEY, model TEXT, kind TEXT, "
                "version TEXT, verdict INTEGER, raw TEXT, prompt_tokens INTEGER, "
                "completion_tokens INTEGER, created REAL)"
            )
            self._db.commit()
        except (OSError, sqlite3.Error) as err:
            raise JudgeConfigError(
                f"judge cache {self.path}: cannot open it ({err}); "
                f"set ${ENV_JUDGE_CACHE} to a writable folder"
            ) from err

    def check(self) -> None:
        """Try what a run will need of the file, before anything is generated: every page readable
        (a damaged file with an intact header opens, then fails mid-run) and a write (a read-only file
        in a writable folder, a shared team cache, opens too)."""
        try:
            found = self._db.execute("PRAGMA quick_check").fetchall()
            if found != [("ok",)]:
                first = str(found[0][0]).splitlines()
                raise sqlite3.DatabaseError(f"database disk image is malformed ({first[-1][:120]})")
            self._db.execute("INSERT OR REPLACE INTO judgments (key) VALUES ('write check')")
            self._db.rollback()
        except sqlite3.Error as err:
            raise JudgeConfigError(
                f"judge cache {self.path}: {err}. Make it writable, delete a damaged file (its verdicts "
                f"are asked again), or set ${ENV_JUDGE_CACHE} to another folder"
            ) from err

    def _failed(self, doing: str, err: sqlite3.Error) -> None:
        """A fault of the file mid-run: verdicts are still returned, just no longer cached (said once)."""
        if self.broken is None:
            self.broken = f"{doing}: {err}"
            logger.error(
                "judge cache %s failed (%s: %s); the rest of this run is judged without it, its verdicts "
                "are not saved for a rerun", self.path, doing, err,
            )
        self._pending.clear()

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[int, str]]:
        """Stored ``(verdict, raw reply)`` by key, for the keys that have one."""
        found: dict[str, tuple[int, str]] = {}
        if self.broken is not None:
            return found
        try:
            for start in range(0, len(keys), 500):  # SQLite caps the number of bound parameters
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                for key, verdict, raw in self._db.execute(
                    f"SELECT key, verdict, raw FROM judgments WHERE key IN ({marks})", chunk
                ):
                    found[key] = (int(verdict), raw)
        except sqlite3.Error as err:
            self._failed("reading", err)
            return {}
        return found

    def put(self, key: str, model: str, request: JudgeRequest, judgment: Judgment) -> None:
        """Store one verdict; committed with the next ``commit_every`` or ``flush``."""
        self._pending.append(
            (
                key,
                model,
                request.kind,
                request.version,
                judgment.verdict,
                judgment.raw,
                judgment.prompt_tokens,
                judgment.completion_tokens,
                time.time(),
            )
        )
        if len(self._pending) >= self.commit_every:
            self.flush()

    def flush(self) -> None:
        """Commit the pending verdicts."""
        if not self._pending or self.broken is not None:
            self._pending.clear()
            return
        try:
            self._db.executemany(
                "INSERT OR REPLACE INTO judgments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", self._pending
            )
            self._db.commit()
        except sqlite3.Error as err:
            with contextlib.suppress(sqlite3.Error):
                self._db.rollback()
            self._failed("writing", err)
        self._pending.clear()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM judgments").fetchone()[0])

    def close(self) -> None:
        try:
            self.flush()
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()


