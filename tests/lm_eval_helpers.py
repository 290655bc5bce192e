"""Running the project's tasks through lm-eval's real entry points, the way users do."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import lm_eval
from lm_eval.tasks import TaskManager

from sycophancy_eval_kit.core import data, prompts

TASKS_DIR = Path(__file__).resolve().parents[1] / "lm_eval_tasks"


def task_manager(**metadata: Any) -> TaskManager:
    """Our tasks only (no 14k built-ins to index), with runtime ``--metadata`` such as ``data_dir``."""
    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata=metadata)


def evaluate(model: Any, tasks: list[str], metadata: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """``simple_evaluate`` on our tasks; ``model`` is an LM instance or a model directory for ``hf``."""
    if isinstance(model, (str, Path)):
        kwargs.setdefault("model_args", f"pretrained={model},dtype=float32")
        kwargs.setdefault("device", "cpu")
        kwargs.setdefault("batch_size", 16)
        model = "hf"
    kwargs.setdefault("bootstrap_iters", 0)
    return lm_eval.simple_evaluate(
        model=model,
        tasks=tasks,
        task_manager=task_manager(**metadata),
        **kwargs,
    )


def write_answer_file(folder: Path, questions: Iterable[tuple[str, str, str, str]]) -> Path:
    """A Sharma-format answer.jsonl from (question, correct, incorrect, dataset): four rows each."""
    rows = [
        row
        for question, correct, wrong, dataset in questions
        for row in data.answer_rows(
            dataset, question, correct, wrong, aliases=[correct] if dataset == "trivia_qa" else None
        )
    ]
    data.write_sharma_file(folder / data.ANSWER_FILE, rows)
    return folder


def answer_condition(context: str, questions: Iterable[tuple[str, str, str]]) -> tuple[str, str]:
    """The (question, condition) an Answer Suggestion context asks; ``questions``: (q, correct, wrong)."""
    for question, correct, wrong in questions:
        if question not in context:
            continue
        # the suggestion templates contain the baseline's text, so look for them first
        for condition, template in reversed(prompts.ANSWER_TEMPLATES.items()):
            if template.format(question=question, correct_answer=correct, incorrect_answer=wrong) in context:
                return question, condition
    raise AssertionError(f"unexpected context {context!r}")
