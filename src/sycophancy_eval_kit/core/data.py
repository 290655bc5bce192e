"""The one loader for Sharma et al.'s sycophancy-eval files, and the one writer of their rows.

Every consumer (the lm-eval tasks, the dialogue driver, the SAA contamination check) gets its questions
here, so sources, checksums, quirks and question ids are handled once:

* source: a local folder (``data_dir=PATH`` or env ``SYCOPHANCY_DATA_DIR``), the packaged sample
  (``data_dir=embedded``), or the pinned upstream files, downloaded, sha256-checked and cached;
* quirks of the real files: bare ``NaN`` (Python's json accepts it), repeated lines (dropped on
  sub-dataset + prompt, ignoring metadata), ``base`` keys that differ by sub-dataset;
* a stable question id (hash of sub-dataset and question text), because lm-eval's ``doc_id`` is only a
  position and runs must be paired across models.

Rows are written here too (``answer_rows``, ``mc_row``, ``free_form_row``, ``write_sharma_file``), in
the upstream layout and with the templates of ``prompts``: the embedded sample, the toy world, the
benchmarks and the tests all produce files this loader reads like the real ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from sycophancy_eval_kit.core import files, prompts
from sycophancy_eval_kit.core.answers import option_line
from sycophancy_eval_kit.core.files import DataError, iter_json_lines, sha256_file

logger = logging.getLogger(__name__)

ANSWER_FILE = "answer.jsonl"
ARE_YOU_SURE_FILE = "are_you_sure.jsonl"

#: sha256 of the upstream files at the pinned revision (see shared/specs/data-formats.md).
PINNED_SHA256: dict[str, str] = {
    ANSWER_FILE: "3da2c2bbf685cf2c6cbfc6bf67449caad6fe1d56b67924087b3792ffba47bcc1",
    ARE_YOU_SURE_FILE: "16e034c2ec6a6145c0058863a7c0f41fee5ffa7f9f0391547ae3685e713f115f",
}
GITHUB_REVISION = "9a1694221e3639887138f61deae344335eca6752"
HF_REVISION = "336bcd542e6b190abf911455f379244244056fd2"
#: tried in order; the Hugging Face mirror first, GitHub at the pinned commit as the fallback.
DEFAULT_BASE_URLS: tuple[str, ...] = (
    f"https://huggingface.co/datasets/meg-tong/sycophancy-eval/resolve/{HF_REVISION}",
    f"https://raw.githubusercontent.com/meg-tong/sycophancy-eval/{GITHUB_REVISION}/datasets",
)

ENV_DATA_DIR = "SYCOPHANCY_DATA_DIR"
ENV_BASE_URL = "SYCOPHANCY_DATA_BASE_URL"
EMBEDDED = "embedded"
EMBEDDED_DIR = Path(__file__).resolve().parent / "sample_data"

ANSWER_SUBSETS: tuple[str, ...] = ("trivia_qa", "truthful_qa")
AYS_MC_SUBSETS: tuple[str, ...] = ("aqua_mc", "truthful_qa_mc", "mmlu_mc_cot", "math_mc_cot")
AYS_FREE_FORM_SUBSETS: tuple[str, ...] = ("trivia_qa", "truthful_qa")
AYS_SUBSETS: tuple[str, ...] = AYS_MC_SUBSETS + AYS_FREE_FORM_SUBSETS


# --------------------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class DataSource:
    """Where the Sharma files come from: ``embedded``, ``local`` (a folder) or ``download``."""

    kind: str
    folder: Path | None = None
    base_urls: tuple[str, ...] = DEFAULT_BASE_URLS
    cache_dir: Path | None = None
    offline_hint: str | None = None  # how the caller's own CLI passes a local copy (default: lm-eval's)

    def path(self, filename: str) -> Path:
        """Local path of ``filename``, downloading (and verifying) it first for ``download``."""
        if self.kind == "download":
            return fetch_pinned(
                filename, base_urls=self.base_urls, cache_dir=self.cache_dir, offline_hint=self.offline_hint
            )
        assert self.folder is not None
        path = self.folder / filename
        if not path.is_file():
            raise DataError(
                f"{path}: file not found; data_dir={self.folder} must hold {ANSWER_FILE} and/or "
                f"{ARE_YOU_SURE_FILE} in Sharma et al.'s layout (or use data_dir={EMBEDDED})."
            )
        return path

    @property
    def location(self) -> str:
        return str(self.folder) if self.folder is not None else " | ".join(self.base_urls)


def resolve_source(
    data_dir: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    offline_hint: str | None = None,
) -> DataSource:
    """Pick the data source: explicit ``data_dir``, then ``$SYCOPHANCY_DATA_DIR``, then download."""
    chosen = data_dir if data_dir not in (None, "") else os.environ.get(ENV_DATA_DIR) or None
    if chosen is not None and str(chosen) == EMBEDDED:
        return DataSource("embedded", folder=EMBEDDED_DIR)
    if chosen is not None:
        folder = Path(chosen).expanduser()
        if not folder.is_dir():
            raise DataError(
                f"data_dir={chosen}: not a folder; expected a folder holding {ANSWER_FILE} / "
                f"{ARE_YOU_SURE_FILE}, or '{EMBEDDED}' for the packaged sample."
            )
        return DataSource("local", folder=folder.resolve())
    base = base_url or os.environ.get(ENV_BASE_URL)
    urls = (base.rstrip("/"),) if base else DEFAULT_BASE_URLS
    cache = Path(cache_dir) if cache_dir else None
    return DataSource("download", base_urls=urls, cache_dir=cache, offline_hint=offline_hint)


def default_cache_dir() -> Path:
    """Where pinned downloads are kept: ``files.cache_root()/sharma/<revision>``."""
    return files.cache_dir("sharma", GITHUB_REVISION[:12])


def fetch_pinned(
    filename: str,
    base_urls: Iterable[str] = DEFAULT_BASE_URLS,
    cache_dir: Path | None = None,
    timeout: float = 60.0,
    offline_hint: str | None = None,
) -> Path:
    """Return a cached, sha256-verified copy of a pinned upstream file, downloading it if needed.

    A download whose checksum does not match is discarded (nothing is cached) and the next URL is
    tried; if none succeeds the error says how to run offline.
    """
    expected = PINNED_SHA256.get(filename)
    if expected is None:
        raise DataError(f"{filename}: no pinned checksum; expected one of {sorted(PINNED_SHA256)}")
    target = (Path(cache_dir) if cache_dir else default_cache_dir()) / filename
    urls = [f"{base.rstrip('/')}/{filename}" for base in base_urls]
    hint = offline_hint or (
        f"Offline? Pass a local copy with --metadata data_dir=PATH (a folder holding {filename}) or set "
        f"${ENV_DATA_DIR}; data_dir={EMBEDDED} runs the small packaged sample."
    )
    return files.fetch_verified(urls, target, expected, hint, timeout)


# --------------------------------------------------------------------------------------- parsing
@dataclass(frozen=True)
class Row:
    """One line of a Sharma file, structurally validated."""

    line: int
    dataset: str
    messages: tuple[tuple[str, str], ...]  # (type, content): "human" or "ai" (assistant prefill)
    base: Mapping[str, Any]
    template: str


@dataclass(frozen=True)
class SharmaFile:
    """A parsed file: its rows after dropping repeats, with what was dropped and its checksum."""

    path: Path
    sha256: str
    rows: tuple[Row, ...]
    duplicate_lines: tuple[int, ...] = field(default=())

    def subsets(self) -> list[str]:
        return sorted({row.dataset for row in self.rows})


def question_id(dataset: str, question: str) -> str:
    """Stable id of a question: the same text in the same sub-dataset pairs across runs and models."""
    return hashlib.sha256(f"{dataset}\x1f{question}".encode()).hexdigest()[:16]


def read_sharma_file(path: str | os.PathLike[str]) -> SharmaFile:
    """Parse and validate a Sharma-format jsonl file (cached per path, size and mtime)."""
    p = Path(path).resolve()
    stat = p.stat()
    return _read_cached(str(p), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=16)
def _read_cached(path: str, size: int, mtime_ns: int) -> SharmaFile:
    p = Path(path)
    rows: list[Row] = []
    seen: set[tuple[str, str]] = set()
    duplicates: list[int] = []
    for line_no, obj in iter_json_lines(p, "one JSON object per line with prompt, base and metadata"):
        row = _parse_line(p, line_no, obj)
        key = (row.dataset, json.dumps(row.messages))
        if key in seen:
            duplicates.append(line_no)
            continue
        seen.add(key)
        rows.append(row)
    if duplicates:
        logger.warning("%s: dropped %d repeated line(s): %s", p, len(duplicates), duplicates[:10])
    return SharmaFile(p, sha256_file(p), tuple(rows), tuple(duplicates))


def _parse_line(path: Path, line_no: int, obj: Any) -> Row:
    where = f"{path}:{line_no}"
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object with prompt, base and metadata")
    prompt = obj.get("prompt")
    if not isinstance(prompt, list) or not prompt:
        raise DataError(f"{where}: 'prompt' must be a non-empty list of {{type, content}} messages")
    messages = []
    for i, msg in enumerate(prompt):
        if (
            not isinstance(msg, dict)
            or msg.get("type") not in ("human", "ai")
            or not isinstance(msg.get("content"), str)
        ):
            raise DataError(
                f"{where}: prompt[{i}] must be {{'type': 'human'|'ai', 'content': str}}, got {msg!r:.120}"
            )
        messages.append((msg["type"], msg["content"]))
    if messages[0][0] != "human":
        raise DataError(f"{where}: the prompt must start with a human message")
    base = obj.get("base")
    if not isinstance(base, dict) or not isinstance(base.get("dataset"), str):
        raise DataError(f"{where}: 'base' must be an object with a string 'dataset'")
    if not isinstance(base.get("question"), str) or not base["question"].strip():
        raise DataError(f"{where}: base.question must be a non-empty string")
    metadata = obj.get("metadata")
    template = metadata.get("prompt_template") if isinstance(metadata, dict) else None
    if not isinstance(template, str):
        raise DataError(f"{where}: expected metadata.prompt_template (a string)")
    return Row(line_no, base["dataset"], tuple(messages), base, template)


_ANSWER_FIELDS = ("answer", "correct_answer", "long_correct_answer", "incorrect_answer")


def _check_answer_fields(base: Mapping[str, Any], where: str) -> None:
    """Bare ``Infinity`` (which Python's json accepts) is not an answer: grading it as ``inf`` would
    be a silent wrong number. NaN stays what the real files use it for: a missing value."""
    for key in _ANSWER_FIELDS:
        values = base.get(key) if isinstance(base.get(key), list) else [base.get(key)]
        if any(isinstance(v, float) and math.isinf(v) for v in values):
            raise DataError(f"{where}: base.{key} holds the JSON number Infinity; expected a string answer")


def _text(value: Any) -> str | None:
    """A usable string field, or None for missing / NaN / empty values."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


def accepted_answers(base: Mapping[str, Any]) -> list[str]:
    """Every string the grader accepts as correct: aliases, the short and the long reference."""
    out: list[str] = []
    aliases = base.get("answer")
    candidates = list(aliases) if isinstance(aliases, list) else [aliases]
    candidates += [base.get("correct_answer"), base.get("long_correct_answer")]
    for value in candidates:
        text = _text(value)
        if text is not None and text not in out:
            out.append(text)
    return out


# ------------------------------------------------------------------------------ answer.jsonl docs
def _condition_of(row: Row, templates: Mapping[str, str], where: str) -> str:
    """The Answer Suggestion condition whose template the row names; an unknown one is an error."""
    for condition, template in templates.items():
        if row.template == template:
            return condition
    expected = "\n  ".join(repr(t) for t in templates.values())
    raise DataError(f"{where}: unknown prompt_template {row.template!r}; expected one of\n  {expected}")


def answer_docs(sharma: SharmaFile) -> dict[str, list[dict[str, Any]]]:
    """Group answer.jsonl rows into one doc per question (its four prompts), by sub-dataset."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for row in sharma.rows:
        where = f"{sharma.path}:{row.line}"
        condition = _condition_of(row, prompts.ANSWER_TEMPLATES, where)
        if len(row.messages) != 1:
            raise DataError(f"{where}: an Answer Suggestion row has exactly one human message")
        question = row.base["question"]
        _check_answer_fields(row.base, where)
        _check_prompt_matches_template(row, where, condition)
        doc = groups.get((row.dataset, question))
        if doc is None:
            answers = accepted_answers(row.base)
            if not answers:
                raise DataError(f"{where}: no reference answer (base.answer / correct_answer)")
            doc = {
                "id": question_id(row.dataset, question),
                "dataset": row.dataset,
                "question": question,
                "correct_answer": _text(row.base.get("correct_answer")) or answers[0],
                "incorrect_answer": _text(row.base.get("incorrect_answer")) or "",
                "accepted_answers": answers,
                "line": row.line,
            }
            groups[(row.dataset, question)] = doc
        key = f"prompt_{condition}"
        if key in doc:
            raise DataError(
                f"{where}: a second {condition!r} row for the question first seen on line {doc['line']}"
            )
        doc[key] = row.messages[0][1]
    by_subset: dict[str, list[dict[str, Any]]] = {}
    for doc in groups.values():
        missing = [c for c in prompts.ANSWER_TEMPLATES if f"prompt_{c}" not in doc]
        if missing:
            raise DataError(
                f"{sharma.path}:{doc['line']}: question {doc['question'][:60]!r} lacks the rows for "
                f"{missing}; expected four rows per question, one per template"
            )
        by_subset.setdefault(doc["dataset"], []).append(doc)
    return by_subset


def _check_prompt_matches_template(row: Row, where: str, condition: str) -> None:
    """A row is labelled by its ``prompt_template``; its prompt must be that template filled from its
    ``base``, or the label is wrong and every delta computed from it would be too (two rows whose
    templates were swapped gave exit 0 and silently wrong deltas)."""
    try:
        expected = row.template.format(**row.base)
    except (KeyError, IndexError, ValueError) as err:
        raise DataError(f"{where}: prompt_template cannot be filled from base ({err!r})") from err
    got = row.messages[0][1]
    if got != expected:
        raise DataError(
            f"{where}: the prompt is not its template ({condition}) filled from base: expected "
            f"{expected[:160]!r}, got {got[:160]!r}"
        )


# ------------------------------------------------------------------------ are_you_sure.jsonl docs
def _mc_options(row: Row, where: str) -> tuple[str, list[str]]:
    """Letters and option texts of a multiple-choice row, from ``base.answers`` ("(A) ...\\n(B) ...")."""
    raw = row.base.get("answers")
    letters: list[str] = []
    texts: list[str] = []
    if isinstance(raw, str):
        for line in raw.splitlines():
            option = option_line(line)
            if option:
                letters.append(option[0])
                texts.append(option[1])
            elif texts and line.strip():  # an option text that wraps onto a second line
                texts[-1] = f"{texts[-1]}\n{line.strip()}"
    if len(letters) < 2:
        raise DataError(
            f"{where}: a multiple-choice row needs base.answers with at least two '(A) text' lines, "
            f"got {raw!r:.120}"
        )
    # The model is shown the prompt, the grader reads base: they must list the same options. Only the
    # prompt after the question is read, so a question quoting "(I) ..." lines is not mistaken for options.
    human = next(content for kind, content in row.messages if kind == "human")
    question = str(row.base.get("question", ""))
    after = human[len(question) :] if human.startswith(question) else human
    shown = "".join(option[0] for line in after.splitlines() if (option := option_line(line)))
    found = "".join(letters)
    if shown != found:
        raise DataError(
            f"{where}: base.answers lists options {found!r} but the prompt shows {shown or 'none'!r}; "
            "expected the options the model is shown"
        )
    declared = row.base.get("letters")
    if isinstance(declared, str) and declared.strip() and declared.strip() != found:
        raise DataError(f"{where}: base.letters is {declared!r} but base.answers lists {found!r}")
    return "".join(letters), texts


def are_you_sure_docs(sharma: SharmaFile) -> dict[str, list[dict[str, Any]]]:
    """One doc per are_you_sure.jsonl question, by sub-dataset, with MC fields filled where relevant.

    MC docs carry ``letters`` (e.g. ``"ABCDE"``), ``options`` and ``correct_letter``; free-form docs
    have ``letters == ""``. ``prefill`` is the row's assistant prefill (``""`` when it has none).
    """
    by_subset: dict[str, list[dict[str, Any]]] = {}
    ids: set[str] = set()
    for row in sharma.rows:
        where = f"{sharma.path}:{row.line}"
        if row.template not in prompts.AYS_TEMPLATES:
            expected = "\n  ".join(repr(t) for t in prompts.AYS_TEMPLATES)
            raise DataError(
                f"{where}: unknown prompt_template {row.template!r}; expected one of\n  {expected}"
            )
        human = [content for kind, content in row.messages if kind == "human"]
        prefill = row.messages[-1][1] if row.messages[-1][0] == "ai" else ""
        if len(human) != 1:
            raise DataError(f"{where}: an Are-You-Sure row has exactly one human message")
        question = row.base["question"]
        _check_answer_fields(row.base, where)
        doc_id = question_id(row.dataset, question)
        if doc_id in ids:  # same question text twice with different prompts: keep both, distinctly
            doc_id = question_id(row.dataset, f"{question}\x1f{human[0]}")
        ids.add(doc_id)
        doc: dict[str, Any] = {
            "id": doc_id,
            "dataset": row.dataset,
            "question": question,
            "prompt": human[0],
            "prefill": prefill,
            "template": row.template,
            "line": row.line,
            "correct_answer": _text(row.base.get("correct_answer")) or "",
            "accepted_answers": accepted_answers(row.base),
            "letters": "",
            "options": [],
            "correct_letter": "",
        }
        if row.template == prompts.AYS_FREE_FORM:
            if not doc["accepted_answers"]:
                raise DataError(f"{where}: no reference answer (base.answer / correct_answer)")
        else:
            letters, options = _mc_options(row, where)
            correct = _text(row.base.get("correct_letter"))
            if correct is None or correct.strip().upper() not in letters:
                raise DataError(
                    f"{where}: base.correct_letter {row.base.get('correct_letter')!r} is not one of the "
                    f"option letters {letters!r}"
                )
            doc.update(letters=letters, options=options, correct_letter=correct.strip().upper())
        by_subset.setdefault(row.dataset, []).append(doc)
    return by_subset


# -------------------------------------------------------------------------- answer_mc.jsonl docs
#: the file of multiple-choice Answer Suggestion rows (built by ``syco-domain`` from a user's table)
ANSWER_MC_FILE = "answer_mc.jsonl"


def answer_mc_docs(sharma: SharmaFile) -> dict[str, list[dict[str, Any]]]:
    """One doc per answer_mc.jsonl question, by sub-dataset: the four prompts (one per condition of
    ``prompts.ANSWER_MC_TEMPLATES``), the letters, the right and the suggested wrong letter.

    Each row must be its template filled from its ``base`` and end with the ``The answer is (``
    prefill; the four rows of a question must agree on the options and letters.
    """
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for row in sharma.rows:
        where = f"{sharma.path}:{row.line}"
        condition = _condition_of(row, prompts.ANSWER_MC_TEMPLATES, where)
        kinds = [kind for kind, _ in row.messages]
        if kinds != ["human", "ai"] or row.messages[1][1] != prompts.MC_ANSWER_PREFILL:
            raise DataError(
                f"{where}: a multiple-choice Answer Suggestion row is one human message and the prefill "
                f"{prompts.MC_ANSWER_PREFILL!r}"
            )
        _check_prompt_matches_template(row, where, condition)
        letters, options = _mc_options(row, where)
        correct = _text(row.base.get("correct_letter")) or ""
        incorrect = _text(row.base.get("incorrect_letter")) or ""
        if correct not in letters or incorrect not in letters or correct == incorrect:
            raise DataError(
                f"{where}: base.correct_letter {correct!r} and base.incorrect_letter {incorrect!r} must be "
                f"two of the option letters {letters!r}"
            )
        question = row.base["question"]
        doc = groups.get((row.dataset, question))
        if doc is None:
            doc = {
                "id": question_id(row.dataset, question),
                "dataset": row.dataset,
                "question": question,
                "letters": letters,
                "options": options,
                "correct_letter": correct,
                "incorrect_letter": incorrect,
                "prefill": prompts.MC_ANSWER_PREFILL,
                "line": row.line,
            }
            groups[(row.dataset, question)] = doc
        elif (doc["letters"], doc["options"], doc["correct_letter"]) != (letters, options, correct):
            raise DataError(f"{where}: the options or the right letter differ from line {doc['line']}'s")
        key = f"prompt_{condition}"
        if key in doc:
            first = doc["line"]
            raise DataError(f"{where}: a second {condition!r} row for the question first on line {first}")
        doc[key] = row.messages[0][1]
    by_subset: dict[str, list[dict[str, Any]]] = {}
    for doc in groups.values():
        missing = [c for c in prompts.ANSWER_MC_TEMPLATES if f"prompt_{c}" not in doc]
        if missing:
            raise DataError(
                f"{sharma.path}:{doc['line']}: question {doc['question'][:60]!r} lacks the rows for {missing}"
            )
        by_subset.setdefault(doc["dataset"], []).append(doc)
    return by_subset


# ---------------------------------------------------------------------------- task-facing helpers
def task_list_hint(prefix: str, subsets: Iterable[str]) -> str:
    return ",".join(f"{prefix}_{s}" for s in subsets)


def require_subset(
    docs_by_subset: Mapping[str, list[dict[str, Any]]],
    subset: str,
    sharma: SharmaFile,
    task_prefix: str,
    known: Iterable[str],
) -> list[dict[str, Any]]:
    """The docs of ``subset``, or an error naming what is missing and which ``--tasks`` would run."""
    docs = docs_by_subset.get(subset) or []
    if docs:
        return docs
    present = [s for s in known if docs_by_subset.get(s)]
    runnable = task_list_hint(task_prefix, present) if present else "(none)"
    raise DataError(
        f"{sharma.path} has no '{subset}' questions (it has: {', '.join(sharma.subsets()) or 'nothing'}). "
        f"Request only the sub-tasks the data cover: --tasks {runnable}"
    )


def provenance(source: DataSource, sharma: SharmaFile, n_docs: int) -> dict[str, Any]:
    """What went into a run, recorded in the task's metadata in results_*.json."""
    return {
        "data_source": source.kind,
        "data_location": source.location,
        "data_file": sharma.path.name,
        "data_sha256": sharma.sha256,
        "data_pinned_sha256_match": sharma.sha256 == PINNED_SHA256.get(sharma.path.name),
        "n_questions": n_docs,
        "n_duplicate_lines_dropped": len(sharma.duplicate_lines),
    }


# ------------------------------------------------------------------------------------- writing
def _row(messages: list[dict[str, str]], base: dict[str, Any], template: str) -> dict[str, Any]:
    return {"prompt": messages, "base": base, "metadata": {"prompt_template": template}}


def answer_rows(
    dataset: str,
    question: str,
    correct_answer: str,
    incorrect_answer: str,
    aliases: Sequence[str] | None = None,
    long_correct_answer: str | None = None,
) -> list[dict[str, Any]]:
    """The four Answer Suggestion rows of one question, one per template of ``prompts.ANSWER_TEMPLATES``.

    ``aliases`` (trivia_qa's ``answer`` list) and ``long_correct_answer`` (truthful_qa's) are written
    only when given, in the upstream key order.
    """
    base: dict[str, Any] = {"dataset": dataset, "question": question}
    if aliases is not None:
        base["answer"] = list(aliases)
    base["correct_answer"] = correct_answer
    if long_correct_answer is not None:
        base["long_correct_answer"] = long_correct_answer
    base["incorrect_answer"] = incorrect_answer
    return [
        _row([prompts.human_message(template.format(**base))], base, template)
        for template in prompts.ANSWER_TEMPLATES.values()
    ]


def mc_row(
    dataset: str,
    question: str,
    options: Sequence[str],
    correct: int | str,
    template: str | None = None,
    prefill: bool | None = None,
    letters: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One Are-You-Sure multiple-choice row: the question with its lettered options.

    ``correct`` is the right option's index or letter. The template is ``*_cot`` sub-datasets'
    ``AYS_MC_COT``, else ``AYS_MC_WITH_INSTRUCTION``, which gets the ``The answer is (`` prefill unless
    ``prefill`` says otherwise; ``extra`` keys (``topic``) go into ``base`` after ``dataset``. The
    options are lettered A, B, C, ...; ``letters`` (and a ``correct`` letter outside them) exist for
    fixtures of broken files, which the loader must reject.
    """
    letters = letters if letters is not None else prompts.OPTION_LETTERS[: len(options)]
    letter = letters[correct] if isinstance(correct, int) else correct
    if template is None:
        template = prompts.AYS_MC_COT if dataset.endswith("_cot") else prompts.AYS_MC_WITH_INSTRUCTION
    answers = "\n".join(f"({lt}) {text}" for lt, text in zip(letters, options, strict=True))
    base = {
        "dataset": dataset,
        **extra,
        "question": question,
        "correct_letter": letter,
        "letters": letters,
        "answers": answers,
        "answers_list": list(options),
        "correct_answer": options[letters.index(letter)] if letter in letters else "",
    }
    messages = [prompts.human_message(template.format(question=question, answers=answers))]
    if prefill if prefill is not None else template == prompts.AYS_MC_WITH_INSTRUCTION:
        messages.append(prompts.ai_message(prompts.MC_ANSWER_PREFILL))
    return _row(messages, base, template)


def free_form_row(
    dataset: str,
    question: str,
    correct_answer: str,
    aliases: Sequence[str] | None = None,
    long_correct_answer: str | None = None,
    incorrect_answer: str | None = None,
) -> dict[str, Any]:
    """One Are-You-Sure free-form row: the question alone (``prompts.AYS_FREE_FORM``)."""
    base: dict[str, Any] = {"dataset": dataset, "question": question}
    if aliases is not None:
        base["answer"] = list(aliases)
    base["correct_answer"] = correct_answer
    if long_correct_answer is not None:
        base["long_correct_answer"] = long_correct_answer
    if incorrect_answer is not None:
        base["incorrect_answer"] = incorrect_answer
    template = prompts.AYS_FREE_FORM
    return _row([prompts.human_message(template.format(question=question))], base, template)


def write_sharma_file(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write rows as a Sharma-format jsonl file (UTF-8, one JSON object per line), atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}{files.TMP_TAG}{os.getpid()}")
    with open(partial, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(partial, target)
    return target


def answer_mc_rows(
    dataset: str, question: str, options: Sequence[str], correct: int, incorrect: int
) -> list[dict[str, Any]]:
    """The four multiple-choice Answer Suggestion rows of one question (``prompts.ANSWER_MC_TEMPLATES``):
    the options shown, a suggestion naming ``(letter) text``, the letter prefill."""
    letters = prompts.OPTION_LETTERS[: len(options)]
    answers = "\n".join(f"({lt}) {text}" for lt, text in zip(letters, options, strict=True))
    base = {
        "dataset": dataset,
        "question": question,
        "answers": answers,
        "letters": letters,
        "answers_list": list(options),
        "correct_letter": letters[correct],
        "correct_answer": options[correct],
        "incorrect_letter": letters[incorrect],
        "incorrect_answer": options[incorrect],
    }
    return [
        _row(
            [prompts.human_message(template.format(**base)), prompts.ai_message(prompts.MC_ANSWER_PREFILL)],
            base,
            template,
        )
        for template in prompts.ANSWER_MC_TEMPLATES.values()
    ]
