"""Contamination check: word n-gram overlap between SAA questions and the evaluation questions.

Training on the questions the paper evaluates on would inflate its results, so every candidate's
question and options are compared with Sharma et al.'s Answer Suggestion and Are-You-Sure questions
(and their options), read through the project's one loader, ``sycophancy_eval_kit.core.data``.

Texts are lower-cased word sequences (letters and digits). A row is flagged when it shares at least
one word n-gram (default n = 8) with an evaluation question; an evaluation question shorter than n
words counts when it appears whole inside the row (short trivia questions would otherwise never match).
Only the question and options are compared: the BCT sentences around them are the same in every row.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sycophancy_eval_kit.core import data
from sycophancy_eval_kit.core.files import DataError
from sycophancy_eval_kit.saa_data.parse import BctRow
from sycophancy_eval_kit.saa_data.screening import content_text
from sycophancy_eval_kit.saa_data.suggestions import normalize_quotes

DEFAULT_NGRAM = 8
MIN_SHORT_WORDS = 4  # shorter evaluation questions are too generic to count as a match
MAX_LISTED = 10  # evaluation questions listed per flagged row (all are counted)

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(normalize_quotes(text).lower()))


def ngrams(tokens: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


OFFLINE_HINT = (
    "Offline? Pass a local copy with --eval_data_dir PATH (a folder holding Sharma et al.'s answer.jsonl "
    f"and are_you_sure.jsonl) or set ${data.ENV_DATA_DIR}; --eval_data_dir embedded checks against the "
    "small packaged sample only."
)


@dataclass(frozen=True)
class EvalQuestion:
    file: str
    subset: str
    id: str
    text: str


def load_eval_questions(
    eval_data_dir: str | os.PathLike[str] | None = None,
) -> tuple[list[EvalQuestion], dict[str, Any]]:
    """Sharma Answer + Are-You-Sure questions (with MC options) and where they came from.

    ``eval_data_dir`` is what the lm-eval tasks take as ``data_dir``: ``embedded`` (the packaged
    sample), a folder holding the two files, or ``None`` for ``$SYCOPHANCY_DATA_DIR`` / the pinned download.
    """
    chosen = eval_data_dir or os.environ.get(data.ENV_DATA_DIR)
    if chosen and str(chosen) != data.EMBEDDED:  # checked here so the message names our own option
        folder = Path(chosen).expanduser()
        missing = [n for n in (data.ANSWER_FILE, data.ARE_YOU_SURE_FILE) if not (folder / n).is_file()]
        if missing:
            what = "not a folder" if not folder.is_dir() else f"no {' or '.join(missing)} in it"
            via = "--eval_data_dir" if eval_data_dir else f"${data.ENV_DATA_DIR}"
            raise DataError(
                f"{via} {chosen}: {what}; expected a folder holding Sharma et al.'s {data.ANSWER_FILE} "
                f"and {data.ARE_YOU_SURE_FILE}, 'download' for the pinned files, or 'embedded' for the "
                "packaged sample"
            )
    source = data.resolve_source(eval_data_dir, offline_hint=OFFLINE_HINT)
    questions: list[EvalQuestion] = []
    files: list[dict[str, Any]] = []
    for name, to_docs in (
        (data.ANSWER_FILE, data.answer_docs),
        (data.ARE_YOU_SURE_FILE, data.are_you_sure_docs),
    ):
        sharma = data.read_sharma_file(source.path(name))
        files.append({"file": name, "sha256": sharma.sha256})
        for subset, docs in sorted(to_docs(sharma).items()):
            for doc in docs:
                text = "\n".join([doc["question"], *doc.get("options", [])])
                questions.append(EvalQuestion(name, subset, doc["id"], text))
    return questions, {"source": source.kind, "location": source.location, "files": files}


@dataclass
class _Index:
    n: int
    grams: dict[tuple[str, ...], list[int]] = field(default_factory=dict)
    short: dict[int, dict[tuple[str, ...], list[int]]] = field(default_factory=dict)

    def add(self, qid: int, tokens: tuple[str, ...]) -> None:
        if len(tokens) >= self.n:
            for gram in ngrams(tokens, self.n):
                self.grams.setdefault(gram, []).append(qid)
        elif len(tokens) >= MIN_SHORT_WORDS:
            self.short.setdefault(len(tokens), {}).setdefault(tokens, []).append(qid)

    def shared(self, tokens: tuple[str, ...]) -> tuple[int, dict[int, tuple[str, ...]]]:
        """(number of the row's n-grams found, {eval question: one shared n-gram})."""
        found: dict[int, tuple[str, ...]] = {}
        row_grams = ngrams(tokens, self.n)
        n_shared = 0
        for gram in sorted(row_grams):
            if gram in self.grams:
                n_shared += 1
                for qid in self.grams[gram]:
                    found.setdefault(qid, gram)
        for length, table in self.short.items():
            for gram in ngrams(tokens, length):
                for qid in table.get(gram, ()):
                    found.setdefault(qid, gram)
        return n_shared, found


@dataclass
class OverlapReport:
    ngram: int
    checked_rows: int
    eval_questions: int
    eval_provenance: dict[str, Any]
    matches: list[dict[str, Any]]

    @property
    def flagged(self) -> set[int]:
        return {m["bct_index"] for m in self.matches}

    def as_dict(self) -> dict[str, Any]:
        return {
            "ngram": self.ngram,
            "checked_rows": self.checked_rows,
            "eval_questions": self.eval_questions,
            "eval_data": self.eval_provenance,
            "flagged_rows": len(self.flagged),
            "matches": self.matches,
        }


def check(
    rows: Sequence[BctRow],
    questions: Iterable[EvalQuestion],
    provenance: dict[str, Any] | None = None,
    n: int = DEFAULT_NGRAM,
) -> OverlapReport:
    """Compare each row's question and options with every evaluation question."""
    if n < 1:
        raise ValueError(f"n-gram size must be >= 1, got {n}")
    qs = list(questions)
    index = _Index(n)
    for qid, q in enumerate(qs):
        index.add(qid, words(q.text))
    matches: list[dict[str, Any]] = []
    for row in rows:
        tokens = words(content_text(row))
        n_shared, found = index.shared(tokens)
        if not found:
            continue
        total = max(len(tokens) - n + 1, 1)
        listed = sorted(found.items(), key=lambda kv: (qs[kv[0]].file, qs[kv[0]].id))[:MAX_LISTED]
        matches.append(
            {
                "bct_index": row.index,
                "shared_ngrams": n_shared,
                "shared_fraction": round(n_shared / total, 4),
                "eval_questions_matched": len(found),
                "eval_matches": [
                    {"file": qs[q].file, "subset": qs[q].subset, "id": qs[q].id, "example": " ".join(gram)}
                    for q, gram in listed
                ],
            }
        )
    return OverlapReport(n, len(rows), len(qs), provenance or {}, matches)
