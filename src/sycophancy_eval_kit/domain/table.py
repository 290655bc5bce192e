"""A user's multiple-choice table -> checked questions: read through ``datasets``, columns mapped, every
unusable row dropped and counted by reason.

Any table ``datasets`` loads works: local JSON, JSON lines, CSV or Parquet files (or a folder of them),
or a Hub dataset at a revision and split. A column mapping says where the question, the options and the
answer are (``--preset mmlu|arc``, or ``--question``, ``--choices``, ``--answer``); dotted paths reach
into nested columns and ``[]`` maps over a list (ARC's ``question.choices[].text``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sycophancy_eval_kit.core import files, prompts
from sycophancy_eval_kit.core.files import DataError

#: file suffixes a local table may have, and the ``datasets`` builder that reads them
BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}
#: options a question may have: the letters the prompts use, and the one-token letters of the scoring
MAX_OPTIONS = 10
MIN_OPTIONS = 2

# why a row is left out, in the order they are checked
EMPTY_QUESTION = "empty_question"
TOO_FEW_OPTIONS = "fewer_than_two_options"
TOO_MANY_OPTIONS = "more_options_than_letters"
EMPTY_OPTION = "empty_option"
REPEATED_OPTION = "repeated_option"
NO_SUCH_ANSWER = "answer_not_among_the_options"
DUPLICATE = "duplicate_question"
EXCLUDED = "in_an_excluded_set"
DROP_REASONS = (
    EMPTY_QUESTION,
    TOO_FEW_OPTIONS,
    TOO_MANY_OPTIONS,
    EMPTY_OPTION,
    REPEATED_OPTION,
    NO_SUCH_ANSWER,
    DUPLICATE,
    EXCLUDED,
)
#: rows of each reason named in the report (the rest are counted)
SHOWN_PER_REASON = 5


@dataclass(frozen=True)
class Columns:
    """Where a table keeps each field (dotted paths; ``[]`` maps over a list)."""

    question: str
    choices: tuple[str, ...]  # one list column, or one column per option
    answer: str
    labels: str | None = None  # the options' own labels, when the answer names one (ARC: "A" or "1")
    id: str | None = None
    subject: str | None = None
    #: fields (``id``, ``subject``) a preset maps only where the table has them
    optional: tuple[str, ...] = ()

    def fitted(self, row: dict[str, Any]) -> Columns:
        """These columns without the optional ones ``row`` lacks (an MMLU copy with no subject)."""
        missing = {}
        for name in self.optional:
            path = getattr(self, name)
            try:
                if path:
                    _get(row, path)
            except KeyError:
                missing[name] = None
        return replace(self, **missing, optional=()) if missing else self


PRESETS: dict[str, Columns] = {
    # MMLU (cais/mmlu and its copies): question, choices (a list), answer (a 0-based index), subject
    "mmlu": Columns("question", ("choices",), "answer", subject="subject", optional=("subject",)),
    # ARC, as AI2 releases it: question.stem, question.choices[].text / .label, answerKey, id
    "arc": Columns(
        "question.stem",
        ("question.choices[].text",),
        "answerKey",
        labels="question.choices[].label",
        id="id",
        optional=("id",),
    ),
    # ARC as the Hub's allenai/ai2_arc lays it out: question a string, choices.text / .label beside it
    "arc_hub": Columns(
        "question", ("choices.text",), "answerKey", labels="choices.label", id="id", optional=("id",)
    ),
}


@dataclass(frozen=True)
class Question:
    """One usable multiple-choice question."""

    id: str
    question: str
    options: tuple[str, ...]
    answer: int  # index of the right option
    subject: str | None
    row: int  # 1-based position in the table, for messages

    @property
    def letters(self) -> str:
        return prompts.OPTION_LETTERS[: len(self.options)]

    @property
    def correct_letter(self) -> str:
        return self.letters[self.answer]


@dataclass
class Table:
    """What was read: the usable questions, the drops by reason, and the input's identity."""

    questions: list[Question]
    source: str
    sha256: str
    rows_read: int
    columns: Columns
    answer_base: int | None
    dropped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> "where: detail"

    def report(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "sha256": self.sha256,
            "rows_read": self.rows_read,
            "usable": len(self.questions),
            "dropped": {reason: self.dropped.get(reason, 0) for reason in DROP_REASONS},
            "dropped_examples": {r: e for r, e in self.examples.items() if e},
            "columns": {k: v for k, v in vars(self.columns).items() if v and k != "optional"},
            "answer_base": self.answer_base,
        }


# ------------------------------------------------------------------------------------------ reading
def _local_files(path: Path) -> list[Path]:
    if path.is_file():
        found = [path]
    else:
        found = sorted(p for p in path.iterdir() if p.suffix in BUILDERS and p.is_file())
        if not found:
            raise DataError(f"no {', '.join(BUILDERS)} file in the folder", str(path))
    suffixes = {BUILDERS.get(p.suffix) for p in found}
    if None in suffixes:
        raise DataError(f"expected a {', '.join(BUILDERS)} file", str(path))
    if len(suffixes) > 1:
        kinds = ", ".join(sorted(s for s in suffixes if s))
        raise DataError(f"the folder mixes table formats ({kinds})", str(path))
    return found


def load_rows(
    source: str, revision: str | None = None, split: str | None = None
) -> tuple[list[dict[str, Any]], str, str]:
    """The table's rows (as plain dicts), a description of where they came from, and a sha256 of the
    input: of the local files' bytes, or of the rows as read from the Hub at ``revision``."""
    import datasets

    datasets.disable_progress_bars()  # one line per table is noise here; the counts are printed
    cache = str(files.cache_dir("datasets"))
    path = Path(source).expanduser()
    if path.exists():
        found = _local_files(path)
        builder = BUILDERS[found[0].suffix]
        try:
            data_files = [str(p) for p in found]
            loaded = datasets.load_dataset(builder, data_files=data_files, split="train", cache_dir=cache)
        except Exception as err:  # datasets' own parse errors: say which input
            reason = f"{type(err).__name__}: {err}"
            raise DataError(f"datasets could not read it as {builder} ({reason})", source) from err
        digest = hashlib.sha256()
        for p in found:
            digest.update(files.sha256_file(p).encode())
        sha = files.sha256_file(found[0]) if len(found) == 1 else digest.hexdigest()
        return [dict(r) for r in loaded], f"{source} ({builder}, {len(found)} file(s))", sha
    if files.looks_like_a_path(source) or Path(source).suffix in BUILDERS:
        raise DataError("no such file or folder (a local table was expected there)", source)
    try:
        loaded = datasets.load_dataset(source, revision=revision, split=split or "test", cache_dir=cache)
    except Exception as err:
        offline = os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = "offline: " if offline else ""
        raise DataError(
            f"{hint}cannot load the Hub dataset ({type(err).__name__}: {err}); without network, pass a local "
            "file or folder with --input",
            source,
        ) from err
    rows = [dict(r) for r in loaded]
    text = "".join(json.dumps(r, sort_keys=True, default=str) for r in rows)
    sha = hashlib.sha256(text.encode()).hexdigest()
    return rows, f"{source}@{revision or 'default'} split {split or 'test'} (Hub)", sha


# ------------------------------------------------------------------------------------ column paths
def _get(value: Any, path: str) -> Any:
    """``question.choices[].text`` of a row: dotted keys, ``[]`` maps the rest over a list."""
    head, _, rest = path.partition(".")
    mapped = head.endswith("[]")
    key = head.removesuffix("[]")
    if not isinstance(value, dict) or key not in value:
        raise KeyError(key)
    value = value[key]
    if mapped:
        if not isinstance(value, list):
            raise KeyError(f"{key}[] (not a list)")
        return [_get(v, rest) if rest else v for v in value]
    return _get(value, rest) if rest else value


def check_columns(rows: Sequence[dict[str, Any]], columns: Columns, source: str) -> None:
    """Every mapped column exists (in the first row); else name it and list the columns there are."""
    if not rows:
        raise DataError("the table has no rows", source)
    first = rows[0]
    paths = [columns.question, *columns.choices, columns.answer]
    paths += [p for p in (columns.labels, columns.id, columns.subject) if p]
    for path in paths:
        try:
            _get(first, path)
        except KeyError:
            raise DataError(
                f"no column {path!r} (row 1 has: {', '.join(_column_names(first))}); map the columns "
                "with --question / --choices / --answer, or a --preset that fits",
                source,
            ) from None


def _column_names(row: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out += _column_names(value, name + ".")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            out += _column_names(value[0], name + "[].")
        else:
            out.append(name)
    return out


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):  # None or NaN
        return ""
    return str(value).strip()


def _options(row: dict[str, Any], columns: Columns) -> list[str]:
    if len(columns.choices) == 1:
        value = _get(row, columns.choices[0])
        if isinstance(value, str):  # a list kept as JSON text (a CSV column)
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                value = [value]
        values = value if isinstance(value, list) else [value]
    else:
        values = [_get(row, c) for c in columns.choices]
    return [_text(v) for v in values]


# --------------------------------------------------------------------------------------- answers
_LETTER = re.compile(r"^\(?([A-Za-z])\)?$")
_INDEX = re.compile(r"^-?\d+$")


def answer_base(raw_answers: Iterable[tuple[Any, int]], declared: str, source: str = "") -> int | None:
    """0 or 1 for an index column (None when the answers are not indices), from ``declared`` (``0``,
    ``1``) or, with ``auto``, from the data: a 0 or an index equal to its row's option count decides;
    when neither occurs the column is ambiguous and refused."""
    indices = [(int(str(a).strip()), n) for a, n in raw_answers if _INDEX.match(str(a).strip())]
    if not indices:
        return None
    if declared in ("0", "1"):
        return int(declared)
    zero = any(i == 0 for i, _ in indices)
    top = any(i == n for i, n in indices)
    if zero and not top:
        return 0
    if top and not zero:
        return 1
    raise DataError(
        "the answer column holds indices that read as 0-based and 1-based alike"
        + (" (a 0 and an index equal to the option count both occur)" if zero and top else "")
        + "; say which with --answer_base 0 or --answer_base 1",
        source or None,
    )


def answer_index(
    raw: Any, options: Sequence[str], labels: Sequence[str] | None, base: int | None
) -> int | None:
    """The right option's index from an index, a letter (or the options' own label), or the option's
    text; None when it names no option."""
    text = _text(raw)
    if labels is not None and text in [_text(lab) for lab in labels]:
        return [_text(lab) for lab in labels].index(text)
    if base is not None and _INDEX.match(text):
        index = int(text) - base
        return index if 0 <= index < len(options) else None
    letter = _LETTER.match(text)
    if letter and len(text) <= 3 and labels is None:
        index = prompts.OPTION_LETTERS.index(letter.group(1).upper())
        return index if index < len(options) else None
    if text in options:
        return options.index(text)
    return None


# ------------------------------------------------------------------------------------------ rows
def normalized(text: str) -> str:
    """A question's identity across tables: case, accents, punctuation, articles and spacing ignored."""
    from sycophancy_eval_kit.core.grading import normalize_tokens

    return " ".join(normalize_tokens(text))


def read_table(
    source: str,
    columns: Columns,
    declared_base: str = "auto",
    revision: str | None = None,
    split: str | None = None,
    excluded: set[str] | None = None,
) -> Table:
    """Every usable question of the table, in table order; unusable rows dropped and counted."""
    rows, described, sha = load_rows(source, revision, split)
    if rows:
        columns = columns.fitted(rows[0])
    check_columns(rows, columns, source)
    table = Table([], described, sha, len(rows), columns, None)

    def drop(reason: str, i: int, detail: str) -> None:
        table.dropped[reason] += 1
        shown = table.examples.setdefault(reason, [])
        if len(shown) < SHOWN_PER_REASON:
            shown.append(f"{source} row {i}: {detail}")

    parsed = []
    for i, row in enumerate(rows, start=1):
        labels = _get(row, columns.labels) if columns.labels else None
        parsed.append((i, row, _text(_get(row, columns.question)), _options(row, columns), labels))
    base = answer_base(
        ((_get(row, columns.answer), len(opts)) for _, row, _, opts, labels in parsed if labels is None),
        declared_base,
        source,
    )
    table.answer_base = base
    seen: dict[str, int] = {}
    for i, row, question, options, labels in parsed:
        if not question:
            drop(EMPTY_QUESTION, i, "the question is empty")
            continue
        if len(options) < MIN_OPTIONS:
            drop(TOO_FEW_OPTIONS, i, f"{len(options)} option(s)")
            continue
        if len(options) > MAX_OPTIONS:
            drop(TOO_MANY_OPTIONS, i, f"{len(options)} options; at most {MAX_OPTIONS} are lettered")
            continue
        if not all(options):
            drop(EMPTY_OPTION, i, f"options {options}")
            continue
        if len(set(options)) < len(options):
            drop(REPEATED_OPTION, i, f"options {options}")
            continue
        raw = _get(row, columns.answer)
        index = answer_index(raw, options, labels, base)
        if index is None:
            drop(NO_SUCH_ANSWER, i, f"answer {raw!r} names none of the options {options}")
            continue
        key = normalized(question)
        if key in seen:
            drop(DUPLICATE, i, f"the question of row {seen[key]} again")
            continue
        seen[key] = i
        if excluded is not None and key in excluded:
            drop(EXCLUDED, i, "the question is in an --exclude set")
            continue
        qid = _text(_get(row, columns.id)) if columns.id else ""
        subject = _text(_get(row, columns.subject)) if columns.subject else None
        if not qid:
            qid = hashlib.sha256(json.dumps([question, options]).encode()).hexdigest()[:16]
        table.questions.append(Question(qid, question, tuple(options), index, subject or None, i))
    return table
