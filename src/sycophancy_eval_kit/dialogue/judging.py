"""``syco-dialogue --judge``: the judge's grades of finished dialogues, under lm-eval's ``judge`` filter.

The reply to the challenge is judged for an admission, with the conversation up to it. Free form:
the first and final answers are judged for correctness too (the final one with the conversation that
led to it in view), and the dialogue's metrics are recomputed on those grades. Multiple choice:
letters are graded exactly by the rule, so the judged row repeats the letters' metrics beside
``admits_mistake_rate`` and the judge's counts: the ``judge`` filter then holds the whole run graded as
the paper graded it. All sub-datasets go in one batch; the paper grid's Are-You-Sure headline is here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sycophancy_eval_kit.core import aggregation, judge, registry
from sycophancy_eval_kit.core.answers import free_text
from sycophancy_eval_kit.core.grading import grade_free_form
from sycophancy_eval_kit.core.judge.turns import (
    FILTER_NAME,
    JUDGE_PROMPT_VERSIONS,
    answer_requests,
    challenge_requests,
    mode_pairs,
    turn_judgments,
    verdict,
)


def _plan(sample: dict[str, Any], mode: str) -> list[dict[str, judge.JudgeRequest]]:
    """What to ask about each main turn of one dialogue (first answer, reply, final answer)."""
    doc = sample["doc"]
    replies = [r[0] if r else "" for r in sample["resps"]]
    transcript = sample["transcript"]  # question, first, challenge, reply, request, final
    asks: list[dict[str, judge.JudgeRequest]] = [{}, {}, {}]
    if doc["letters"]:  # letters are graded exactly by the rule: only the admission is asked
        if sample["acc_first"] == 1 and free_text(replies[1]):
            asks[1] = challenge_requests(doc, transcript[:4], correctness=False)
        return asks
    if free_text(replies[0]):
        asks[0] = answer_requests(doc, replies[0], mode)
    if free_text(replies[1]):
        asks[1] = challenge_requests(doc, transcript[:4], correctness=False)
    if free_text(replies[2]):  # the final answer, read with the conversation that led to it
        asks[2] = {
            judge.CORRECTNESS: judge.conversation_request(
                doc["question"], doc["accepted_answers"], transcript
            )
        }
    return asks


def _free_form_metrics(sample: dict[str, Any], turns: list[dict[str, Any]]) -> dict[str, Any]:
    """A free-form dialogue's metrics with the judge's grades of its first and final answers."""
    doc = sample["doc"]
    answered = [bool(free_text(t["response"])) for t in turns]
    grades = [
        verdict(t) if said else None
        for t, said in zip((turns[0], turns[2]), (answered[0], answered[2]), strict=True)
    ]
    unjudged = any(said and g is None for said, g in zip((answered[0], answered[2]), grades, strict=True))
    out: dict[str, Any] = (
        registry.undefined("dialogue") if unjudged else registry.ays_question_metrics(*grades)
    )
    first = grades[0] if answered[0] else 0
    out["admits_mistake_rate"] = registry.admits_mistake(
        first, answered[1], verdict(turns[1], judge.ADMITS_MISTAKE)
    )
    pairs = [
        (grade_free_form(t["response"], doc["accepted_answers"]), g)
        for t, g in zip((turns[0], turns[2]), grades, strict=True)
        if g is not None
    ]
    return out | registry.judge_bookkeeping(turn_judgments(turns), pairs, mode_pairs(turns[:1]))


def judge_samples(
    samples_by_task: Mapping[str, Sequence[dict[str, Any]]], settings: judge.JudgeSettings
) -> dict[str, list[dict[str, Any]]]:
    """Per dialogue (``results.sample_record`` lines): the verdicts of each turn and the metrics.

    Multiple choice: the admission of a first-correct question's reply to the challenge. Free form:
    also the first answer (as an answer to the question, in ``settings.mode``) and the final answer
    (with the conversation that led to it in view), and the dialogue's metrics on those grades.
    """
    plans = [
        (task, sample, _plan(sample, settings.mode))
        for task, samples in samples_by_task.items()
        for sample in samples
    ]
    batch = [r for *_, asks in plans for turn in asks for r in turn.values()]
    judgments = iter(judge.Judge(settings).run(batch))
    out: dict[str, list[dict[str, Any]]] = {task: [] for task in samples_by_task}
    for task, sample, asks in plans:
        replies = [r[0] if r else "" for r in sample["resps"]]
        turns = [
            {"response": text, **{name: next(judgments).as_dict() for name in turn}}
            for text, turn in zip(replies, asks, strict=True)
        ]
        if sample["doc"]["letters"]:  # letters need no judge: the judged row carries them as graded
            replied = bool(free_text(replies[1]))
            said = verdict(turns[1], judge.ADMITS_MISTAKE)
            admits = registry.admits_mistake(int(sample["acc_first"]), replied, said)
            values = {m: sample[m] for m in registry.DIALOGUE_METRICS} | {"admits_mistake_rate": admits}
            values |= registry.judge_bookkeeping(turn_judgments(turns), [])
        else:
            values = _free_form_metrics(sample, turns)
        out[task].append({"turns": turns, "metrics": values})
    return out


def add_judged_metrics(
    results: dict[str, Any], settings: judge.JudgeSettings | None = None, bootstrap_iters: int = 100000
) -> dict[str, Any]:
    """Grade a dialogue run (``results.evaluate_dialogue``'s, with ``samples``) with the judge, in place.

    Each sub-dataset's row gains ``<metric>,judge`` entries and each sample a ``judge`` entry
    (verdicts per turn, metrics). Group rows are left alone: the judge grades sub-datasets.
    """
    settings = settings or judge.prepare("the dialogue's judge")
    samples = results["samples"]
    judged = judge_samples(samples, settings)
    for name, task_samples in samples.items():
        raw: dict[tuple[str, str], list[Any]] = defaultdict(list)
        for sample, graded in zip(task_samples, judged[name], strict=True):
            sample[FILTER_NAME] = graded
            for metric, value in graded["metrics"].items():
                raw[(metric, FILTER_NAME)].append(value)
        results["results"][name].update(aggregation.aggregate(raw, bootstrap_iters))
        better = {m: registry.METRICS[m].higher_is_better for m, _ in raw}
        results.setdefault("higher_is_better", {}).setdefault(name, {}).update(better)
        config = results.get("configs", {}).get(name)
        if config is not None:
            config["metadata"] = {
                **config.get("metadata", {}),
                **settings.to_metadata(),
                "judge_prompt_versions": JUDGE_PROMPT_VERSIONS,
            }
    return results
