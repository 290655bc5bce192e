"""A user's checked questions -> an evaluation folder in Sharma et al.'s layout and an SAA folder.

Both from one table: the questions are split with a seed between them (``saa_share`` of them for SAA),
so evaluation and training questions are disjoint by construction; the SAA folder's ``overlap.json``
shows it (questions shared by normalised text: 0). Every choice that depends on chance (the split, the
wrong option a suggestion names, a pair's sentence) is drawn from the seed and the question's id, so
the same table and seed give the same bytes. Folders are written atomically and only a folder this
builder made is ever replaced.

The evaluation folder:

* ``are_you_sure.jsonl``: every question with its lettered options and the letter instruction, exactly
  as Sharma's ``aqua_mc`` rows (the one pass ``sycophancy_custom_ays_mc`` and the dialogue);
* ``answer_mc.jsonl``: Answer Suggestion with the options shown (``prompts.ANSWER_MC_TEMPLATES``),
  four rows per question (``sycophancy_custom_answer_mc``);
* ``answer.jsonl``: Answer Suggestion asked without the options (Sharma's four templates), for the
  questions that stand without them (``stands_alone``; ``sycophancy_custom_answer``);
* ``domain.json``: the name, the input and its sha256, the column mapping, every count and drop.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sycophancy_eval_kit.core import data, files, prompts, task_names
from sycophancy_eval_kit.core.files import DataError
from sycophancy_eval_kit.domain import table as tables
from sycophancy_eval_kit.domain.table import Columns, Question

TOOL = "syco-domain"
MANIFEST = "domain.json"
ANSWER_MC_FILE = "answer_mc.jsonl"
SAA_FILE = "saa.jsonl"
#: the share of the questions that go to the SAA folder when both folders are built
DEFAULT_SAA_SHARE = 0.5

# A question asked without its options must still make sense: not "Which of the following...", and no
# option that only means something beside the others.
_NEEDS_OPTIONS = re.compile(
    r"\b(which of (the|these) (following|options|choices|statements)|the following|of the above|"
    r"of these|listed (above|below))\b",
    re.IGNORECASE,
)
_REFERS_TO_OTHERS = re.compile(
    r"^(all|none|both|neither) of (the|these|them|those)\b|^(all|none|both) (of )?the above|"
    r"\b(above|below)$|^[A-J] (and|or) [A-J]\b",
    re.IGNORECASE,
)


def stands_alone(question: Question) -> bool:
    """The question can be asked without its options (the free-form Answer Suggestion needs that)."""
    if _NEEDS_OPTIONS.search(question.question):
        return False
    return not any(_REFERS_TO_OTHERS.search(o.strip()) for o in question.options)


@dataclass(frozen=True)
class DomainConfig:
    """Every option of a build (``syco-domain build``)."""

    input: str
    name: str
    columns: Columns
    out: str | None = None
    saa_out: str | None = None
    answer_base: str = "auto"
    revision: str | None = None
    split: str | None = None
    saa_share: float = DEFAULT_SAA_SHARE
    n_eval: int | None = None
    n_saa: int | None = None
    exclude: tuple[str, ...] = ()
    seed: int = 0
    strict: bool = False
    overwrite: bool = False


@dataclass
class DomainResult:
    eval_dir: Path | None
    saa_dir: Path | None
    report: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------ the split
def _draw(seed: int, *parts: str) -> random.Random:
    """A generator that depends on the seed and the question only (not on the other questions)."""
    return random.Random(hashlib.sha256("\x1f".join([str(seed), *parts]).encode()).hexdigest())


def split(questions: Sequence[Question], config: DomainConfig) -> tuple[list[Question], list[Question]]:
    """(evaluation questions, SAA questions): a seeded shuffle cut at the SAA share; table order kept
    within each part."""
    if config.out and config.saa_out:
        order = sorted(questions, key=lambda q: _draw(config.seed, "split", q.id).random())
        n_saa = round(config.saa_share * len(order))
        saa_ids = {q.id for q in order[:n_saa]}
        evaluation = [q for q in questions if q.id not in saa_ids]
        saa = [q for q in questions if q.id in saa_ids]
    elif config.out:
        evaluation, saa = list(questions), []
    else:
        evaluation, saa = [], list(questions)
    for what, part, wanted, flag in (
        ("evaluation", evaluation, config.n_eval, "--n_eval"),
        ("SAA", saa, config.n_saa, "--n_saa"),
    ):
        if wanted is not None and wanted > len(part):
            raise DataError(
                f"{flag} {wanted}: the table has {len(part)} usable {what} question(s) "
                f"({len(questions)} usable in all)",
                config.input,
            )
    if config.n_eval is not None:
        evaluation = evaluation[: config.n_eval]
    if config.n_saa is not None:
        saa = saa[: config.n_saa]
    return evaluation, saa


def _wrong_option(question: Question, seed: int, purpose: str) -> int:
    wrong = [i for i in range(len(question.options)) if i != question.answer]
    return _draw(seed, purpose, question.id).choice(wrong)


# ------------------------------------------------------------------------------ evaluation files
def evaluation_rows(questions: Sequence[Question], config: DomainConfig) -> dict[str, list[dict[str, Any]]]:
    """The rows of each evaluation file, and how many questions could not be asked without options."""
    ays, answer_mc, answer = [], [], []
    for q in questions:
        extra = {"subject": q.subject} if q.subject else {}
        ays.append(
            data.mc_row(
                config.name,
                q.question,
                q.options,
                q.answer,
                template=prompts.AYS_MC_WITH_INSTRUCTION,
                **extra,
            )
        )
        wrong = _wrong_option(q, config.seed, "incorrect")
        answer_mc += data.answer_mc_rows(config.name, q.question, q.options, q.answer, wrong)
        if stands_alone(q):
            answer += data.answer_rows(
                config.name, q.question, q.options[q.answer], q.options[wrong], aliases=[q.options[q.answer]]
            )
    return {data.ARE_YOU_SURE_FILE: ays, ANSWER_MC_FILE: answer_mc, data.ANSWER_FILE: answer}


# ------------------------------------------------------------------------------------- SAA pairs
def saa_record(question: Question, config: DomainConfig) -> dict[str, Any]:
    """One preference pair by the paper's rule: chosen is the right option; rejected is the suggested one
    when it is wrong, else a wrong one drawn with the seed. The suggestion names the right option for
    half the questions (by the seed), for or against it, before or after the question."""
    rng = _draw(config.seed, "saa", question.id)
    suggestion_correct = rng.random() < 0.5
    named = question.answer if suggestion_correct else _wrong_option(question, config.seed, "named")
    polarity = "for" if rng.random() < 0.6 else "against"
    sentences = prompts.SAA_FOR_SENTENCES if polarity == "for" else prompts.SAA_AGAINST_SENTENCES
    sentence = rng.choice(sentences)
    letters = question.letters
    option = f"({letters[named]}) {question.options[named].rstrip('.')}"
    answers = "\n".join(f"({letter}) {text}" for letter, text in zip(letters, question.options, strict=True))
    body = prompts.SAA_QUESTION.format(question=question.question, answers=answers)
    position = "before" if rng.random() < 0.5 else "after"
    said = sentence.format(option=option)
    parts = [said, body] if position == "before" else [body, said]
    rejected = named if not suggestion_correct else _wrong_option(question, config.seed, "rejected")
    respond = prompts.SAA_RESPONSE.format
    return {
        "id": f"{config.name}-{question.id}",
        "instruction": "\n\n".join(parts) + "\n\n" + prompts.SAA_INSTRUCTION,
        "chosen": respond(letter=letters[question.answer], text=question.options[question.answer]),
        "rejected": respond(letter=letters[rejected], text=question.options[rejected]),
        "source_dataset": config.name,
        "source_id": question.id,
        "source_row": question.row,
        "suggestion_polarity": polarity,
        "suggestion_position": position,
        "suggested_letter": letters[named],
        "correct_letter": letters[question.answer],
        "rejected_letter": letters[rejected],
        "suggestion_correct": suggestion_correct,
    }


def disjointness(evaluation: Sequence[str], saa: Sequence[Question]) -> dict[str, Any]:
    """What ``overlap.json`` proves: no SAA question is an evaluation question (of this build's split or
    of an ``--exclude`` set), by normalised text."""
    shared = set(evaluation) & {tables.normalized(q.question) for q in saa}
    return {
        "method": "questions compared after normalisation (case, accents, punctuation, articles, spacing)",
        "evaluation_questions": len(set(evaluation)),
        "saa_questions": len(saa),
        "shared_questions": len(shared),
        "shared": sorted(shared)[:20],
    }


# ---------------------------------------------------------------------------------------- writing
def _jsonl(rows: Sequence[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def _card(kind: str, report: dict[str, Any]) -> str:
    counts = report["counts"]
    lines = [
        f"# {report['name']}: {kind} built by syco-domain",
        "",
        f"From `{report['input']['source']}` (sha256 `{report['input']['sha256']}`), with "
        f"`{report['command']}`.",
        "",
        "This is the user's own data, not Sharma et al.'s sub-datasets: results on it are reported under "
        f"the name `{report['name']}`.",
        "",
        "| | count |",
        "|---|---|",
        *(f"| {k.replace('_', ' ')} | {v} |" for k, v in counts.items() if isinstance(v, int)),
        "",
        "Rows left out of the table, by reason: "
        + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in report["input"]["dropped"].items() if v)
        or "none",
        "",
    ]
    return "\n".join(lines)


def _write_folder(target: Path, written: dict[str, bytes | str], flag: str) -> None:
    with files.replacing_dir(target) as tmp:
        for name, content in written.items():
            path = tmp / name
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
        files.mark_built(tmp, TOOL)


def _check_folder(target: Path, flag: str, overwrite: bool, inputs: Sequence[tuple[str, str]]) -> None:
    resolved = target.expanduser().resolve()
    for what, path in inputs:
        src = Path(path).expanduser().resolve()
        if Path(path).exists() and (
            src == resolved or src.is_relative_to(resolved) or resolved.is_relative_to(src)
        ):
            raise files.RefusedFolder(
                f"{flag} {target} holds or lies inside {what} {path}; choose another folder"
            )
    if target.exists() and target.is_dir() and any(target.iterdir()) and not overwrite:
        raise files.RefusedFolder(
            f"{flag} {target} already exists and is not empty; pass --overwrite to replace it"
        )
    files.check_replaceable(target, TOOL, flag)


def build(config: DomainConfig, command: str = "") -> DomainResult:
    """Read, check, split and write; nothing is written when anything fails."""
    if not task_names.DATA_NAME.match(config.name):
        raise DataError(
            f"--name {config.name!r}: expected 1-48 characters, lower-case letters, digits and underscores, "
            "starting with a letter (it names the data in every result)"
        )
    if config.name in task_names.SHARMA_SUBSETS:
        raise DataError(
            f"--name {config.name!r} is one of Sharma et al.'s sub-datasets; your data needs a name of its "
            "own, so that no result on it reads as theirs"
        )
    if not (config.out or config.saa_out):
        raise DataError("nothing to build: give --out (an evaluation folder), --saa_out (SAA pairs), or both")
    if not 0.0 < config.saa_share < 1.0:
        raise DataError(f"--saa_share {config.saa_share}: expected a fraction between 0 and 1")
    inputs = [("--input", config.input), *(("--exclude", e) for e in config.exclude)]
    targets = [(Path(p), f) for p, f in ((config.out, "--out"), (config.saa_out, "--saa_out")) if p]
    if len(targets) == 2 and targets[0][0].resolve() == targets[1][0].resolve():
        raise DataError("--out and --saa_out are the same folder; give two")
    for target, flag in targets:
        _check_folder(target, flag, config.overwrite, inputs)

    excluded = excluded_questions(config.exclude)
    table = tables.read_table(
        config.input, config.columns, config.answer_base, config.revision, config.split, excluded
    )
    if config.strict and sum(table.dropped.values()):
        reason, shown = next((r, e) for r, e in table.examples.items() if e)
        raise DataError(
            f"--strict: {sum(table.dropped.values())} unusable row(s); first ({reason}): {shown[0]}"
        )
    if not table.questions:
        raise DataError(
            f"no usable question among {table.rows_read} row(s): {dict(table.dropped)}", config.input
        )
    evaluation, saa = split(table.questions, config)
    report: dict[str, Any] = {
        "name": config.name,
        "command": command or f"syco-domain build --input {config.input} --name {config.name}",
        "built_by": TOOL,
        "seed": config.seed,
        "saa_share": config.saa_share if (config.out and config.saa_out) else None,
        "input": table.report(),
        "excluded_sets": list(config.exclude),
        "counts": {"usable": len(table.questions), "evaluation": len(evaluation), "saa": len(saa)},
    }
    result = DomainResult(
        Path(config.out) if config.out else None, Path(config.saa_out) if config.saa_out else None
    )
    pending: list[tuple[Path, dict[str, bytes | str], str]] = []
    if config.out:
        rows = evaluation_rows(evaluation, config)
        report["counts"] |= {
            "answer_free_form": len(rows[data.ANSWER_FILE]) // 4,
            "needs_its_options": len(evaluation) - len(rows[data.ANSWER_FILE]) // 4,
            "subjects": len({q.subject for q in evaluation if q.subject}),
        }
        content: dict[str, bytes | str] = {name: _jsonl(r) for name, r in rows.items()}
        eval_report = {**report, "files": {n: hashlib.sha256(b).hexdigest() for n, b in content.items()}}  # type: ignore[arg-type]
        content[MANIFEST] = _dump(eval_report)
        content["README.md"] = _card("an evaluation set", eval_report)
        pending.append((Path(config.out), content, "--out"))
        report["evaluation_files"] = eval_report["files"]
    if config.saa_out:
        records = [saa_record(q, config) for q in saa]
        report["counts"] |= {
            "saa_suggestion_correct": sum(r["suggestion_correct"] for r in records),
            "saa_suggestion_incorrect": sum(not r["suggestion_correct"] for r in records),
        }
        evaluated = [tables.normalized(q.question) for q in evaluation] + sorted(excluded)
        overlap = disjointness(evaluated, saa) | {
            "evaluation_folder": config.out,
            "excluded": list(config.exclude),
        }
        saa_report = {**report, "overlap": overlap}
        saa_report["screening"] = _screening(records, saa)
        data_bytes = _jsonl(records)
        from sycophancy_eval_kit.saa_data import card

        content = {
            SAA_FILE: data_bytes,
            "overlap.json": _dump(saa_report["overlap"]),
            "screening.json": _dump(saa_report["screening"]),
            "build_report.json": _dump(saa_report),
            "dataset_info.json": card.dumps(card.dataset_info(data_bytes)),
            "README.md": _card("SAA preference pairs", saa_report),
        }
        pending.append((Path(config.saa_out), content, "--saa_out"))
        report["overlap"] = saa_report["overlap"]
    for target, content, flag in pending:
        try:
            _write_folder(target, content, flag)
        except OSError as err:
            raise DataError(
                f"cannot write ({err.strerror or err}); expected a writable folder", f"{flag} {target}"
            ) from err
    result.report = report
    return result


def _screening(records: Sequence[dict[str, Any]], questions: Sequence[Question]) -> dict[str, Any]:
    """The SAA builder's PII and offensive-language screening on the pairs (hits name the table row;
    reported, not dropped: the user's own data)."""
    from sycophancy_eval_kit.saa_data import screening

    items = [
        (q.row, r["instruction"], "\n".join([q.question, *q.options]))
        for r, q in zip(records, questions, strict=True)
    ]
    return screening.screen_texts(items).as_dict()


def excluded_questions(paths: Sequence[str]) -> set[str]:
    """Every question (normalised) of the evaluation folders or files given to ``--exclude``."""
    found: set[str] = set()
    for raw in paths:
        path = Path(raw)
        sources = [path] if path.is_file() else sorted(path.glob("*.jsonl")) if path.is_dir() else []
        if not sources:
            raise DataError(
                "no such evaluation file or folder (expected Sharma-format .jsonl files)", f"--exclude {raw}"
            )
        for source in sources:
            for line, obj in files.iter_json_lines(source, "one Sharma-format row per line"):
                base = obj.get("base") if isinstance(obj, dict) else None
                question = base.get("question") if isinstance(base, dict) else None
                if not isinstance(question, str):
                    raise DataError("expected a Sharma-format row with base.question", f"{source}:{line}")
                found.add(tables.normalized(question))
    return found
