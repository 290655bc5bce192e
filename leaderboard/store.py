"""The leaderboard's store: one DuckDB database file of every run read and every question's outcome.

Tables (``syco-leaderboard query STORE "SQL"``, or DuckDB itself, reads them):

* ``runs``: one row per task run of a model: ``run_id``, ``model``, ``task``, ``family``, ``protocol``,
  ``grader``, ``subset`` (the sub-dataset, or a user's data name), ``track``, ``timestamp``,
  ``results_file`` (as the site shows it), ``n_questions``, and ``provenance`` and ``reported`` (JSON);
* ``outcomes``: one row per question of a run: ``run_id``, ``pos`` (its line order in the samples
  file), ``question_id`` (the tasks' stable ``doc.id``) and one column per metric, NULL where the
  question does not define it (a flip rate when the first answer was wrong) or the task does not report
  it (a view of ``outcomes_answer`` and ``outcomes_ays``, each family's runs with its own metrics);
* ``files``: every results file read, its signature and the problems found in it, so that an
  unchanged file is not read again and its warnings are repeated;
* ``derived``: statistics and pages of earlier builds by the digest of what they were made from.

Results files are stored in batches, each batch (its runs, questions and file signatures) in one
transaction: a build killed mid-way keeps the batches it finished, and the next build reads only the
rest. A store written by other code (``meta``) is emptied and refilled from the results folders.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from sycophancy_eval_kit.leaderboard import tasks

HERE = Path(__file__).resolve().parent
#: the questions of each family's runs are in a table of their own, with a column per metric of the
#: family (NULL where undefined); the view ``outcomes`` is all of them
TABLES: dict[str, tuple[str, ...]] = {
    family: tuple(m.name for m in ms + (tasks.PRESSURE_METRICS if family == tasks.AYS else ()))
    for family, ms in tasks.METRICS.items()
}
METRICS: tuple[str, ...] = tuple(dict.fromkeys(m for names in TABLES.values() for m in names))
#: DuckDB's memory: enough to scan and sort, far below the build's 1 GiB budget
MEMORY_LIMIT = "256MB"
#: derived values (pages, plots, statistics) are written once this many bytes are waiting
FLUSH_BYTES = 32 * 2**20


class StoreError(ValueError):
    """The store cannot be opened or written; the message says which file and what to do."""


def code_digest(*paths: Path) -> str:
    """sha256 over source files: what a store's contents and a derived value are a function of."""
    digest = hashlib.sha256()
    for path in paths:
        for file in sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]:
            if file.suffix != ".pyc":
                digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def value_digest(value: Any) -> str:
    """sha256 of a JSON-able value (what a derived entry is keyed by)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, allow_nan=True)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def default_path(out: Path) -> Path:
    """``<parent>/<site name>.duckdb``: beside the site, outside what is published."""
    out = Path(out)
    return out.parent / f"{out.name}.duckdb"


_OUTCOMES = "".join(
    f"CREATE TABLE IF NOT EXISTS outcomes_{family} (run_id INTEGER, pos INTEGER, question_id VARCHAR, "
    + ", ".join(f'"{m}" DOUBLE' for m in names)
    + ");\n"
    for family, names in TABLES.items()
)
_VIEW = " UNION ALL BY NAME ".join(f"SELECT * FROM outcomes_{f}" for f in TABLES)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS files (path VARCHAR PRIMARY KEY, signature VARCHAR, problems VARCHAR);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY, path VARCHAR, model VARCHAR, task VARCHAR, family VARCHAR,
    protocol VARCHAR, grader VARCHAR, subset VARCHAR, track VARCHAR, timestamp VARCHAR,
    results_file VARCHAR, n_questions INTEGER, digest VARCHAR, ids_digest VARCHAR,
    provenance VARCHAR, reported VARCHAR);
{_OUTCOMES}CREATE OR REPLACE VIEW outcomes AS {_VIEW};
CREATE TABLE IF NOT EXISTS derived (key VARCHAR PRIMARY KEY, value BLOB);
"""


class Store:
    """A connection to the store (a file, or in memory for a one-off build)."""

    def __init__(self, path: Path | None, version: str) -> None:
        self.path = path
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            self.db = duckdb.connect(str(path) if path is not None else ":memory:")
        except (OSError, duckdb.Error) as err:
            text = str(err).lower()
            hint = (
                "another build may be using it; wait for it, or give another --store"
                if "lock" in text
                else "if it is a damaged store, delete it: it is rebuilt from the results folders"
                if "not a valid duckdb" in text
                else "give a writable --store, or --no_store"
            )
            raise StoreError(f"cannot open the store {path}: {err}; {hint}") from err
        self.db.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        self.db.execute("SET preserve_insertion_order = true")
        found = self._meta_version()
        if found is not None and found != version:  # another version of the code wrote it: refill
            self.db.execute("DROP VIEW IF EXISTS outcomes")
            for table in (*(f"outcomes_{f}" for f in TABLES), "runs", "files", "derived", "meta", "staging"):
                self.db.execute(f"DROP TABLE IF EXISTS {table}")
        self.db.execute(_SCHEMA)
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", [version])
        self.used: set[str] = set()
        self._derived: dict[str, bytes] | None = None
        self._new: dict[str, bytes] = {}
        self._new_bytes = 0

    def _meta_version(self) -> str | None:
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except duckdb.CatalogException:
            return None
        return row[0] if row else None

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # ---------------------------------------------------------------------------- files, runs
    def files(self) -> dict[str, tuple[str, list[list[str]]]]:
        """path -> (signature, problems) of every results file read before."""
        rows = self.db.execute("SELECT path, signature, problems FROM files").fetchall()
        return {p: (s, json.loads(problems)) for p, s, problems in rows}

    def forget(self, paths: Iterable[str]) -> None:
        """Drop what was read from these results files (changed, or gone)."""
        listed = list(paths)
        if not listed:
            return
        self.db.execute("CREATE OR REPLACE TEMP TABLE gone AS SELECT unnest(?::VARCHAR[]) AS path", [listed])
        for family in TABLES:
            self.db.execute(
                f"DELETE FROM outcomes_{family} WHERE run_id IN "
                "(SELECT run_id FROM runs WHERE path IN (SELECT path FROM gone))"
            )
        self.db.execute("DELETE FROM runs WHERE path IN (SELECT path FROM gone)")
        self.db.execute("DELETE FROM files WHERE path IN (SELECT path FROM gone)")

    def record_file(self, path: str, signature: str, problems: Sequence[Sequence[str]]) -> None:
        self.db.execute("INSERT INTO files VALUES (?, ?, ?)", [path, signature, json.dumps(problems)])

    def next_run_id(self) -> int:
        return int(self.db.execute("SELECT coalesce(max(run_id), 0) + 1 FROM runs").fetchone()[0])

    def runs(self) -> list[tuple[Any, ...]]:
        columns = (
            "run_id, path, model, task, family, protocol, grader, subset, timestamp, n_questions, digest"
        )
        query = f"SELECT {columns}, ids_digest, provenance, reported FROM runs ORDER BY run_id"
        return self.db.execute(query).fetchall()

    # ----------------------------------------------------------------------------- outcomes
    def values(
        self, family: str, run_ids: Sequence[int], metrics: Sequence[str] | None = None
    ) -> dict[int, dict[str, np.ndarray]]:
        """Per run of ``family``, each metric's per-question values in file order (NaN: undefined);
        ``metrics``: only those columns (default: all of the family's)."""
        if not run_ids:
            return {}
        metrics = tuple(metrics) if metrics is not None else TABLES[family]
        cols = ", ".join(f'"{m}"' for m in metrics)
        # runs read together have neighbouring ids: the range lets DuckDB skip the other row groups
        query = (
            f"SELECT run_id, {cols} FROM outcomes_{family} WHERE run_id BETWEEN ? AND ? "
            "AND run_id IN (SELECT unnest(?::INTEGER[])) ORDER BY run_id, pos"
        )
        found = self.db.execute(query, [min(run_ids), max(run_ids), list(run_ids)]).fetchnumpy()
        ids = np.asarray(found["run_id"])
        bounds = np.searchsorted(ids, run_ids, side="left"), np.searchsorted(ids, run_ids, side="right")
        arrays = {m: np.ma.filled(np.ma.asarray(found[m], dtype=float), np.nan) for m in metrics}
        return {
            run_id: {m: arrays[m][lo:hi] for m in metrics}
            for run_id, lo, hi in zip(run_ids, *bounds, strict=True)
        }

    def question_ids(self, family: str, run_id: int) -> tuple[str, ...]:
        query = f"SELECT question_id FROM outcomes_{family} WHERE run_id = ? ORDER BY pos"
        return tuple(r[0] for r in self.db.execute(query, [run_id]).fetchall())

    # ------------------------------------------------------------------------------ derived
    def derived(self, key: str) -> bytes | None:
        """A value an earlier build derived (a statistic, a page), by the digest of its inputs."""
        if self._derived is None:  # one query for all of them: a build looks up thousands
            self._derived = dict(self.db.execute("SELECT key, value FROM derived").fetchall())
        self.used.add(key)
        if key in self._new:
            return self._new[key]
        if key in self._derived and self._derived[key] is None:  # written by this build: in the file
            row = self.db.execute("SELECT value FROM derived WHERE key = ?", [key]).fetchone()
            return None if row is None else bytes(row[0])
        found = self._derived.get(key)
        return None if found is None else bytes(found)

    def put_derived(self, key: str, value: bytes) -> None:
        self.used.add(key)
        self._new[key] = value
        self._new_bytes += len(value)
        if self._new_bytes >= FLUSH_BYTES:  # pages add up: write them now rather than hold them all
            self._flush()

    def _flush(self) -> None:
        """Write the derived values held so far (a few MB per statement). Entries are keyed by their
        inputs, so one written by a build that is then killed is harmless: unused, the next drops it."""
        import pyarrow as pa

        items, self._new, self._new_bytes = list(self._new.items()), {}, 0
        with self.transaction():
            for start in range(0, len(items), 256):
                batch = items[start : start + 256]
                chunk = pa.table(
                    {"key": [k for k, _ in batch], "value": pa.array([v for _, v in batch], pa.binary())}
                )
                self.db.register("chunk", chunk)
                self.db.execute("DELETE FROM derived WHERE key IN (SELECT key FROM chunk)")
                self.db.execute("INSERT INTO derived SELECT key, value FROM chunk")
                self.db.unregister("chunk")
        if self._derived is not None:
            self._derived.update((k, None) for k, _ in items)  # written: looked up from the file again

    def save_derived(self) -> None:
        """Keep what this build used and derived; drop the rest (the statistics and pages of runs no
        longer shown)."""
        self._flush()
        self.db.execute("CREATE OR REPLACE TEMP TABLE used (key VARCHAR)")
        self.db.executemany("INSERT INTO used VALUES (?)", [[k] for k in sorted(self.used)])
        with self.transaction():
            self.db.execute("DELETE FROM derived WHERE key NOT IN (SELECT key FROM used)")

    # -------------------------------------------------------------------------------- query
    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        result = self.db.execute(sql)
        return [d[0] for d in result.description or []], result.fetchall()

    def export(self, sql: str, out: Path) -> None:
        """A query's rows to Parquet or CSV (by ``out``'s suffix), written by DuckDB."""
        kind = {".parquet": "PARQUET", ".csv": "CSV"}.get(out.suffix.lower())
        if kind is None:
            raise StoreError(f"{out}: expected a .parquet or .csv file name")
        header = ", HEADER" if kind == "CSV" else ""
        self.db.execute(f"COPY ({sql}) TO '{_quoted(str(out))}' (FORMAT {kind}{header})")


def _quoted(text: str) -> str:
    return text.replace("'", "''")
