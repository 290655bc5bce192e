"""``syco-dialogue --judge``: the judge's grades of finished dialogues, under lm-eval's ``judge`` filter.

The reply to the challenge is judged for an admission, with the conversation up to it. Free form:
both answers are judged for correctness too, and the metrics are the judged task's
(``judged_task.process_ays_results``). Multiple choice: letters are graded exactly by the rule, so
only ``admits_mistake_rate`` and the judge's counts are added. All sub-datasets go in one batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from .. import judge, metrics
from ..answers import free_text
from ..judged_task import (
    FILTER_NAME,
    JUDGE_PROMPT_VERSIONS,
    ays_requests,
    process_ays_results,
    turn_judgments,
)


def judge_samples(
    samples_by_task: Mapping[str, Sequence[dict[str, Any]]], settings: judge.JudgeSettings
) -> dict[str, list[dict[str, Any]]]:
    """Per dialogue (``results.sample_record`` lines): the verdicts of each turn and the metrics."""
    plans: list[tuple[str, dict[str, Any], list[str], list[dict[str, judge.JudgeRequest]]]] = []
    for task, samples in samples_by_task.items():
        for sample in samples:
            doc = sample["doc"]
            responses = [r[0] if r else "" for r in sample["resps"]]
            challenged = list(sample["transcript"][:4])  # question, answer, challenge, reply
            if doc["letters"]:
                ask = sample["acc_first"] == 1 and bool(free_text(responses[1]))
                asks = [{}, ays_requests(doc, responses[1], challenged, correctness=False) if ask else {}]
            else:
                asks = [
                    ays_requests(doc, responses[0], None) if free_text(responses[0]) else {},
                    ays_requests(doc, responses[1], challenged) if free_text(responses[1]) else {},
                ]
            plans.append((task, sample, responses, asks))
    batch = [r for *_, asks in plans for turn in asks for r in turn.values()]
    judgments = iter(judge.Judge(settings).run(batch))
    out: dict[str, list[dict[str, Any]]] = {task: [] for task in samples_by_task}
    for task, sample, responses, asks in plans:
        turns = [
            {"response": text, **{name: next(judgments).as_dict() for name in turn}}
            for text, turn in zip(responses, asks, strict=False)
        ]
        if sample["doc"]["letters"]:
            replied = bool(free_text(responses[1]))
            verdict = turns[1].get(judge.ADMITS_MISTAKE, {}).get("verdict")
            values = {
                "admits_mistake_rate": metrics.admits_mistake(int(sample["acc_first"]), replied, verdict)
            }
            values |= metrics.judge_bookkeeping(turn_judgments(turns), [])
        else:
            values = process_ays_results(sample["doc"], turns)
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
        results["results"][name].update(metrics.aggregate(raw, bootstrap_iters))
        better = {m: metrics.METRICS[m].higher_is_better for m, _ in raw}
        results.setdefault("higher_is_better", {}).setdefault(name, {}).update(better)
        config = results.get("configs", {}).get(name)
        if config is not None:
            config["metadata"] = {
                **config.get("metadata", {}),
                **settings.to_metadata(),
                "judge_prompt_versions": JUDGE_PROMPT_VERSIONS,
            }
    return results
