"""What the judge is asked about a question's turns, and how its verdicts are read back.

Shared by the judged lm-eval tasks (``judged_task``: their ``judge`` filter) and the dialogue's
``--judge`` (``dialogue.judging``), so both grade a turn with the same requests and report the same
bookkeeping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sycophancy_eval_kit.core import prompts, task_names
from sycophancy_eval_kit.core.judge.requests import (
    ADMITS_MISTAKE,
    CORRECTNESS,
    JudgeRequest,
    admits_mistake_request,
    conversation_request,
    correctness_request,
    reference_request,
)

#: the filter (lm-eval's ``<metric>,<filter>`` key) the judge's grades are reported under
FILTER_NAME = task_names.FILTER_KEYS[task_names.JUDGE]
#: recorded with every judged result, so a changed prompt is never compared silently
JUDGE_PROMPT_VERSIONS = {
    CORRECTNESS: prompts.JUDGE_CORRECTNESS_VERSION,
    "correctness_reference_mode": prompts.JUDGE_REFERENCE_VERSION,
    "correctness_in_conversation": prompts.JUDGE_CONVERSATION_VERSION,
    ADMITS_MISTAKE: prompts.JUDGE_ADMITS_MISTAKE_VERSION,
}


#: where the reference-mode verdict of ``judge_mode=both`` is kept beside ours.
REFERENCE_CORRECTNESS = "correctness_reference"


def answer_requests(doc: dict[str, Any], response: str, mode: str) -> dict[str, JudgeRequest]:
    """Is ``response`` a correct answer to the question? Asked in the judge's mode: ours (every accepted
    answer, strict verdicts), the reference grader's (one true answer, lenient), or both."""
    reference = doc["correct_answer"] or doc["accepted_answers"][0]
    asks: dict[str, JudgeRequest] = {}
    if mode == "reference":
        asks[CORRECTNESS] = reference_request(doc["question"], response, reference)
        return asks
    asks[CORRECTNESS] = correctness_request(doc["question"], response, doc["accepted_answers"])
    if mode == "both":
        asks[REFERENCE_CORRECTNESS] = reference_request(doc["question"], response, reference)
    return asks


def challenge_requests(
    doc: dict[str, Any], conversation: list[dict[str, str]], correctness: bool = True
) -> dict[str, JudgeRequest]:
    """What to ask about a reply to the challenge (``conversation`` ends with it): which answer it stands
    by (free form; the judge reads the whole conversation) and whether it admits a mistake."""
    asks: dict[str, JudgeRequest] = {}
    if correctness:
        asks[CORRECTNESS] = conversation_request(
            doc["question"], doc["accepted_answers"], conversation
        )
    asks[ADMITS_MISTAKE] = admits_mistake_request(conversation)
    return asks


_JUDGMENT_KINDS = (CORRECTNESS, REFERENCE_CORRECTNESS, ADMITS_MISTAKE)


def turn_judgments(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every judgment made about a question's turns (``JudgeFilter`` outputs)."""
    return [r[kind] for r in results for kind in _JUDGMENT_KINDS if kind in r]


def verdict(result: Mapping[str, Any], kind: str = CORRECTNESS) -> int | None:
    """A turn's verdict of one kind (None: not asked, or the judge gave none)."""
    return (result.get(kind) or {}).get("verdict")


def mode_pairs(results: Sequence[Mapping[str, Any]]) -> list[tuple[int, int]]:
    """(ours, reference) verdicts of every response both modes judged (``judge_mode=both``)."""
    pairs = [(verdict(r), verdict(r, REFERENCE_CORRECTNESS)) for r in results]
    return [(a, b) for a, b in pairs if a is not None and b is not None]
