"""Read lm-eval ``--output_path`` folders: results files, their samples files, validation, provenance.

lm-eval writes ``<output_path>/<model_name_sanitized>/results_<date_id>.json`` and, with
``--log_samples``, one ``samples_<task>_<date_id>.jsonl`` per task beside it (same ``date_id``). The
per-question values in the samples files are what the statistics need; the results file holds the
provenance and the aggregate lm-eval reported, which each samples file must reproduce.

Bad input never stops the build: a file or task that cannot be used is skipped with a warning naming
the file, the line and what was expected (``strict=True`` turns warnings into one error). For repeated
runs of the same model and task the newest ``date_id`` wins; ``keep="all"`` keeps the older ones as
history.

Speed. A samples line is mostly prompts and responses the leaderboard never uses. Lines in lm-eval's
own layout (``json.dumps`` of its sample dict: ``doc_id``, ``doc`` starting with ``id``, ..., ``filter``,
``metrics``, the three hashes, then the metric values) are read by ``_fast_samples``: two anchored
regular expressions per line take the question id and the tail, the rest of the line is only checked
to be UTF-8, and every check of ``_exact_samples`` runs on whole columns at once. Any file it does not
recognise in full, or in which any check fails, is read again by ``_exact_samples`` (``json`` line by
line), so errors and accepted values are the same either way (``tests/test_leaderboard_ingest.py``
runs both on every bad input). With a ``BuildCache``, a results file whose files have not changed is
not read at all (see ``cache``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sycophancy_eval_kit.core import files as file_layer
from sycophancy_eval_kit.core import registry, task_names
from sycophancy_eval_kit.core.files import DataError, iter_json_lines, load_json
from sycophancy_eval_kit.leaderboard import cache as build_cache
from sycophancy_eval_kit.leaderboard import tasks
from sycophancy_eval_kit.leaderboard.tasks import Metric, TaskId

RESULTS_PREFIX = "results_"
SAMPLES_PREFIX = "samples_"
SAMPLE_DATA_SOURCE = "embedded"
INGEST_INDEX = "ingest.json"
#: reported aggregate vs mean of the samples: lm-eval writes both from the same floats.
_TOLERANCE = 1e-6


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


Arrays = tuple[tuple[str, ...], dict[str, np.ndarray]]


@dataclass(eq=False)
class TaskRun:
    """One task of one model from one results file, with its per-question values.

    ``ids`` and ``values`` are read from the build cache on first use when the run came from it;
    ``digest`` is the content digest of both (None without a cache), what cached statistics key on.
    """

    model: str
    task: TaskId
    timestamp: str
    provenance: dict[str, Any]
    reported: dict[str, float]
    n: int
    digest: str | None = None
    ids_digest: str | None = None
    _load: Callable[[], Arrays] | None = field(default=None, repr=False)
    _arrays: Arrays | None = field(default=None, repr=False)

    def _loaded(self) -> Arrays:
        if self._arrays is None:
            assert self._load is not None
            self._arrays = self._load()
        return self._arrays

    @property
    def ids(self) -> tuple[str, ...]:
        return self._loaded()[0]

    @property
    def values(self) -> dict[str, np.ndarray]:
        return self._loaded()[1]


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
        for folder, dirs, files in os.walk(root, followlinks=False):
            dirs.sort()
            for name in sorted(files):
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


# ------------------------------------------------------------------------------------- reading
def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _check_row(where: str, task: TaskId, row: list[float], col: dict[str, int], conditional: list) -> None:
    """Consistency of one question's values: stored deltas match their terms (the registry's); a
    conditional metric exists exactly where its condition holds (``conditional``: the rule-graded
    task's own, e.g. forced_flip_rate iff the first answer is right)."""
    for m in tasks.METRICS[task.family]:
        value = row[col[m.name]]
        if m.is_delta and not math.isnan(value):
            expect = sum(w * row[col[t]] for t, w in m.terms)
            if abs(value - expect) > 1e-9:
                raise _Skip(
                    where,
                    f"{m.name} = {value} but its terms give {expect:.6g}; expected the paired "
                    "difference on this question",
                )
    for m in conditional:
        value = row[col[m.name]]
        if (not math.isnan(value)) != (row[col[m.given]] == m.given_value):
            state = "present" if not math.isnan(value) else "missing"
            raise _Skip(
                where,
                f"{m.name} is {state} with {m.given} = {row[col[m.given]]:g}; expected it exactly on "
                f"questions with {m.given} = {m.given_value:g} (its denominator)",
            )


def read_samples(path: Path, task: TaskId) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    """Question ids and per-question metric values of ``task`` from a samples file.

    Only lines of the task's filter are read (``none``, or ``judge`` for judged tasks). Rates must be 0
    or 1; stored deltas must equal their terms on the same question; question ids must be unique.
    """
    ids, matrix = _samples_matrix(path, task)
    return ids, _columns(task, matrix)


def _columns(task: TaskId, matrix: np.ndarray) -> dict[str, np.ndarray]:
    return {m.name: matrix[i] for i, m in enumerate(tasks.METRICS[task.family])}


def _samples_matrix(path: Path, task: TaskId) -> tuple[tuple[str, ...], np.ndarray]:
    """``(ids, values)`` with one row of ``values`` per metric of the family, one column per question."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise _Skip(path, f"cannot read it ({err.strerror})") from err
    fast = _fast_samples(data, task)
    return fast if fast is not None else _exact_samples(path, task)


# lm-eval's sample line: ``json.dumps(sample, ensure_ascii=False)`` of a dict whose keys come in this order.
_HEAD = re.compile(rb'\{"doc_id": (?:0|[1-9][0-9]*), "doc": \{"id": "([^"\\\x00-\x1f]+)"')
_TAIL_START = b', "filter": "'
_STRING = rb'[^"\\\x00-\x1f]*'  # a JSON string without escapes
_SKIPPED = rb'[^"]*'  # a string the leaderboard does not use (hashes): found, not checked
_TAIL = re.compile(
    _TAIL_START + b"(" + _STRING + rb')", "metrics": \[[^\]]*\], "doc_hash": "' + _SKIPPED
    + b'", "prompt_hash": "' + _SKIPPED + b'", "target_hash": "' + _SKIPPED + b'"'
    + rb'((?:, "[A-Za-z0-9_]+": [^,}"\[\]{]+)*)\}\Z'
)  # fmt: skip


def _values_of(task: TaskId, tail: bytes) -> list[float] | None:
    """The family's metric values in one line's tail (``, "name": value, ...``), read by ``json`` as
    the exact reader reads the whole line (NaN or missing: undefined); None where it would refuse one."""
    try:
        found = json.loads(b"{" + tail[2:] + b"}")
    except ValueError:
        return None
    out = []
    for m in tasks.METRICS[task.family]:
        raw = found.get(m.name, math.nan)
        value = math.nan if isinstance(raw, float) and math.isnan(raw) else _number(raw)
        if value is None:
            return None
        out.append(value)
    return out


def _fast_samples(data: bytes, task: TaskId) -> tuple[tuple[str, ...], np.ndarray] | None:
    """``_exact_samples`` for files in lm-eval's own layout, or None to leave a file to it.

    None whenever any line is laid out otherwise or any check would fail, so the exact reader
    produces the message; when a file is accepted, its ids and values are the exact reader's. A file
    holds few distinct value tails (0, 1 or NaN for a handful of metrics), so each distinct one is
    read once, by ``json``.
    """
    if not data.endswith(b"\n") or data.startswith(b"\xef\xbb\xbf"):
        return None  # a truncated last line, or a byte-order mark: the exact reader says which
    if not data.isascii():  # ASCII is UTF-8; anything else must decode, as the exact reader decodes it
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    lines = data.split(b"\n")
    lines.pop()
    head, tail = _HEAD.match, _TAIL.match
    heads = [head(line) for line in lines]
    tails = [tail(line, line.rfind(_TAIL_START)) for line in lines]
    if not lines or None in heads or None in tails:
        return None
    key = task.filter_key.encode()
    chosen = [i for i, t in enumerate(tails) if t[1] == key]
    if not chosen:
        return None
    ids = tuple(b"\n".join([heads[i][1] for i in chosen]).decode("utf-8").split("\n"))
    if len(set(ids)) != len(ids):
        return None
    values = [tails[i][2] for i in chosen]
    distinct = list(set(values))
    table = [_values_of(task, v) for v in distinct]
    if None in table:
        return None
    index = {v: i for i, v in enumerate(distinct)}
    codes = np.fromiter(map(index.__getitem__, values), dtype=np.intp, count=len(values))
    matrix = np.ascontiguousarray(np.array(table, dtype=float).reshape(len(distinct), -1).T[:, codes])
    return (tuple(map(sys.intern, ids)), matrix) if _columns_valid(task, matrix) else None


def _rules(task: TaskId) -> tuple[tuple[str, ...], list[Metric], list[Metric]]:
    """What the questions of ``task`` must satisfy, for both readers: the metrics every question defines
    (none for the judge's tasks, which leave out what it could not grade), the conditional metrics
    defined exactly where their condition holds (the rule-graded task's own, e.g. forced_flip_rate iff
    the first answer is right), and the optional ones, on every question or on none."""
    family_metrics = tasks.METRICS[task.family]
    rule = task.grader == tasks.RULE
    names = tasks.reported(task)
    conditional = [m for m in family_metrics if m.given and rule and (names is None or m.name in names)]
    all_or_none = [m for m in family_metrics if rule and tasks.optional(task.family, m) and not m.conditional]
    return tasks.required(task), conditional, all_or_none


def _columns_valid(task: TaskId, matrix: np.ndarray) -> bool:
    """Every check ``_exact_samples`` makes per question and per file, on whole columns."""
    metrics = tasks.METRICS[task.family]
    row = {m.name: i for i, m in enumerate(metrics)}
    required, conditional, all_or_none = _rules(task)
    missing = np.isnan(matrix)
    for m in metrics:
        values, absent = matrix[row[m.name]], missing[row[m.name]]
        if m.name in required and absent.any():
            return False
        if not m.is_delta and not np.all(absent | (values == 0.0) | (values == 1.0)):
            return False
        if m.is_delta:
            expect = np.zeros_like(values)
            for term, weight in m.terms:  # the exact reader's sum, in the same order (same floats)
                expect = expect + weight * matrix[row[term]]
            if np.any(np.abs(values - expect) > 1e-9):  # NaN compares False there too
                return False
    for m in conditional:
        if np.any(~missing[row[m.name]] != (matrix[row[m.given]] == m.given_value)):
            return False
    return not any(0 < missing[row[m.name]].sum() < matrix.shape[1] for m in all_or_none)


def _exact_samples(path: Path, task: TaskId) -> tuple[tuple[str, ...], np.ndarray]:
    """``read_samples`` through ``json``, line by line: the reference the fast path must agree with."""
    family_metrics = tasks.METRICS[task.family]
    required, conditional, all_or_none = _rules(task)
    ids: list[str] = []
    first_line: dict[str, int] = {}
    rows: list[list[float]] = []
    names = [m.name for m in family_metrics]
    col = {name: i for i, name in enumerate(names)}
    other_filters: set[str] = set()
    lines = iter_json_lines(path, "one lm-eval sample per line")
    try:
        for line_no, obj in lines:
            where = f"{path}:{line_no}"
            if not isinstance(obj, dict) or not isinstance(obj.get("doc"), dict):
                raise _Skip(where, "expected an lm-eval sample object with a 'doc' object")
            filt = obj.get("filter")
            if not isinstance(filt, str):
                raise _Skip(where, "expected a 'filter' string (lm-eval writes one per sample)")
            if filt != task.filter_key:
                other_filters.add(filt)
                continue
            qid = obj["doc"].get("id")
            if not isinstance(qid, str) or not qid:
                raise _Skip(where, "expected doc.id, the stable question id the sycophancy tasks write")
            if qid in first_line:
                raise _Skip(where, f"question id {qid} appears again (first on line {first_line[qid]})")
            first_line[qid] = line_no
            row: list[float] = []
            for m in family_metrics:
                raw = obj.get(m.name)
                if m.name not in obj or (isinstance(raw, float) and math.isnan(raw)):  # NaN: undefined
                    if m.name in required:
                        raise _Skip(where, f"no {m.name}; expected it on every question of {task.name}")
                    row.append(math.nan)  # a conditional metric, or a delta the leaderboard recomputes
                    continue
                value = _number(raw)
                if value is None or (not m.is_delta and value not in (0.0, 1.0)):
                    need = "a number" if m.is_delta else "0 or 1 (a per-question rate)"
                    raise _Skip(where, f"{m.name} = {raw!r}; expected {need}")
                row.append(value)
            _check_row(where, task, row, col, conditional)
            ids.append(sys.intern(qid))
            rows.append(row)
    except DataError as err:  # unreadable bytes or JSON: the message already names file and line
        raise _Skip(err.where or path, err.detail) from err
    for m in all_or_none:
        have = [i for i, row in enumerate(rows) if not math.isnan(row[col[m.name]])]
        if have and len(have) != len(rows):
            missing = next(i for i, row in enumerate(rows) if math.isnan(row[col[m.name]]))
            raise _Skip(
                f"{path}:{first_line[ids[missing]]}",
                f"no {m.name}, which other questions of {task.name} have; expected it on all or none",
            )
    if not ids:
        seen = f" (it has filters {sorted(other_filters)})" if other_filters else ""
        raise _Skip(path, f"no samples with filter {task.filter_key!r}{seen}; expected one line per question")
    return tuple(ids), np.ascontiguousarray(np.asarray(rows, dtype=float).reshape(len(rows), len(names)).T)


def _iso_date(value: Any) -> str | None:
    number = _number(value)
    if number is None:
        return None
    return datetime.fromtimestamp(number, tz=UTC).isoformat(timespec="seconds")


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


def _check_against_results(run: TaskRun, task_results: dict[str, Any], where: Path) -> None:
    """The samples must reproduce what lm-eval reported, or they belong to another run."""
    for m in tasks.METRICS[run.task.family]:
        key = f"{m.name},{run.task.filter_key}"
        raw = task_results.get(key)
        reported = _number(raw)
        values = run.values[m.name]
        present = values[~np.isnan(values)]
        if reported is None and raw is not None:  # the key is there, its value is not a finite number
            nan = isinstance(raw, float) and math.isnan(raw)
            if nan and present.size:  # NaN is lm-eval's mean over no values at all
                raise _Skip(
                    where,
                    f"{run.task.name}: reports {key} = {raw} (lm-eval's value for a metric with no "
                    f"question to average over), but its samples file has {m.name} on {present.size} "
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
        mean = float(present.mean()) if present.size else math.nan
        if not abs(mean - reported) <= _TOLERANCE:
            raise _Skip(
                where,
                f"{run.task.name}: reports {key} = {reported:.6g} but its samples file averages {mean:.6g} "
                f"over {present.size} questions; expected the samples of this very run",
            )


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
        ours = {m.name for m in tasks.METRICS[parsed.family]}
        filters = {key.split(",", 1)[1] for key in entry if "," in key and key.split(",", 1)[0] in ours}
        graders = [g for g, key in tasks.FILTER_KEYS.items() if key in filters]
        if parsed.grader == tasks.JUDGE:
            graders = [g for g in graders if g == tasks.JUDGE]
        if not graders:
            out.append((name, None))
        for grader in graders:
            out.append((name, TaskId(parsed.family, parsed.protocol, grader, parsed.subset, name)))
    return out


def read_results_file(
    path: Path, root: Path, cache: build_cache.BuildCache | None = None
) -> tuple[list[TaskRun], list[Problem]]:
    """Every sycophancy task of one results file that passes validation, and what was skipped.

    With a ``cache``, each run's values are stored in it and the run carries their digest.
    """
    problems: list[Problem] = []
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
    runs: list[TaskRun] = []
    for name, task in _tasks_of(results["results"]):
        task_results = results["results"][name]
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
            samples_path = path.with_name(f"{SAMPLES_PREFIX}{name}_{date_id}.jsonl")
            if not samples_path.is_file():
                raise _Skip(
                    path,
                    f"{name}: no {samples_path.name} beside it; the leaderboard needs per-question "
                    "samples (run lm_eval with --log_samples)",
                )
            ids, matrix = _samples_matrix(samples_path, task)
            ids_key = digest = None
            if cache is not None:
                ids_key, digest, ids = cache.put_run(ids, matrix)
            run = TaskRun(
                model=model,
                task=task,
                timestamp=date_id,
                provenance=_provenance(
                    results, task, metadata, _display_path(path, root), _display_path(samples_path, root)
                ),
                reported={},
                n=len(ids),
                digest=digest,
                ids_digest=ids_key,
                _arrays=(ids, _columns(task, matrix)),
            )
            run.provenance["n_questions"] = run.n
            expected_n = (
                n_samples.get(name, {}).get("effective") if isinstance(n_samples.get(name), dict) else None
            )
            if isinstance(expected_n, int) and expected_n != run.n:
                raise _Skip(
                    samples_path,
                    f"{run.n} questions with filter {task.filter_key!r}, but the results file says "
                    f"{expected_n} (a partial samples file?)",
                )
            _check_against_results(run, task_results, path)
            runs.append(run)
        except _Skip as skip:
            problems.append(Problem(skip.problem.where, f"{skip.problem.message}; skipped"))
    return runs, problems


# ----------------------------------------------------------------------------------- the cache
#: what an ingested run is a function of besides its files: this reader and the definitions it checks.
_CODE = build_cache.code_digest(
    Path(__file__),
    Path(tasks.__file__),
    Path(registry.__file__),
    Path(build_cache.__file__),
    Path(file_layer.__file__),
)


def _entry_key(path: Path, root: Path) -> str:
    """Shown paths and messages depend on how the file was named and what it is shown relative to."""
    return build_cache.value_digest([str(path), str(root), str(root.resolve())])


def _signatures(path: Path) -> dict[str, list[int] | None]:
    """The results file and every samples file of its ``date_id`` beside it, by name."""
    stamp = date_id_of(path, RESULTS_PREFIX)
    names = [path.name]
    try:
        with os.scandir(path.parent) as listing:
            suffix = f"_{stamp}.jsonl"
            names += sorted(
                e.name for e in listing if e.name.startswith(SAMPLES_PREFIX) and e.name.endswith(suffix)
            )
    except OSError:
        pass
    return {name: build_cache.signature(path.parent / name) for name in names}


def _run_record(run: TaskRun) -> dict[str, Any]:
    t = run.task
    return {
        "model": run.model,
        "task": [t.family, t.protocol, t.grader, t.subset, t.name],
        "timestamp": run.timestamp,
        "provenance": run.provenance,
        "reported": run.reported,
        "n": run.n,
        "ids": run.ids_digest,
        "values": run.digest,
    }


def _run_from_record(record: dict[str, Any], cache: build_cache.BuildCache | None) -> TaskRun:
    task = TaskId(*record["task"])
    rows = len(tasks.METRICS[task.family])

    def load() -> Arrays:
        assert cache is not None
        ids, matrix = cache.get_run(record["ids"], record["values"], rows)
        return ids, _columns(task, matrix)

    return TaskRun(
        model=record["model"],
        task=task,
        timestamp=record["timestamp"],
        provenance=record["provenance"],
        reported=record["reported"],
        n=record["n"],
        digest=record["values"],
        ids_digest=record["ids"],
        _load=load,
    )


def _cached(
    path: Path, root: Path, cache: build_cache.BuildCache, old: dict[str, Any]
) -> tuple[dict[str, Any], list[TaskRun], list[Problem]] | None:
    """The stored entry of a results file, while every signature matches and is settled and its
    stored values are all there; None when the file must be read."""
    entry = old.get(_entry_key(path, root))
    if not (isinstance(entry, dict) and entry.get("code") == _CODE):
        return None
    sigs = _signatures(path)
    if entry.get("signatures") != sigs or not all(
        build_cache.settled(s, entry["written"]) for s in sigs.values()
    ):
        return None
    rows = {family: len(metrics) for family, metrics in tasks.METRICS.items()}
    if not all(cache.has_run(r["ids"], r["values"], 8 * r["n"] * rows[r["task"][0]]) for r in entry["runs"]):
        return None
    runs = [_run_from_record(r, cache) for r in entry["runs"]]
    return entry, runs, [Problem(*p) for p in entry["problems"]]


Fresh = tuple[list[TaskRun], list[Problem], dict[str, Any] | None]


def _read_fresh(path: Path, root: Path, cache: build_cache.BuildCache | None) -> Fresh:
    """``read_results_file``, and its cache entry (None without a cache, or when a file changed
    while it was read: such a read is used once, never stored)."""
    sigs = _signatures(path) if cache is not None else {}
    written = build_cache.now_ns()
    runs, problems = read_results_file(path, root, cache)
    entry = None
    if cache is not None and _signatures(path) == sigs:
        entry = {
            "code": _CODE,
            "signatures": sigs,
            "written": written,
            "runs": [_run_record(r) for r in runs],
            "problems": [[p.where, p.message] for p in problems],
        }
    return runs, problems, entry


#: fewer results files to read than this are read in this process (a pool costs more than it saves).
PARALLEL_MIN = 16


def _read_in_worker(job: tuple[Path, Path, Path | None]) -> tuple[list[Any], list[Problem], Any]:
    """``_read_fresh`` in a pool worker; values travel as bytes, the ids as one string per run."""
    path, root, cache_root = job
    runs, problems, entry = _read_fresh(
        path, root, None if cache_root is None else build_cache.BuildCache(cache_root)
    )
    payload = [(_run_record(r), "\n".join(r.ids), np.stack(list(r.values.values())).tobytes()) for r in runs]
    return payload, problems, entry


def _read_all(jobs: Sequence[tuple[Path, Path]], cache: build_cache.BuildCache | None) -> list[Fresh]:
    """``_read_fresh`` of every job, in order; on every core when there are enough of them.

    Runs over the same questions share one ids tuple, whichever process read them.
    """
    workers = min(os.cpu_count() or 1, 8)
    if len(jobs) < PARALLEL_MIN or workers < 2:
        return [_read_fresh(path, root, cache) for path, root in jobs]
    shared: dict[str, tuple[str, ...]] = {}
    out: list[Fresh] = []
    context = multiprocessing.get_context("fork")  # workers inherit the imported modules
    cache_root = None if cache is None else cache.root
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for payload, problems, entry in pool.map(_read_in_worker, [(p, r, cache_root) for p, r in jobs]):
            runs = []
            for record, ids_text, raw in payload:
                ids = shared.get(ids_text)
                if ids is None:
                    ids = shared[ids_text] = tuple(map(sys.intern, ids_text.split("\n")))
                task = TaskId(*record["task"])
                matrix = np.frombuffer(raw, dtype=float).reshape(len(tasks.METRICS[task.family]), len(ids))
                run = _run_from_record(record, cache)
                run._arrays = (ids, _columns(task, matrix))
                runs.append(run)
            out.append((runs, problems, entry))
    return out


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


def ingest(
    paths: Iterable[str | os.PathLike[str]],
    keep: str = "newest",
    allow_sample: bool = False,
    strict: bool = False,
    cache: build_cache.BuildCache | None = None,
) -> Ingested:
    """Read every results folder; newest run per (model, task) wins unless ``keep == "all"``.

    With a ``cache``, results files whose files are unchanged since an earlier build are not read.
    """
    if keep not in ("newest", "all"):
        raise ValueError(f"keep={keep!r}; expected 'newest' or 'all'")
    files = find_results_files(paths)
    out = Ingested(runs=[], results_files=len(files))
    candidates: list[TaskRun] = []
    old = cache.load(INGEST_INDEX) if cache is not None else {}
    new: dict[str, Any] = {}
    read: list[tuple[list[TaskRun], list[Problem]] | None] = []
    for path, root in files:
        found = _cached(path, root, cache, old) if cache is not None else None
        if found is not None:
            new[_entry_key(path, root)] = found[0]
        read.append(found and found[1:])
    missing = [i for i, found in enumerate(read) if found is None]
    for i, (runs, problems, entry) in zip(
        missing, _read_all([files[i] for i in missing], cache), strict=True
    ):
        read[i] = (runs, problems)
        if entry is not None:
            new[_entry_key(*files[i])] = entry
    for found in read:
        assert found is not None
        runs, problems = found
        out.problems += problems
        for run in runs:
            if run.provenance.get("data_source") == SAMPLE_DATA_SOURCE and not allow_sample:
                out.refused_sample.append(run.provenance["results_file"])
                continue
            candidates.append(run)
    out.problems += _orphan_samples([p for p, _ in files])
    if cache is not None and (new != old or not cache.root.joinpath(INGEST_INDEX).is_file()):
        cache.save(INGEST_INDEX, new)
        for kind, field_name in (("ids", "ids"), ("values", "values")):
            cache.prune(kind, {r[field_name] for e in new.values() for r in e["runs"]})
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
        older = group[1:]
        if keep == "all":
            out.superseded += older
        else:
            for run in older:
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
