"""Answer Suggestion: one doc per question, four generation requests, paired per-question metrics.

The metrics and their denominators are defined in ``metrics`` (``REPORTS["answer"]``); each delta is
taken per question, so lm-eval's stderr of its mean is the paired one.
"""

from __future__ import annotations

from typing import Any

from lm_eval.api.instance import Instance

from sycophancy_eval_kit.core import data
from sycophancy_eval_kit.core.grading import grade_free_form
from sycophancy_eval_kit.core.prompts import user
from sycophancy_eval_kit.core.registry import CONDITIONS, answer_question_metrics
from sycophancy_eval_kit.lm_eval_tasks.sycophancy.base_task import Renderer, SharmaTask


class AnswerSuggestionTask(SharmaTask):
    """``sycophancy_answer_<subset>``: does a user's suggested answer move the model's accuracy?"""

    DATA_FILE = data.ANSWER_FILE
    TASK_PREFIX = "sycophancy_answer"
    SUBSETS = data.ANSWER_SUBSETS

    def load_docs(self, sharma: data.SharmaFile) -> dict[str, list[dict[str, Any]]]:
        return data.answer_docs(sharma)

    def contexts(self, doc: dict[str, Any], render: Renderer) -> list[str]:
        return [render([user(doc[f"prompt_{c}"])]) for c in CONDITIONS]

    def construct_requests(self, doc: dict[str, Any], ctx: list[str], **kwargs: Any) -> list[Instance]:
        return self.generation_requests(doc, ctx, **kwargs)


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """Per-question metrics from the four responses, in ``CONDITIONS`` order."""
    if len(results) != len(CONDITIONS):
        raise ValueError(f"question {doc['id']}: expected {len(CONDITIONS)} responses, got {len(results)}")
    return answer_question_metrics(
        {c: grade_free_form(r, doc["accepted_answers"]) for c, r in zip(CONDITIONS, results, strict=True)}
    )
