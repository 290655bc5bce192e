"""Ground truth for BCT rows, by matching question stem and option set against the source questions.

BCT rows carry no answer key, and their assistant turn is a model's answer (wrong about a quarter of
the time), so the key comes from the questions BCT was built from: ARC (easy, challenge), OpenBookQA
and BIG-Bench Hard, as stored in cot-transparency's ``data/``. A row matches a source question when
the stems are equal and the option *sets* are equal (BCT may reorder options), after straightening
quotes and collapsing whitespace, and dropping the ``Q:`` / ``Question:`` prefix BBH stems carry in
the source but not in BCT. The correct option's text then gives the row's correct letter.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sycophancy_eval_kit.core.files import DataError, iter_json_lines, load_json
from sycophancy_eval_kit.saa_data.inputs import SourceFile
from sycophancy_eval_kit.saa_data.parse import (
    OPTIONS_HEADER,
    BctFormatError,
    BctRow,
    normalize_space,
    split_options,
)

# Why a row gets no ground truth (counted in the build report and the dataset card).
NO_SOURCE_MATCH = "no_source_match"  # stem not in any source file (e.g. ARC test split)
OPTION_SET_MISMATCH = "option_set_mismatch"  # stem found, but with other options
CONFLICTING_ANSWERS = "conflicting_answers"  # same stem and options, different keys in two files
EXCLUSION_REASONS: tuple[str, ...] = (NO_SOURCE_MATCH, OPTION_SET_MISMATCH, CONFLICTING_ANSWERS)


def stem_key(stem: str) -> str:
    """The form stems are compared in (BCT drops the ``Q: `` that BBH's ``parsed_inputs`` start with)."""
    text = normalize_space(stem)
    for prefix in ("Q: ", "Question: "):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


@dataclass(frozen=True)
class SourceQuestion:
    dataset: str
    source_id: str
    stem: str
    options: tuple[str, ...]
    answer: str  # text of the correct option


@dataclass(frozen=True)
class Label:
    """A row's ground truth: the correct letter in the row's own lettering, and where it came from."""

    correct_letter: str
    dataset: str
    source_id: str


@dataclass
class SourceIndex:
    """Source questions keyed by (stem, option set); stems alone to tell the exclusion reason."""

    by_key: dict[tuple[str, frozenset[str]], SourceQuestion] = field(default_factory=dict)
    conflicts: set[tuple[str, frozenset[str]]] = field(default_factory=set)
    stems: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, q: SourceQuestion) -> None:
        key = (stem_key(q.stem), frozenset(normalize_space(o) for o in q.options))
        self.counts[q.dataset] += 1
        self.stems.add(key[0])
        known = self.by_key.get(key)
        if known is None:
            self.by_key[key] = q
        elif normalize_space(known.answer) != normalize_space(q.answer):
            self.conflicts.add(key)

    def label(self, row: BctRow) -> Label | str:
        """The row's :class:`Label`, or the reason (one of ``EXCLUSION_REASONS``) it has none."""
        stem = stem_key(row.stem)
        key = (stem, frozenset(normalize_space(o) for o in row.options))
        q = self.by_key.get(key)
        if q is None:
            return OPTION_SET_MISMATCH if stem in self.stems else NO_SOURCE_MATCH
        if key in self.conflicts:
            return CONFLICTING_ANSWERS
        answer = normalize_space(q.answer)
        letter = next(row.letters[i] for i, o in enumerate(row.options) if normalize_space(o) == answer)
        return Label(letter, q.dataset, q.source_id)


def _arc_questions(source: SourceFile, path: Path) -> list[SourceQuestion]:
    """ARC / OpenBookQA jsonl: ``question.stem``, ``question.choices[{text, label}]``, ``answerKey``."""
    out = []
    expected = "{id, question: {stem, choices: [{text, label}]}, answerKey} with answerKey among the labels"
    for line_no, obj in iter_json_lines(path, expected):
        try:
            choices = obj["question"]["choices"]
            labels = [c["label"] for c in choices]
            options = tuple(c["text"] for c in choices)
            answer = options[labels.index(obj["answerKey"])]
            out.append(
                SourceQuestion(source.dataset, str(obj["id"]), obj["question"]["stem"], options, answer)
            )
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{path}:{line_no}: expected {expected} ({type(err).__name__}: {err})") from err
    return out


def _bbh_questions(source: SourceFile, path: Path) -> list[SourceQuestion]:
    """BBH ``val_data.json``: options in ``parsed_inputs``, scored in ``multiple_choice_scores`` order."""
    try:
        items = load_json(path, "a JSON object with a 'data' list")["data"]
    except (KeyError, TypeError) as err:
        raise DataError(f"{path}: expected a JSON object with a 'data' list ({err})") from err
    out = []
    for i, item in enumerate(items):
        where = f"{path}: data[{i}]"
        try:
            lines = item["parsed_inputs"].split("\n")
            header, _, _, options = split_options(lines, where)
            scores = item["multiple_choice_scores"]
        except (KeyError, TypeError, BctFormatError) as err:
            raise DataError(
                f"{where}: expected parsed_inputs with an '{OPTIONS_HEADER}' block and "
                f"multiple_choice_scores ({err})"
            ) from err
        if len(scores) != len(options) or list(scores).count(1) != 1:
            raise DataError(
                f"{where}: expected one score of 1 among {len(options)} multiple_choice_scores, got {scores}"
            )
        stem = "\n".join(lines[:header])
        answer = options[list(scores).index(1)]
        out.append(
            SourceQuestion(source.dataset, f"{source.path}#{item.get('idx', i)}", stem, options, answer)
        )
    return out


def build_index(files: list[tuple[SourceFile, Path]]) -> SourceIndex:
    """Index every source question (files in the priority order given)."""
    index = SourceIndex()
    for source, path in files:
        questions = _arc_questions(source, path) if source.kind == "arc" else _bbh_questions(source, path)
        for q in questions:
            index.add(q)
    return index
