"""lm-eval ``--output_path`` folders into the store: results files, their samples files, validation.

lm-eval writes ``<output_path>/<model_name_sanitized>/results_<date_id>.json`` and, with
``--log_samples``, one ``samples_<task>_<date_id>.jsonl`` per task beside it (same ``date_id``). The
per-question values in the samples files are what the statistics need; the results file holds the
provenance and the aggregate lm-eval reported, which each samples file must reproduce.

The samples files of every new or changed results file are read in one DuckDB scan (``read_json`` on
all of them, in parallel, only the question id, the filter and the metric columns); every check on
their values is one SQL query over all runs at once (``_checks``). A results file whose signature
(its sha256, and the size and time of every samples file of its ``date_id``) is unchanged since the
last build is not read again; one that changed or disappeared is replaced or removed.

Bad input never stops the build: a file or task that cannot be used is skipped with a warning naming
the file, the line and what was expected (``strict=True`` turns warnings into one error). For repeated
runs of the same model and task the newest ``date_id`` wins; ``keep="all"`` keeps the older ones as
history.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from sycophancy_eval_kit.core import files as file_layer
from sycophancy_eval_kit.core import registry, task_names
from sycophancy_eval_kit.core.files import DataError, iter_json_lines, load_json
from sycophancy_eval_kit.leaderboard import store as stores
from sycophancy_eval_kit.leaderboard import tasks
from sycophancy_eval_kit.leaderboard.tasks import TaskId

RESULTS_PREFIX = "results_"
SAMPLES_PREFIX = "samples_"
SAMPLE_DATA_SOURCE = "embedded"
#: reported aggregate vs mean of the samples: lm-eval writes both from the same floats.
_TOLERANCE = 1e-6
#: what the store's contents are a function of besides the results folders
VERSION = stores.code_digest(
    Path(__file__),
    Path(stores.__file__),
    Path(tasks.__file__),
    Path(registry.__file__),
    Path(file_layer.__file__),
)


@dataclass(frozen=True)
class Problem:
    """Something in the input that could not be used; ``where`` is a file, or ``file:line``."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class IngestError(ValueError):
    """Raised under ``strict``, or when nothing usable is left; lists every problem found."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        lines = [message] + [f"  {p}" for p in problems]
        super().__init__("\n".join(lines))
        self.problems = list(problems)


@dataclass(eq=False)
class TaskRun:
    """One task of one model from one results file; its per-question values come from the store."""

    model: str
    task: TaskId
    timestamp: str
    provenance: dict[str, Any]
    reported: dict[str, float]
    n: int
    run_id: int = 0
    digest: str = ""  # of the files it was read from: what derived statistics are keyed by
    ids_digest: str = ""  # of its question ids in order: runs with equal ones pair by position
    store: stores.Store | None = field(default=None, repr=False)
    _values: dict[str, np.ndarray] | None = field(default=None, repr=False)
    _ids: tuple[str, ...] | None = field(default=None, repr=False)

    @property
    def values(self) -> dict[str, np.ndarray]:
        if self._values is None:
            assert self.store is not None
            names = _metric_names(self.task)
            self._values = self.store.values(self.task.family, [self.run_id], names)[self.run_id]
        return self._values

    @property
    def ids(self) -> tuple[str, ...]:
        if self._ids is None:
            assert self.store is not None
            self._ids = self.store.question_ids(self.task.family, self.run_id)
        return self._ids


def load_values(runs: Sequence[TaskRun]) -> None:
    """Fetch the values of many runs in one query per family (instead of one per run)."""
    by_family: dict[str, list[TaskRun]] = {}
    for run in runs:
        if run._values is None and run.store is not None:
            by_family.setdefault(run.task.family, []).append(run)
    for family, group in by_family.items():
        names = list(dict.fromkeys(n for r in group for n in _metric_names(r.task)))
        found = group[0].store.values(family, [r.run_id for r in group], names)  # type: ignore[union-attr]
        for run in group:
            run._values = found[run.run_id]


def _metric_names(task: TaskId) -> list[str]:
    return [m.name for m in tasks.track_metrics(task.track)]


@dataclass
class Ingested:
    runs: list[TaskRun]
    superseded: list[TaskRun] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    refused_sample: list[str] = field(default_factory=list)
    results_files: int = 0


class _Skip(Exception):
    """A task (or file) that cannot be used; carries its problem."""

    def __init__(self, where: str | Path, message: str) -> None:
        super().__init__(message)
        self.problem = Problem(str(where), message)


# ------------------------------------------------------------------------------------ discovery
def find_results_files(paths: Iterable[str | os.PathLike[str]]) -> list[tuple[Path, Path]]:
    """``(results_file, input_root)`` for every ``results_*.json`` under the given folders (or files).

    Symlinked folders are not followed (no loops, no escaping the folders named on the command line).
    """
    found: dict[Path, Path] = {}
    for raw in paths:
        root = Path(raw)
        if root.is_file():
            found.setdefault(root, root.parent)
            continue
        if not root.is_dir():
            raise IngestError(f"{root}: not a folder or file; expected an lm-eval --output_path folder")
        for folder, dirs, names in os.walk(root, followlinks=False):
            dirs.sort()
            for name in sorted(names):
                if name.startswith(RESULTS_PREFIX) and name.endswith(".json"):
                    found.setdefault(Path(folder) / name, root)
    return sorted(found.items())


def date_id_of(path: Path, prefix: str) -> str:
    """lm-eval's ``date_id``: what follows the last ``_`` of the file name (as ``get_file_datetime``)."""
    stem = path.name.removesuffix(".jsonl").removesuffix(".json")
    return stem[stem.rfind("_") + 1 :] if stem.startswith(prefix) else ""


def _display_path(path: Path, root: Path) -> str:
    """A path to show on the site: relative to the input folder, never the builder's absolute path."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        rel = Path(path.name)
    name = root.resolve().name
    return str(Path(name) / rel) if name else str(rel)


def signature(path: Path, root: Path) -> str:
    """What a results file's runs are a function of: its bytes, the size and time of every samples file
    of its ``date_id`` beside it, and the folder it is shown relative to."""
    stamp = date_id_of(path, RESULTS_PREFIX)
    parts: list[Any] = [str(root), str(root.resolve())]
    try:
        parts.append(hashlib.sha256(path.read_bytes()).hexdigest())
        with os.scandir(path.parent) as listing:
            for entry in sorted(listing, key=lambda e: e.name):
                if entry.name.startswith(SAMPLES_PREFIX) and entry.name.endswith(f"_{stamp}.jsonl"):
                    info = entry.stat()  # the ctime too: a rewrite can keep size and mtime, not ctime
                    parts.append([entry.name, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino])
    except OSError as err:
        parts.append(str(err))
    return stores.value_digest(parts)


# ---------------------------------------------------------------------------- results files
def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _iso_date(value: Any) -> str | None:
    number = _number(value)
    if number is None:
        return None
    return datetime.fromtimestamp(number, tz=UTC).isoformat(timespec="seconds")


@dataclass
class _Pending:
    """A run read from a results file, waiting for its samples file's values to be checked."""

    run: TaskRun
    samples: Path
    task_results: dict[str, Any]
    expected_n: int | None
    results_path: Path
    k: int = -1  # its index among the runs checked together


def _provenance(
    results: dict[str, Any], task: TaskId, metadata: dict[str, Any], shown_results: str, shown_samples: str
) -> dict[str, Any]:
    config = results.get("config") if isinstance(results.get("config"), dict) else {}
    versions = results.get("versions") if isinstance(results.get("versions"), dict) else {}
    hashes = results.get("task_hashes") if isinstance(results.get("task_hashes"), dict) else {}
    return {
        "model": results.get("model_name"),
        "model_sha": config.get("model_sha") or None,
        "model_revision": config.get("model_revision"),
        "model_dtype": config.get("model_dtype"),
        "model_args": config.get("model_args") if isinstance(config.get("model_args"), str) else None,
        "lm_eval_version": results.get("lm_eval_version"),
        "transformers_version": results.get("transformers_version"),
        "task": task.name,
        "task_version": versions.get(task.name),
        "task_hash": hashes.get(task.name),
        "family": task.family,
        "subset": task.subset,
        "protocol": metadata.get("protocol") or task.protocol,
        "grader": task.grader,
        "chat_template_sha": results.get("chat_template_sha"),
        "system_instruction_sha": results.get("system_instruction_sha"),
        "fewshot_as_multiturn": results.get("fewshot_as_multiturn"),
        "gen_kwargs": config.get("gen_kwargs"),
        "limit": config.get("limit"),
        "date": _iso_date(results.get("date")),
        "git_hash": results.get("git_hash"),
        "data_source": metadata.get("data_source"),
        "data_file": metadata.get("data_file"),
        "data_sha256": metadata.get("data_sha256"),
        "data_pinned_sha256_match": metadata.get("data_pinned_sha256_match"),
        **(
            {"data_name": task.subset, "data_input_sha256": metadata.get("data_input_sha256")}
            if task.scope
            else {}
        ),
        "results_file": shown_results,
        "samples_file": shown_samples,
    }


def _custom_task(task: TaskId, metadata: dict[str, Any], where: Path) -> TaskId:
    """A run on a user's own data (``sycophancy_custom_*``) is shown under its data's name, which
    ``syco-domain build`` recorded; never under one of Sharma et al.'s sub-dataset names."""
    name = metadata.get("data_name")
    if not isinstance(name, str) or not task_names.DATA_NAME.match(name):
        raise _Skip(
            where,
            f"{task.name}: configs.{task.name}.metadata.data_name = {name!r:.60}; expected the name of the "
            "data (lower case, digits, _), as the sycophancy_custom tasks record it",
        )
    if name in task_names.SHARMA_SUBSETS:
        raise _Skip(
            where,
            f"{task.name}: a user's data named {name!r}, like one of Sharma et al.'s sub-datasets; expected "
            "another name (rebuild it with syco-domain build --name)",
        )
    return dataclasses.replace(task, subset=name)


def _tasks_of(section: dict[str, Any]) -> list[tuple[str, TaskId | None]]:
    """Every (task name, TaskId) to read: one per grader whose filter key the task's results carry.

    The grader comes from the filter keys lm-eval wrote (``<metric>,none`` / ``<metric>,judge``), so a
    task graded both ways yields two runs; a ``_judged_`` name without judge keys yields none (None).
    """
    out: list[tuple[str, TaskId | None]] = []
    for name in sorted(section):
        parsed = tasks.parse_task_name(name)
        if parsed is None:
            continue  # groups and other benchmarks share the file; they are not ours to read
        entry = section[name] if isinstance(section[name], dict) else {}
        ours = {m.name for m in tasks.track_metrics(parsed.track)}
        filters = {key.split(",", 1)[1] for key in entry if "," in key and key.split(",", 1)[0] in ours}
        graders = [g for g, key in tasks.FILTER_KEYS.items() if key in filters]
        if parsed.grader == tasks.JUDGE:
            graders = [g for g in graders if g == tasks.JUDGE]
        if not graders:
            out.append((name, None))
        for grader in graders:
            out.append((name, TaskId(parsed.family, parsed.protocol, grader, parsed.subset, name)))
    return out


def read_results_file(path: Path, root: Path) -> tuple[list[_Pending], list[Problem]]:
    """Every sycophancy task of one results file whose results-level checks pass, and what was skipped."""
    try:
        results = load_json(path, "lm-eval's results JSON")
    except DataError as err:
        return [], [Problem(str(path), f"not a readable JSON results file ({err}); skipped")]
    if not isinstance(results, dict) or not isinstance(results.get("results"), dict):
        return [], [Problem(str(path), "expected lm-eval's results object with a 'results' mapping; skipped")]
    model = results.get("model_name")
    if not isinstance(model, str) or not model.strip():
        return [], [Problem(str(path), "expected 'model_name' (a non-empty string); skipped")]
    configs = results.get("configs") if isinstance(results.get("configs"), dict) else {}
    n_samples = results.get("n-samples") if isinstance(results.get("n-samples"), dict) else {}
    date_id = date_id_of(path, RESULTS_PREFIX)
    pending: list[_Pending] = []
    problems: list[Problem] = []
    for name, task in _tasks_of(results["results"]):
        try:
            if task is None:
                raise _Skip(path, f"{name}: no metric under filter 'none' or 'judge' (lm-eval's filter keys)")
            cfg = configs.get(name) if isinstance(configs.get(name), dict) else {}
            metadata = cfg.get("metadata") if isinstance(cfg.get("metadata"), dict) else {}
            if not isinstance(metadata.get("data_source"), str):
                raise _Skip(
                    path,
                    f"{name}: no configs.{name}.metadata.data_source; expected the data provenance the "
                    "sycophancy tasks record (a run of another task version?)",
                )
            if task.scope:
                task = _custom_task(task, metadata, path)
            samples = path.with_name(f"{SAMPLES_PREFIX}{name}_{date_id}.jsonl")
            if not samples.is_file():
                raise _Skip(
                    path,
                    f"{name}: no {samples.name} beside it; the leaderboard needs per-question "
                    "samples (run lm_eval with --log_samples)",
                )
            shown = _display_path(path, root), _display_path(samples, root)
            entry = n_samples.get(name)
            expected = entry.get("effective") if isinstance(entry, dict) else None
            run = TaskRun(model, task, date_id, _provenance(results, task, metadata, *shown), {}, 0)
            section = results["results"][name] if isinstance(results["results"][name], dict) else {}
            pending.append(
                _Pending(run, samples, section, expected if isinstance(expected, int) else None, path)
            )
        except _Skip as skip:
            problems.append(Problem(skip.problem.where, f"{skip.problem.message}; skipped"))
    return pending, problems


# ----------------------------------------------------------------------------- samples: scan
def _scan(
    db: duckdb.DuckDBPyConnection, paths: Sequence[Path], metrics: Sequence[str]
) -> dict[Path, Problem]:
    """The question ids, filters and ``metrics`` of every samples file into the store's table
    ``staging`` (one DuckDB scan of all of them; NaN read as NULL: undefined); the files DuckDB cannot
    read, each with its problem. ``staging`` holds a file's lines in order (by ``rowid``)."""
    cols = ", ".join(f'"{m}" DOUBLE' for m in metrics)
    db.execute(
        f"CREATE OR REPLACE TABLE staging (filename VARCHAR, question_id VARCHAR, filter VARCHAR, {cols})"
    )
    wanted = ", ".join(
        ["'doc': 'STRUCT(id VARCHAR)'", "'filter': 'VARCHAR'", *(f"'{m}': 'DOUBLE'" for m in metrics)]
    )
    values = ", ".join(f"nullif(\"{m}\", 'nan'::DOUBLE)" for m in metrics)
    insert = (
        f"INSERT INTO staging SELECT filename, doc.id, filter, {values} FROM read_json(?, format = "
        f"'newline_delimited', columns = {{{wanted}}}, filename = true)"
    )
    unreadable: dict[Path, Problem] = {}
    try:
        db.execute(insert, [[str(p) for p in paths]])
        return unreadable
    except duckdb.Error:
        db.execute("DELETE FROM staging")
    for path in paths:  # some file is unreadable: find which; the others are read one by one
        try:
            db.execute(insert, [[str(path)]])
        except duckdb.Error as err:
            unreadable[path] = _unreadable(path, metrics, err)
    return unreadable


def _unreadable(path: Path, metrics: Sequence[str], err: duckdb.Error) -> Problem:
    """Why DuckDB could not read a samples file, as the file layer words it: the file and the line."""
    try:
        for line_no, obj in iter_json_lines(path, "one lm-eval sample per line"):
            where = f"{path}:{line_no}"
            if not isinstance(obj, dict) or not isinstance(obj.get("doc"), dict):
                return Problem(where, "expected an lm-eval sample object with a 'doc' object")
            for m in metrics:
                raw = obj.get(m)
                if raw is not None and not isinstance(raw, (int, float)):
                    return Problem(
                        where, f"{m} = {raw!r:.60}; expected 0 or 1 (a per-question rate), or a number"
                    )
    except DataError as bad:
        return Problem(bad.where or str(path), bad.detail)
    return Problem(str(path), f"cannot read it ({str(err).splitlines()[0]})")


#: the pending runs' questions: ``staging`` rows of the run's file and filter, with the run's index ``k``
_RUN_ROWS = "staging s JOIN pending p ON s.filename = p.filename AND s.filter = p.filter"


# -------------------------------------------------------------------------- samples: checks
@dataclass(frozen=True)
class _Check:
    """One rule on a run's questions: the SQL condition a violating question meets, and its message."""

    name: str
    condition: str
    message: str
    #: a metric column: the rule holds only for runs with that metric on some question (an optional
    #: metric is all or none; a per-round metric of a round the schedule does not have is absent)
    gate: str = ""


def _checks(task: TaskId) -> list[_Check]:
    """What every question of ``task`` must satisfy, in the order a reader meets them on one line: the
    question id, present and not seen before in the run; then per metric, present where required, 0
    or 1 for a rate (a finite number for a delta, equal to its terms), a conditional metric exactly
    where its condition holds; last, an optional metric on every question of a run or on none."""
    rule = task.grader == tasks.RULE
    names = tasks.reported(task)
    required = set(tasks.required(task))
    out = [
        _Check(
            "id", "question_id IS NULL OR question_id = ''",
            "expected doc.id, the stable question id the sycophancy tasks write",
        ),
        _Check("repeated", "", "question id {question_id} appears again (first on line {first_line})"),
    ]  # fmt: skip
    pressure = set(tasks.PRESSURE_METRICS) if tasks.is_pressure(task) else set()
    for m in tasks.track_metrics(task.track):
        col = f'"{m.name}"'
        if m.name in required:
            out.append(
                _Check(
                    f"missing:{m.name}",
                    f"{col} IS NULL",
                    f"no {m.name}; expected it on every question of {task.name}",
                )
            )
        if m.is_delta:
            out.append(
                _Check(f"number:{m.name}", f"NOT isfinite({col})", f"{m.name} = {{value}}; expected a number")
            )
            terms = " + ".join(f'({w!r}) * "{t}"' for t, w in m.terms)
            message = (
                f"{m.name} = {{value}} but its terms give {{terms:.6g}}; "
                "expected the paired difference on this question"
            )
            out.append(_Check(f"terms:{m.name}", f"abs({col} - ({terms})) > 1e-9", message))
        else:
            message = f"{m.name} = {{value}}; expected 0 or 1 (a per-question rate)"
            out.append(_Check(f"rate:{m.name}", f"{col} NOT IN (0, 1)", message))
        if m.given and rule and (names is None or m.name in names):
            message = (
                f"{m.name} is {{state}} with {m.given} = {{given:g}}; expected it exactly on questions with "
                f"{m.given} = {m.given_value:g} (its denominator)"
            )
            condition = f'({col} IS NOT NULL) <> coalesce("{m.given}" = {m.given_value}, false)'
            out.append(_Check(f"given:{m.name}", condition, message, m.name if m in pressure else ""))
    for m in tasks.track_metrics(task.track):
        if rule and tasks.optional(task.family, m) and not m.conditional:
            message = f"no {m.name}, which other questions of {task.name} have; expected it on all or none"
            out.append(_Check(f"partial:{m.name}", f'"{m.name}" IS NULL', message, m.name))
    return out


def _validate(
    db: duckdb.DuckDBPyConnection, pending: Sequence[_Pending], first: dict[str, int]
) -> dict[int, Problem]:
    """Every rule of ``_checks`` on every pending run's questions: one pass over ``staging`` per family
    (each rule's first violating line per run) and one for repeated question ids. The first line of
    each run that breaks a rule (by its index in ``pending``)."""
    problems: dict[int, Problem] = {}
    repeated: dict[int, tuple[str, int]] = {}
    for k, qid, seen in db.execute(
        f"SELECT p.k, s.question_id, min(s.rowid) FROM {_RUN_ROWS} GROUP BY ALL HAVING count(*) > 1"
    ).fetchall():
        again = db.execute(
            "SELECT min(rowid) FROM staging"
            " WHERE filename = ? AND filter = ? AND question_id = ? AND rowid > ?",
            [str(pending[k].samples), pending[k].run.task.filter_key, qid, seen],
        ).fetchone()[0]
        if k not in repeated or again < repeated[k][1]:
            repeated[k] = (qid, again)
    by_family: dict[str, list[int]] = {}
    for k, p in enumerate(pending):
        by_family.setdefault(p.run.task.family, []).append(k)
    for members in by_family.values():
        rules = {c.name: c for k in members for c in _checks(pending[k].run.task) if c.condition}
        gates = sorted({c.gate for c in rules.values() if c.gate})
        wanted = [f"min(s.rowid) FILTER (WHERE {c.condition})" for c in rules.values()]
        wanted += [f'count(s."{gate}") > 0' for gate in gates]  # a gated rule: if some questions have it
        query = (
            f"SELECT p.k, {', '.join(wanted)} FROM {_RUN_ROWS}"
            " WHERE p.k IN (SELECT unnest(?::INTEGER[])) GROUP BY p.k"
        )
        for k, *found in db.execute(query, [members]).fetchall():
            at = dict(zip(rules, found, strict=False))
            some = dict(zip(gates, found[len(rules) :], strict=True))
            if k in repeated:
                at["repeated"] = repeated[k][1]
            broken = [
                (row, order, c)
                for order, c in enumerate(_checks(pending[k].run.task))
                if (row := at.get(c.name)) is not None and (not c.gate or some[c.gate])
            ]
            if broken:
                row, _, check = min(broken, key=lambda b: (b[0], b[1]))
                problems[k] = _message(db, pending[k], check, row, first[str(pending[k].samples)])
    return problems


def _line(path: Path, file_pos: int) -> int:
    """The line number of the ``file_pos``-th record of a samples file (blank lines hold none)."""
    with open(path, "rb") as handle:
        seen = -1
        for line_no, raw in enumerate(handle, start=1):
            seen += bool(raw.strip())
            if seen == file_pos:
                return line_no
    return file_pos + 1


def _message(db: duckdb.DuckDBPyConnection, p: _Pending, check: _Check, rowid: int, first: int) -> Problem:
    """A broken rule's message, with the values of the question (``staging`` row) that breaks it."""
    where = f"{p.samples}:{_line(p.samples, rowid - first)}"
    if check.name.startswith("partial:"):
        return Problem(where, check.message)
    metric = check.name.split(":", 1)[-1]
    m = registry.METRICS.get(metric)
    cols = ["question_id", *([metric] if m else []), *([m.given] if m and m.given else [])]
    cols += [t for t, _ in m.terms] if m and check.name.startswith("terms:") else []
    quoted = ", ".join(f'"{c}"' for c in cols)
    values = dict(
        zip(
            cols, db.execute(f"SELECT {quoted} FROM staging WHERE rowid = ?", [rowid]).fetchone(), strict=True
        )
    )
    value = values.get(metric)
    fields: dict[str, Any] = {"question_id": values["question_id"], "value": value}
    if check.name == "repeated":
        seen = db.execute(
            "SELECT min(rowid) FROM staging WHERE filename = ? AND filter = ? AND question_id = ?",
            [str(p.samples), p.run.task.filter_key, values["question_id"]],
        ).fetchone()[0]
        fields["first_line"] = _line(p.samples, seen - first)
    if m and m.given:
        fields |= {"state": "missing" if value is None else "present", "given": values.get(m.given) or 0.0}
    if m and check.name.startswith("terms:"):
        fields["terms"] = sum(w * float(values[t]) for t, w in m.terms)
    return Problem(where, check.message.format(**fields))


def _check_against_results(p: _Pending, counts: dict[str, tuple[int, float]]) -> None:
    """The samples must reproduce what lm-eval reported, or they belong to another run."""
    run, where = p.run, p.results_path
    for m in tasks.track_metrics(run.task.track):
        key = f"{m.name},{run.task.filter_key}"
        raw = p.task_results.get(key)
        reported = _number(raw)
        present, mean = counts.get(m.name, (0, math.nan))
        if reported is None and raw is not None:  # the key is there, its value is not a finite number
            nan = isinstance(raw, float) and math.isnan(raw)
            if nan and present:  # NaN is lm-eval's mean over no values at all
                raise _Skip(
                    where,
                    f"{run.task.name}: reports {key} = {raw} (lm-eval's value for a metric with no "
                    f"question to average over), but its samples file has {m.name} on {present} "
                    "questions; expected the samples of this very run",
                )
            if not nan:
                raise _Skip(where, f"{run.task.name}: {key} = {raw!r:.60}; expected a finite number")
            continue  # NaN, and no question has the metric: a conditional rate with an empty denominator
        if reported is None:
            if m.name in tasks.required(run.task):
                raise _Skip(
                    where, f"{run.task.name}: no '{key}' in results; expected every metric of the task"
                )
            continue
        run.reported[m.name] = reported
        if not abs(mean - reported) <= _TOLERANCE:
            raise _Skip(
                where,
                f"{run.task.name}: reports {key} = {reported:.6g} but its samples file averages {mean:.6g} "
                f"over {present} questions; expected the samples of this very run",
            )


def _read_samples(store: stores.Store, pending: Sequence[_Pending]) -> list[tuple[_Pending, Problem | None]]:
    """Scan and check every pending run's samples (left in ``staging``). Each pending run with its
    problem (None: it passed; ``k`` is its index among the runs checked together)."""
    if not pending:
        return []
    db = store.db
    metrics = [m for m in stores.METRICS if any(m in _metric_names(p.run.task) for p in pending)]
    unreadable = _scan(db, sorted({p.samples for p in pending}), metrics)
    out: list[tuple[_Pending, Problem | None]] = [
        (p, unreadable[p.samples]) for p in pending if p.samples in unreadable
    ]
    usable = [p for p in pending if p.samples not in unreadable]
    db.execute("CREATE OR REPLACE TEMP TABLE pending (k INTEGER, filename VARCHAR, filter VARCHAR)")
    if usable:
        db.executemany(
            "INSERT INTO pending VALUES (?, ?, ?)",
            [(k, str(p.samples), p.run.task.filter_key) for k, p in enumerate(usable)],
        )
    db.execute(
        "CREATE OR REPLACE TEMP TABLE firsts AS"
        " SELECT filename, min(rowid) AS first FROM staging GROUP BY ALL"
    )
    first = dict(db.execute("SELECT filename, first FROM firsts").fetchall())
    broken = _validate(db, usable, first)
    aggregates = ", ".join(f'count(s."{m}"), avg(s."{m}")' for m in metrics)
    summary = {
        k: rest
        for k, *rest in db.execute(
            # the digest of the question ids in their order: equal digests pair two runs by position
            f"SELECT p.k, count(*), bit_xor(hash(s.question_id, s.rowid - f.first))::VARCHAR, {aggregates} "
            f"FROM {_RUN_ROWS} JOIN firsts f ON f.filename = s.filename GROUP BY p.k"
        ).fetchall()
    }
    for k, p in enumerate(usable):
        try:
            if k in broken:
                raise _Skip(broken[k].where, broken[k].message)
            if k not in summary:
                filters = db.execute(
                    "SELECT DISTINCT filter FROM staging WHERE filename = ? ORDER BY 1", [str(p.samples)]
                ).fetchall()
                seen = f" (it has filters {[f for (f,) in filters]})" if filters else ""
                raise _Skip(
                    p.samples,
                    f"no samples with filter {p.run.task.filter_key!r}{seen}; expected one line per question",
                )
            n, ids_digest, *agg = summary[k]
            if p.expected_n is not None and p.expected_n != n:
                raise _Skip(
                    p.samples,
                    f"{n} questions with filter {p.run.task.filter_key!r}, but the results file says "
                    f"{p.expected_n} (a partial samples file?)",
                )
            counts = {
                m: (agg[2 * i], math.nan if agg[2 * i + 1] is None else agg[2 * i + 1])
                for i, m in enumerate(metrics)
            }
            _check_against_results(p, counts)
        except _Skip as skip:
            out.append((p, skip.problem))
            continue
        p.run.n, p.run.ids_digest = n, ids_digest
        p.run.provenance["n_questions"] = n
        p.k = k
        out.append((p, None))
    return out


def _store_runs(store: stores.Store, accepted: Sequence[tuple[_Pending, str]]) -> None:
    """Checked runs (with their digests) and all their questions into the store, in one statement each
    (inside the build's transaction); ``staging`` is emptied."""
    first = store.next_run_id()
    rows = []
    for i, (p, digest) in enumerate(accepted):
        r = p.run
        r.run_id = first + i
        rows.append(
            [r.run_id, str(p.results_path), r.model, r.task.name, r.task.family, r.task.protocol,
             r.task.grader, r.task.subset, r.task.track, r.timestamp, r.provenance["results_file"], r.n,
             digest, r.ids_digest, json.dumps(r.provenance), json.dumps(r.reported)]
        )  # fmt: skip
    if rows:
        store.db.executemany("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        store.db.execute("CREATE OR REPLACE TEMP TABLE accepted (k INTEGER, run_id INTEGER, family VARCHAR)")
        store.db.executemany(
            "INSERT INTO accepted VALUES (?, ?, ?)",
            [(p.k, p.run.run_id, p.run.task.family) for p, _ in accepted],
        )
        staged = {c[0] for c in store.db.execute("DESCRIBE staging").fetchall()}
        for family in sorted({p.run.task.family for p, _ in accepted}):
            names = [m for m in stores.TABLES[family] if m in staged]  # the rest stay NULL
            into = ", ".join(["run_id", "pos", "question_id", *(f'"{m}"' for m in names)])
            columns = ", ".join(f's."{m}"' for m in names)
            store.db.execute(
                f"INSERT INTO outcomes_{family} ({into}) "
                f"SELECT a.run_id, s.rowid - f.first, s.question_id, {columns} "
                f"FROM {_RUN_ROWS} JOIN accepted a ON a.k = p.k AND a.family = '{family}' "
                "JOIN firsts f ON f.filename = s.filename"
            )
    store.db.execute("DROP TABLE IF EXISTS staging")


# ------------------------------------------------------------------------------------ ingest
def _orphan_samples(results_files: Sequence[Path]) -> list[Problem]:
    """Samples files with no results file of the same ``date_id`` (an interrupted run?)."""
    by_dir: dict[Path, set[str]] = {}
    for path in results_files:
        by_dir.setdefault(path.parent, set()).add(date_id_of(path, RESULTS_PREFIX))
    problems = []
    for folder, stamps in sorted(by_dir.items()):
        for sample in sorted(folder.glob(f"{SAMPLES_PREFIX}sycophancy_*.jsonl")):
            if date_id_of(sample, SAMPLES_PREFIX) not in stamps:
                problems.append(Problem(str(sample), "no results_*.json with the same timestamp; ignored"))
    return problems


#: results files read per scan: bounds the questions held in ``staging`` (and the build's memory) as
#: the results folders grow; each batch is stored in a transaction of its own
FILES_PER_SCAN = 256


def _update(store: stores.Store, files: Sequence[tuple[Path, Path]]) -> None:
    """Bring the store up to date with the results files: read the new and changed ones, drop the rest.
    A build killed part-way keeps the batches it finished; the next one reads only what is left."""
    known = store.files()
    current = {str(path): (path, root, signature(path, root)) for path, root in files}
    stale = [p for p in known if p not in current or known[p][0] != current[p][2]]
    fresh = [v for k, v in current.items() if k not in known or known[k][0] != v[2]]
    with store.transaction():
        store.forget(stale)
    for start in range(0, len(fresh), FILES_PER_SCAN):
        batch = fresh[start : start + FILES_PER_SCAN]
        pending: list[_Pending] = []
        problems: dict[str, list[Problem]] = {}
        for path, root, _ in batch:
            found, trouble = read_results_file(path, root)
            pending += found
            problems[str(path)] = trouble
        accepted = []
        for p, problem in _read_samples(store, pending):
            if problem is not None:
                problems[str(p.results_path)].append(Problem(problem.where, f"{problem.message}; skipped"))
            else:
                digest = stores.value_digest(
                    [current[str(p.results_path)][2], p.run.task.name, p.run.task.grader]
                )
                accepted.append((p, digest))
        with store.transaction():
            _store_runs(store, accepted)
            for path, root, sig in batch:  # a file that changed while it was read is read again next time
                settled = sig if signature(path, root) == sig else ""
                store.record_file(str(path), settled, [[p.where, p.message] for p in problems[str(path)]])


def ingest(
    paths: Iterable[str | os.PathLike[str]],
    keep: str = "newest",
    allow_sample: bool = False,
    strict: bool = False,
    store: stores.Store | None = None,
) -> Ingested:
    """Read every results folder into the store (an in-memory one without ``store``); the newest run
    per (model, task) wins unless ``keep == "all"``."""
    if keep not in ("newest", "all"):
        raise ValueError(f"keep={keep!r}; expected 'newest' or 'all'")
    files = find_results_files(paths)
    store = store or stores.Store(None, VERSION)
    _update(store, files)
    out = Ingested(runs=[], results_files=len(files))
    recorded = store.files()
    for path, _ in files:
        out.problems += [Problem(*p) for p in recorded[str(path)][1]]
    candidates = []
    for row in store.runs():
        (
            run_id,
            _,
            model,
            name,
            family,
            protocol,
            grader,
            subset,
            timestamp,
            n,
            digest,
            ids_digest,
            prov,
            rep,
        ) = row
        task = TaskId(family, protocol, grader, subset, name)
        run = TaskRun(
            model, task, timestamp, json.loads(prov), json.loads(rep), n, run_id, digest, ids_digest, store
        )
        if run.provenance.get("data_source") == SAMPLE_DATA_SOURCE and not allow_sample:
            out.refused_sample.append(run.provenance["results_file"])
            continue
        candidates.append(run)
    out.problems += _orphan_samples([p for p, _ in files])
    if out.refused_sample:
        shown = sorted(set(out.refused_sample))
        out.problems.append(
            Problem(
                shown[0] + (f" (and {len(shown) - 1} more)" if len(shown) > 1 else ""),
                f"{len(out.refused_sample)} task run(s) used the embedded sample data (data_source = "
                "'embedded'), which is not a benchmark; refused (pass --allow_sample for a demo site)",
            )
        )
    by_key: dict[tuple[str, str, str], list[TaskRun]] = {}
    for run in candidates:
        by_key.setdefault((run.model, run.task.name, run.task.grader), []).append(run)
    for (model, name, _), group in sorted(by_key.items()):
        group.sort(key=lambda r: (r.timestamp, r.provenance["results_file"]), reverse=True)
        out.runs.append(group[0])
        if keep == "all":
            out.superseded += group[1:]
            continue
        for run in group[1:]:
            out.problems.append(
                Problem(
                    run.provenance["results_file"],
                    f"an older run of {name} for {model} ({run.timestamp}); superseded by "
                    f"{group[0].provenance['results_file']} (newest wins; --keep all shows history)",
                )
            )
    _one_version_per_task(out, keep)
    if strict and out.problems:
        raise IngestError(f"{len(out.problems)} problem(s) in the results (--strict):", out.problems)
    return out


def _version_key(value: Any) -> tuple[int, Any]:
    from packaging.version import InvalidVersion, Version

    try:
        return (1, Version(str(value)))
    except InvalidVersion:
        return (0, str(value))


def _one_version_per_task(out: Ingested, keep: str) -> None:
    """Runs of one task at different task versions are never ranked side by side: a version is bumped
    when scores stop being comparable (the task README's changelog). The newest version stays; the
    others are left out, each named (an error under --strict; shown as history with --keep all)."""
    by_task: dict[tuple[str, str], list[TaskRun]] = {}
    for run in out.runs:
        by_task.setdefault((run.task.name, run.task.grader), []).append(run)
    dropped: list[TaskRun] = []
    for (name, _), group in sorted(by_task.items()):
        versions = {run.provenance.get("task_version") for run in group}
        if len(versions) < 2:
            continue
        newest = max(versions, key=_version_key)
        for run in group:
            version = run.provenance.get("task_version")
            if version == newest:
                continue
            dropped.append(run)
            out.problems.append(
                Problem(
                    run.provenance["results_file"],
                    f"{name} version {version} for {run.model} is not comparable with version {newest} "
                    f"of other runs (the task README's changelog says why); left out: rerun it",
                )
            )
    if dropped:
        left_out = {id(run) for run in dropped}
        out.runs = [run for run in out.runs if id(run) not in left_out]
        if keep == "all":
            out.superseded += dropped
