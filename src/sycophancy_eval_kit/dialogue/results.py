"""From finished dialogues to lm-eval's results layout: scores, samples lines, task and group rows.

Questions come from the one-pass tasks (``TaskManager.load``), so data loading, validation and
provenance are theirs; letters are read with ``answers.parse_letter`` (every backend's style) and
answers graded with ``grading``: the first answer and the final answer are both answers to the
question, so the flip rate needs no grading of the reply to the challenge. Per-question metrics are
``registry.ays_question_metrics`` (``REPORTS["dialogue"]``), aggregated with the registry's own
functions (``aggregation.aggregate``, ``aggregation.group_value``), the same numbers lm-eval computes for the
one-pass tasks. Results are keyed ``sycophancy_ays_dialogue_<subset>`` (group ``sycophancy_ays_dialogue``);
each samples line keeps the full transcript.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from lm_eval.api.model import LM
from lm_eval.evaluator_utils import get_sample_size

from sycophancy_eval_kit.core import aggregation, lm_eval_compat, prompts, registry, task_names
from sycophancy_eval_kit.core.answers import free_text, parse_letter
from sycophancy_eval_kit.core.grading import grade_letter, grade_response
from sycophancy_eval_kit.dialogue.protocol import (
    CHALLENGE,
    DEFAULT_GEN_KWARGS,
    FINAL,
    FIRST,
    FIRST_LETTER,
    Dialogue,
    continues_prefills,
    run_dialogues,
)


def dialogue_name(one_pass_name: str) -> str:
    """``sycophancy_ays_<subset>`` -> ``sycophancy_ays_dialogue_<subset>``; the group likewise."""
    if one_pass_name == task_names.group_name(registry.AYS):
        return task_names.group_name(registry.AYS, task_names.DIALOGUE)
    parsed = task_names.parse_task_name(one_pass_name)
    one_pass = parsed is not None and parsed.protocol == task_names.ONE_PASS
    if not one_pass or parsed.family != registry.AYS or parsed.judged:
        raise ValueError(f"{one_pass_name} is not a one-pass Are-You-Sure task")
    return dataclasses.replace(parsed, protocol=task_names.DIALOGUE).name


def read_answers(d: Dialogue) -> tuple[str | None, str | None]:
    """The first and final answers as read (a letter, or the free-form reply; ``None``: unreadable)."""
    first, final = d.turns[FIRST], d.turns[FINAL]
    if d.multiple_choice:
        letters = d.doc["letters"]
        answer = parse_letter(first.reply, letters, after_prefill=first.prefilled)
        if answer is None and FIRST_LETTER in d.turns:  # *_cot reasoning that names no letter
            side = d.turns[FIRST_LETTER]
            answer = parse_letter(side.reply, letters, after_prefill=side.prefilled)
        return answer, parse_letter(final.reply, letters, after_prefill=final.prefilled)
    return free_text(first.reply) or None, free_text(final.reply) or None


def score(d: Dialogue) -> tuple[dict[str, float], str | None, str | None]:
    """Per-question metrics (``registry.ays_question_metrics``) and the answers as read."""
    first, final = read_answers(d)
    if d.multiple_choice:
        graded = grade_letter(first, d.doc["correct_letter"]), grade_letter(final, d.doc["correct_letter"])
    else:
        accepted = d.doc["accepted_answers"]
        graded = grade_response(first or "", accepted), grade_response(final or "", accepted)
    return registry.ays_question_metrics(*graded), first, final


def sample_record(d: Dialogue, values: dict[str, float], first: str | None, final: str | None) -> dict:
    """One line of samples_*.jsonl in lm-eval's layout, plus the transcript and the answers read.

    ``resps`` holds the three main turns (first answer, reply to the challenge, final answer); a
    ``*_cot`` question's side turn (its first letter) is under ``first_letter_turn``.
    """
    from lm_eval.utils import handle_non_serializable, hash_string

    target = d.doc["correct_letter"] if d.multiple_choice else d.doc["correct_answer"]
    main = [d.turns[s] for s in (FIRST, CHALLENGE, FINAL)]
    first_ctx = main[0].arguments[0]
    record = {
        "doc_id": d.doc_id,
        "doc": d.doc,
        "target": target,
        "arguments": [t.arguments for t in main],
        "resps": [[t.reply] for t in main],
        "filtered_resps": [t.reply for t in main],
        "filter": "none",
        "metrics": list(values),
        "doc_hash": hash_string(
            json.dumps(d.doc, indent=2, default=handle_non_serializable, ensure_ascii=False)
        ),
        "prompt_hash": hash_string(getattr(first_ctx, "prompt", first_ctx)),
        "target_hash": hash_string(str(target)),
        **values,
        "first_answer": first,
        "final_answer": final,
        "prefill_continued": any(t.continued for t in main),
        "prefill_sent": d.prefills,
        "transcript": d.transcript,
    }
    if FIRST_LETTER in d.turns:
        side = d.turns[FIRST_LETTER]
        record["first_letter_turn"] = {"messages": side.messages, "reply": side.reply}
        # the reasoning's own letter is the first answer; the side turn's counts only where it names none
        record["first_letter_in_reasoning"] = parse_letter(
            d.turns[FIRST].reply, d.doc["letters"], after_prefill=False
        )
        record["first_letter_source"] = (
            "reasoning" if record["first_letter_in_reasoning"] else "side_turn" if first is not None else None
        )
    return record


def task_rows(
    raw_by_task: Mapping[str, Mapping[tuple[str, str], Sequence[Any]]], bootstrap_iters: int
) -> dict[str, dict[str, Any]]:
    """One results row per dialogue task from its per-question values."""
    rows = {}
    for name, raw in raw_by_task.items():
        n = max((len(v) for v in raw.values()), default=0)
        row = aggregation.aggregate(raw, bootstrap_iters)
        rows[name] = {"name": name, "alias": name, "sample_len": n, **row}
    return rows


def group_rows(
    rows: Mapping[str, dict[str, Any]], groups: Mapping[str, Any], filter_key: str = "none"
) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
    """The dialogue groups' rows and members: every mean metric pooled over the questions that define
    it (``aggregation.group_value``), as the one-pass groups and the leaderboard pool theirs."""
    means = [n for n in registry.REPORTS["dialogue"] if registry.METRICS[n].aggregation == "nan_mean"]
    out: dict[str, dict[str, Any]] = {}
    members: dict[str, list[str]] = {}
    for group_name, group in groups.items():
        name = dialogue_name(group_name)
        children = [c for c in (dialogue_name(t.task_name) for t in group.get_all_tasks()) if c in rows]
        members[name] = children
        row: dict[str, Any] = {
            "name": name,
            "alias": name,
            "sample_len": sum(rows[c]["sample_len"] for c in children),
        }
        for metric in means:
            key, stderr_key = f"{metric},{filter_key}", f"{metric}_stderr,{filter_key}"
            have = [c for c in children if isinstance(rows[c].get(key), aggregation.Counted)]
            if have:
                values, stderrs = [rows[c][key] for c in have], [rows[c][stderr_key] for c in have]
                row[key], row[stderr_key], count = aggregation.group_value(
                    values, stderrs, weight_by_size=True
                )
                row.setdefault("sample_count", {})[key] = count  # the denominator, as the one-pass groups
        out[name] = row
    return out, members


def evaluate_dialogue(
    lm: LM,
    loaded: dict[str, Any],
    *,
    system_instruction: str | None = None,
    apply_chat_template: bool = False,
    gen_kwargs: dict[str, Any] | None = None,
    limit: float | None = None,
    bootstrap_iters: int = 100000,
) -> dict[str, Any]:
    """Run the dialogue on the tasks lm-eval's ``TaskManager.load`` returned; lm-eval's results layout.

    The result holds ``samples`` (per task) like ``simple_evaluate(log_samples=True)``.
    """
    lm_eval_compat.apply()
    tasks: dict[str, Any] = loaded["tasks"]
    for name in tasks:
        parsed = task_names.parse_task_name(name)
        if parsed is None or parsed.family != registry.AYS or parsed.protocol != task_names.ONE_PASS:
            raise ValueError(f"{name} is not an Are-You-Sure task; the dialogue runs sycophancy_ays_<subset>")
    kwargs = {**DEFAULT_GEN_KWARGS, **(gen_kwargs or {})}
    render = partial(
        prompts.render_conversation,
        system_instruction=system_instruction,
        chat_template=lm.apply_chat_template if apply_chat_template else None,
    )
    dialogues: list[Dialogue] = []
    sizes: dict[str, int] = {}
    prefills = continues_prefills(render)
    for name, task in tasks.items():
        sizes[name] = len(task.eval_docs)
        for doc_id, doc in task.doc_iterator(limit=get_sample_size(task, limit)):
            dialogues.append(Dialogue(name, doc_id, doc, task.MULTIPLE_CHOICE, prefills=prefills))
    run_dialogues(lm, dialogues, render, kwargs)

    raw: dict[str, dict[tuple[str, str], list[Any]]] = {dialogue_name(n): defaultdict(list) for n in tasks}
    samples: dict[str, list[dict[str, Any]]] = {dialogue_name(n): [] for n in tasks}
    for d in dialogues:
        values, first, final = score(d)
        for metric, value in values.items():
            raw[dialogue_name(d.task)][(metric, "none")].append(value)
        samples[dialogue_name(d.task)].append(sample_record(d, values, first, final))

    rows = task_rows(raw, bootstrap_iters)
    groups, members = group_rows(rows, loaded.get("groups") or {})
    configs = {}
    for name, task in tasks.items():
        config = dict(task.dump_config())
        config.update(
            task=dialogue_name(name),
            output_type="generate_until",
            generation_kwargs=kwargs,
            process_results="sycophancy_eval_kit.dialogue.score (adaptive multi-turn protocol)",
            metadata={**(config.get("metadata") or {}), "protocol": "dialogue", "one_pass_task": name},
        )
        configs[dialogue_name(name)] = config
    hib = {n: {m: registry.METRICS[m].higher_is_better for m, _ in raw[n]} for n in raw}
    versions: dict[str, Any] = {dialogue_name(n): t.VERSION for n, t in tasks.items()}
    versions |= {dialogue_name(g): group.version for g, group in (loaded.get("groups") or {}).items()}
    results: dict[str, Any] = {
        "results": {**rows, **groups},
        "group_subtasks": members,
        "configs": dict(sorted(configs.items())),
        "versions": dict(sorted(versions.items())),
        "n-shot": {n: 0 for n in [*rows, *groups]},
        "higher_is_better": dict(sorted(hib.items())) | {g: hib[c[0]] for g, c in members.items() if c},
        "n-samples": {
            dialogue_name(n): {"original": sizes[n], "effective": len(samples[dialogue_name(n)])}
            for n in tasks
        },
        "samples": samples,
    }
    if groups:
        results["groups"] = groups
    return results
