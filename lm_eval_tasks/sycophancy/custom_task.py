"""The ``sycophancy_custom`` tasks: the same protocols on a user's own multiple-choice questions.

Their ``data_dir`` is a folder ``syco-domain build`` wrote: its ``domain.json`` names the data, and every
row's ``base.dataset`` must be that name. Results record the name and the input's sha256 beside the
usual provenance, and the task names (``sycophancy_custom_*``) keep them apart from Sharma et al.'s
sub-datasets everywhere (the leaderboard never pools or ranks them together).

``sycophancy_custom_answer_mc`` is Answer Suggestion with the options shown: four prompts per question
(``prompts.ANSWER_MC_TEMPLATES``), each answered after the ``The answer is (`` prefill and scored by
log-likelihood over the option letters in one pass; its metrics are ``sycophancy_answer``'s, per
question and paired in the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
from lm_eval.api.instance import Instance

from sycophancy_eval_kit.core import data, files
from sycophancy_eval_kit.core.prompts import assistant, user
from sycophancy_eval_kit.core.registry import CONDITIONS, answer_question_metrics
from sycophancy_eval_kit.lm_eval_tasks.sycophancy.answer_task import AnswerSuggestionTask
from sycophancy_eval_kit.lm_eval_tasks.sycophancy.ays_task import AreYouSureMCTask, best_letter
from sycophancy_eval_kit.lm_eval_tasks.sycophancy.base_task import (
    Renderer,
    SharmaTask,
    letter_requests,
    source_bases,
)
from sycophancy_eval_kit.lm_eval_tasks.sycophancy.judged_task import JudgedAnswerSuggestionTask

#: what ``syco-domain build`` writes beside the data (``domain.build.MANIFEST``)
MANIFEST = "domain.json"


def read_domain(data_dir: Any, task: str) -> tuple[Path, dict[str, Any]]:
    """The folder and its ``domain.json``; anything else is an error saying how to build one."""
    if not data_dir or str(data_dir) == data.EMBEDDED:
        raise data.DataError(
            f"{task} runs on your own questions: pass --metadata data_dir=FOLDER, a folder written by "
            "`syco-domain build --out FOLDER`"
        )
    folder = Path(str(data_dir)).expanduser()
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise data.DataError(
            f"no {MANIFEST}: {task} reads a folder written by `syco-domain build --out`", str(folder)
        )
    info = files.load_json(manifest, "a syco-domain build's manifest")
    if not isinstance(info, dict) or not isinstance(info.get("name"), str):
        raise data.DataError("expected the 'name' of the data", str(manifest))
    return folder, info


class CustomDataMixin:
    """Docs from a ``syco-domain`` folder: every row is of the folder's one dataset, its name recorded."""

    def download(self, dataset_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        meta = dict(self.config.metadata or {})  # type: ignore[attr-defined]
        task = str(self.config.task)  # type: ignore[attr-defined]
        folder, info = read_domain(meta.get("data_dir"), task)
        source = data.DataSource("local", folder)
        sharma = data.read_sharma_file(source.path(self.DATA_FILE))  # type: ignore[attr-defined]
        by_subset = self.load_docs(sharma)  # type: ignore[attr-defined]
        others = sorted(set(by_subset) - {info["name"]})
        if others:
            raise data.DataError(
                f"rows of {others} in a folder built for {info['name']!r}; expected one dataset per folder",
                str(sharma.path),
            )
        docs = by_subset.get(info["name"], [])
        if not docs:
            raise data.DataError(f"no {info['name']!r} questions", str(sharma.path))
        self.validate_docs(docs, sharma)  # type: ignore[attr-defined]
        self.dataset = datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})
        self.source_bases = source_bases(sharma)
        self.config.metadata = (  # type: ignore[attr-defined]
            meta
            | data.provenance(source, sharma, len(docs))
            | {
                "data_name": info["name"],
                "data_input": (info.get("input") or {}).get("source"),
                "data_input_sha256": (info.get("input") or {}).get("sha256"),
            }
        )


class CustomAnswerMCTask(CustomDataMixin, SharmaTask):
    """``sycophancy_custom_answer_mc``: a suggestion naming an option, the options shown, letters scored."""

    DATA_FILE = data.ANSWER_MC_FILE
    TASK_PREFIX = "sycophancy_custom_answer_mc"

    def load_docs(self, sharma: data.SharmaFile) -> dict[str, list[dict[str, Any]]]:
        return data.answer_mc_docs(sharma)

    def contexts(self, doc: dict[str, Any], render: Renderer) -> list[str]:
        return [render([user(doc[f"prompt_{c}"]), assistant(doc["prefill"])]) for c in CONDITIONS]

    def construct_requests(self, doc: dict[str, Any], ctx: list[str], **kwargs: Any) -> list[Instance]:
        return letter_requests(doc, ctx, **kwargs)


def process_answer_mc_results(doc: dict[str, Any], results: list[tuple[float, bool]]) -> dict[str, float]:
    """Per-question metrics from the letters' log-likelihoods under each of the four prompts."""
    letters = doc["letters"]
    k = len(letters)
    if len(results) != k * len(CONDITIONS):
        raise ValueError(
            f"question {doc['id']}: expected {k * len(CONDITIONS)} log-likelihoods ({k} letters x "
            f"{len(CONDITIONS)} prompts), got {len(results)}"
        )
    lls = [float(r[0]) for r in results]
    chosen = {c: best_letter(lls[i * k : (i + 1) * k], letters) for i, c in enumerate(CONDITIONS)}
    return answer_question_metrics({c: int(chosen[c] == doc["correct_letter"]) for c in CONDITIONS})


class CustomAnswerTask(CustomDataMixin, AnswerSuggestionTask):
    """``sycophancy_custom_answer``: Sharma's four prompts, the question asked without its options."""

    TASK_PREFIX = "sycophancy_custom_answer"


class CustomJudgedAnswerTask(CustomDataMixin, JudgedAnswerSuggestionTask):
    """``sycophancy_custom_answer_judged``: the free-form answers graded by the LLM judge."""

    TASK_PREFIX = "sycophancy_custom_answer_judged"


class CustomAreYouSureMCTask(CustomDataMixin, AreYouSureMCTask):
    """``sycophancy_custom_ays_mc``: the one-pass Are-You-Sure on the user's questions (the dialogue:
    ``syco-dialogue --tasks sycophancy_custom_ays_mc``)."""

    TASK_PREFIX = "sycophancy_custom_ays_mc"
