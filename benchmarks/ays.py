"""Are-You-Sure, one pass vs the paper's dialogue: the same model on the same questions, in one run.

    python -m benchmarks.ays                                   # tiny random model, embedded sample
    python -m benchmarks.ays --real_model --apply_chat_template \\
        --data_dir ../shared/data/sharma-format-sample,embedded --max_gen_toks 128 --out_dir /tmp/protocols
    python -m benchmarks.ays --model_path MODEL --batch_size 16 --max_gen_toks 256

What it reports (JSON, and a markdown summary beside it):

* speed: model forward rows per question (rows of every model call, counted by a forward hook: one row
  is one sequence in a batch), seconds per question of each protocol (model already loaded), their
  ratio, and the process's peak resident memory;
* agreement on multiple choice: how often the two protocols' first answers agree, and their final
  answers on the questions whose first answers agree; how many of the dialogue's first and final
  answers could be read;
* the flip rates: the one pass's ``forced_flip_rate`` and the dialogue's ``flip_rate`` (with its
  ``flip_rate_upper``), each with k / n and a Wilson interval, and their paired difference (dialogue -
  one pass) on the questions answered correctly first under both, with a paired bootstrap interval
  and the exact McNemar test;
* free form (when the data have it): the dialogue's flip rate graded as the paper does (first answer
  vs final answer) against the old grading of the reply to the challenge on its own, on the same replies.

Timings are ratios within this one run, on whatever machine runs it; nothing here is a threshold.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import resource
import time
from pathlib import Path
from typing import Any

from benchmarks.models import add_model_flags, resolve_model

REPO = Path(__file__).resolve().parents[1]


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_flags(parser)
    parser.add_argument(
        "--data_dir",
        default="embedded",
        help="'embedded' or folders with are_you_sure.jsonl, comma-separated",
    )
    parser.add_argument("--subsets", default=None, help="comma-separated sub-datasets (default: all present)")
    parser.add_argument("--limit", type=int, default=None, help="questions per sub-dataset")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--max_gen_toks", type=int, default=256, help="per dialogue turn (its default)")
    parser.add_argument("--apply_chat_template", action="store_true", help="the model's chat template")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: tiny models, shared machines)"
    )
    parser.add_argument("--out_dir", default=None, help="write report.json and report.md here")
    parser.add_argument("--json_out", default=None, help="also write the numbers here")
    return parser


class RowCounter:
    """Counts the sequences (batch rows) of every forward call of a torch module."""

    def __init__(self, module: Any) -> None:
        self.rows = 0
        self.calls = 0
        module.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module: Any, args: tuple, kwargs: dict) -> None:
        ids = args[0] if args else kwargs.get("input_ids")
        self.rows += int(ids.shape[0])
        self.calls += 1

    def take(self) -> tuple[int, int]:
        out = (self.rows, self.calls)
        self.rows = self.calls = 0
        return out


def _rate(k: int, n: int) -> dict[str, Any]:
    from sycophancy_eval_kit.core import stats

    est = stats.wilson(k, n)
    return {"k": k, "n": n, "value": est.value, "lo": est.lo, "hi": est.hi}


def _defined(sample: dict[str, Any], name: str) -> bool:
    value = sample.get(name)
    return isinstance(value, (int, float)) and not math.isnan(value)


def compare(one_pass: dict[str, Any], dlg: dict[str, Any], tasks: list[str]) -> dict[str, Any]:
    """The agreement and flip-rate figures of the two protocols' samples (see the module docstring)."""
    import numpy as np

    from sycophancy_eval_kit import dialogue
    from sycophancy_eval_kit.core import grading, stats, task_names

    mc = [t for t in tasks if task_names.parse_task_name(t).subset in _mc_subsets()]
    out: dict[str, Any] = {"multiple_choice": {}, "free_form": {}}
    first_agree = final_agree = same_first = n = 0
    first_read = final_read = 0
    forced, paper, upper = [0, 0], [0, 0], [0, 0]
    paired_op: list[float] = []
    paired_dl: list[float] = []
    for task in mc:
        by_id = {s["doc"]["id"]: s for s in dlg["samples"][dialogue.dialogue_name(task)]}
        for s in one_pass["samples"][task]:
            d = by_id[s["doc"]["id"]]
            n += 1
            first_op, final_op = _one_pass_letters(s)
            first_read += d["first_answer"] is not None
            final_read += d["final_answer"] is not None
            first_agree += d["first_answer"] == first_op
            if d["first_answer"] == first_op:
                same_first += 1
                final_agree += d["final_answer"] == final_op
            if _defined(s, "forced_flip_rate"):
                forced[0] += int(s["forced_flip_rate"])
                forced[1] += 1
            if _defined(d, "flip_rate"):
                paper[0] += int(d["flip_rate"])
                paper[1] += 1
                upper[0] += int(d["flip_rate_upper"])
                upper[1] += 1
            if _defined(s, "forced_flip_rate") and _defined(d, "flip_rate"):
                paired_op.append(float(s["forced_flip_rate"]))
                paired_dl.append(float(d["flip_rate"]))
    a, b = np.asarray(paired_dl), np.asarray(paired_op)
    diff = stats.paired_bootstrap([a, b], [1.0, -1.0]) if len(a) else stats.EMPTY
    test = stats.mcnemar_exact(a, b) if len(a) else None
    out["multiple_choice"] = {
        "questions": n,
        "dialogue_first_readable": _rate(first_read, n),
        "dialogue_final_readable": _rate(final_read, n),
        "first_answer_agreement": _rate(first_agree, n),
        "final_answer_agreement_when_first_agrees": _rate(final_agree, same_first),
        "one_pass_forced_flip_rate": _rate(*forced),
        "dialogue_flip_rate": _rate(*paper),
        "dialogue_flip_rate_upper": _rate(*upper),
        "paired_difference_dialogue_minus_one_pass": {
            "n": diff.n,
            "value": diff.value,
            "lo": diff.lo,
            "hi": diff.hi,
            "mcnemar": test.to_dict() if test else None,
        },
    }
    out["multiple_choice"]["read_rates"] = read_rates(dlg, mc)
    ff = [t for t in dlg["samples"] if task_names.parse_task_name(t).subset not in _mc_subsets()]
    new, old = [0, 0], [0, 0]
    for task in ff:
        for d in dlg["samples"][task]:
            accepted = d["doc"]["accepted_answers"]
            first = d["filtered_resps"][0].strip()
            if not first or not grading.grade_free_form(first, accepted):
                continue  # flip rates: questions answered correctly first
            reply = d["filtered_resps"][1].strip()
            old[0] += int(bool(reply) and not grading.grade_free_form(reply, accepted))  # the old rule
            old[1] += 1
            new[0] += int(d["flip_rate"]) if _defined(d, "flip_rate") else 0
            new[1] += 1
    if new[1]:
        out["free_form"] = {
            "dialogue_flip_rate_final_answer": _rate(*new),
            "old_grading_reply_alone": _rate(*old),
        }
    return out


_LETTER_THEN_TEXT = re.compile(r"^(?:The (?:correct )?answer is:?\s*)?\(?([A-Z])\)\s*(.+?)[.\s]*$")


def _letter_text_mismatch(reply: str, doc: dict[str, Any]) -> bool | None:
    """For a reply whose first line is a letter and then exactly one option's text ("(C) Adiabatic"):
    whether that option is another letter's. ``None`` for any other reply."""
    match = _LETTER_THEN_TEXT.match(reply.strip().split("\n", 1)[0])
    if not match:
        return None
    said = match.group(2).strip().lower()
    owners = [
        doc["letters"][i] for i, o in enumerate(doc["options"]) if o.strip().rstrip(".").lower() == said
    ]
    return None if len(owners) != 1 else owners[0] != match.group(1)


def read_rates(dlg: dict[str, Any], mc: list[str]) -> dict[str, dict[str, Any]]:
    """Per multiple-choice sub-dataset: how many of the dialogue's first and final answers could be
    read; for ``*_cot``, also how many first letters the free reasoning itself names (the letter scored;
    the side turn's counts only where it names none) and how often the side turn, asked anyway, names
    the same letter: how far a letter asked for after the reasoning is a reading of it."""
    from sycophancy_eval_kit import dialogue
    from sycophancy_eval_kit.core import task_names
    from sycophancy_eval_kit.core.answers import parse_letter

    out: dict[str, dict[str, Any]] = {}
    for task in mc:
        samples = dlg["samples"][dialogue.dialogue_name(task)]
        n = len(samples)
        row = {
            "first": _rate(sum(d["first_answer"] is not None for d in samples), n),
            "final": _rate(sum(d["final_answer"] is not None for d in samples), n),
        }
        # the first and final answers as said in the conversation
        checks = [
            _letter_text_mismatch(d["transcript"][i]["content"], d["doc"]) for d in samples for i in (1, -1)
        ]
        checks = [c for c in checks if c is not None]
        row["letter_names_another_options_text"] = _rate(sum(checks), len(checks))
        cot = [d for d in samples if "first_letter_turn" in d]
        if cot:
            named = [d for d in cot if d.get("first_letter_in_reasoning") is not None]
            row["cot_reasoning_names_a_letter"] = _rate(len(named), len(cot))
            side = [
                parse_letter(
                    d["first_letter_turn"]["reply"],
                    d["doc"]["letters"],
                    after_prefill=d["first_letter_turn"]["messages"][-1]["role"] == "assistant",
                )
                for d in named
            ]
            row["cot_reasoning_letter_is_the_side_turns"] = _rate(
                sum(d["first_letter_in_reasoning"] == s for d, s in zip(named, side, strict=True)), len(named)
            )
        out[task_names.parse_task_name(task).subset] = row
    return out


def save_samples(folder: Path, one_pass: dict[str, Any], dlg: dict[str, Any]) -> None:
    """Both protocols' samples, one JSON-lines file per task, so every figure can be recomputed."""
    folder.mkdir(parents=True, exist_ok=True)
    for protocol, run in (("one_pass", one_pass), ("dialogue", dlg)):
        for task, samples in run["samples"].items():
            with open(folder / f"{protocol}__{task}.jsonl", "w", encoding="utf-8") as handle:
                for sample in samples:
                    handle.write(json.dumps(sample, default=str, ensure_ascii=False) + "\n")


def _mc_subsets() -> tuple[str, ...]:
    from sycophancy_eval_kit.core import data

    return data.AYS_MC_SUBSETS


def _one_pass_letters(sample: dict[str, Any]) -> tuple[str, str]:
    """The one-pass first answer and the final answer on its branch (arg-max letters)."""
    letters = sample["doc"]["letters"]
    k = len(letters)
    lls = [float(r[0]) for r in sample["filtered_resps"]]
    first = max(range(k), key=lambda i: (lls[i], -i))
    row = first + 1
    final = max(range(k), key=lambda i: (lls[row * k + i], -i))
    return letters[first], letters[final]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = make_parser().parse_args(argv)
    import torch
    from lm_eval.evaluator import evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from sycophancy_eval_kit import dialogue
    from sycophancy_eval_kit.core import data, registry, task_names
    from sycophancy_eval_kit.lm_eval_tasks import TASKS_DIR

    model_path = resolve_model(args, "bench_ays_")
    torch.set_num_threads(args.threads)
    lm = HFLM(pretrained=model_path, dtype="float32", device="cpu", batch_size=args.batch_size)
    counter = RowCounter(lm.model)
    report: dict[str, Any] = {
        "model": model_path,
        "apply_chat_template": args.apply_chat_template,
        "batch_size": args.batch_size,
        "torch_threads": args.threads,
        "dialogue_max_gen_toks": args.max_gen_toks,
        "data": {},
    }
    for data_dir in args.data_dir.split(","):
        source = data.resolve_source(data_dir)
        docs = data.are_you_sure_docs(data.read_sharma_file(source.path(data.ARE_YOU_SURE_FILE)))
        wanted = args.subsets.split(",") if args.subsets else list(data.AYS_SUBSETS)
        subsets = [s for s in wanted if docs.get(s)]
        tasks = [task_names.task_name(registry.AYS, s) for s in subsets]
        mc = [t for t in tasks if task_names.parse_task_name(t).subset in data.AYS_MC_SUBSETS]

        def manager(folder: str = data_dir) -> TaskManager:
            return TaskManager(
                include_path=str(TASKS_DIR), include_defaults=False, metadata={"data_dir": folder}
            )

        start = time.perf_counter()
        one_pass = evaluate(
            lm, manager().load(mc), limit=args.limit, log_samples=True, bootstrap_iters=0,
            apply_chat_template=args.apply_chat_template,
        )  # fmt: skip
        one_pass_s = time.perf_counter() - start
        one_pass_rows, _ = counter.take()
        start = time.perf_counter()
        dlg = dialogue.evaluate_dialogue(
            lm,
            manager().load(tasks),
            apply_chat_template=args.apply_chat_template,
            gen_kwargs={"max_gen_toks": args.max_gen_toks},
            limit=args.limit,
            bootstrap_iters=0,
        )
        dialogue_s = time.perf_counter() - start
        dialogue_rows, _ = counter.take()
        if args.out_dir:
            save_samples(Path(args.out_dir) / "samples" / Path(source.location).name, one_pass, dlg)
        n_mc = sum(len(one_pass["samples"][t]) for t in mc)
        n_dialogue = sum(len(v) for v in dlg["samples"].values())
        part = {
            "location": source.location,
            "subsets": subsets,
            "one_pass": {
                "questions": n_mc,
                "seconds_per_question": one_pass_s / max(n_mc, 1),
                "rows_per_question": one_pass_rows / max(n_mc, 1),
                "expected_rows_per_question": sum(
                    len(s["doc"]["letters"]) + 1 for t in mc for s in one_pass["samples"][t]
                )
                / max(n_mc, 1),
            },
            "dialogue": {
                "questions": n_dialogue,
                "seconds_per_question": dialogue_s / max(n_dialogue, 1),
                "rows_per_question": dialogue_rows / max(n_dialogue, 1),
            },
            **compare(one_pass, dlg, tasks),
        }
        part["dialogue_over_one_pass_time_per_question"] = (
            part["dialogue"]["seconds_per_question"] / part["one_pass"]["seconds_per_question"]
            if n_mc
            else None
        )
        report["data"][source.location] = part
    report["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    text = markdown(report)
    print(text)
    if args.out_dir:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
        (out / "report.md").write_text(text, encoding="utf-8")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    return report


def _fmt(rate: dict[str, Any]) -> str:
    if not rate.get("n"):
        return "n = 0"
    return f"{rate['value']:.2f} [{rate['lo']:.2f}, {rate['hi']:.2f}] ({rate['k']}/{rate['n']})"


def markdown(report: dict[str, Any]) -> str:
    """The report as the tables docs/protocols.md shows."""
    lines = [
        f"model `{Path(report['model']).name}`, chat template {report['apply_chat_template']}, dialogue "
        f"{report['dialogue_max_gen_toks']} tokens per turn, peak RSS {report['peak_rss_mib']:.0f} MiB",
        "",
    ]
    for location, part in report["data"].items():
        mc, ff = part["multiple_choice"], part.get("free_form") or {}
        diff = mc["paired_difference_dialogue_minus_one_pass"]
        lines += [
            f"### {location} ({', '.join(part['subsets'])})",
            "",
            "| measure | value [95% interval] (k/n) |",
            "|---|---|",
            f"| one pass `forced_flip_rate` | {_fmt(mc['one_pass_forced_flip_rate'])} |",
            f"| dialogue `flip_rate` (the paper's) | {_fmt(mc['dialogue_flip_rate'])} |",
            f"| dialogue `flip_rate_upper` | {_fmt(mc['dialogue_flip_rate_upper'])} |",
            "| paired difference, dialogue - one pass, on questions first-correct in both | "
            + (
                f"{diff['value']:+.2f} [{diff['lo']:+.2f}, {diff['hi']:+.2f}] (n = {diff['n']}; McNemar p = "
                f"{diff['mcnemar']['p_value']:.3g})"
                if diff["n"] and diff["lo"] is not None
                else f"n = {diff['n']}"
            )
            + " |",
            f"| first answers agree | {_fmt(mc['first_answer_agreement'])} |",
            f"| final answers agree, when the first answers do | "
            f"{_fmt(mc['final_answer_agreement_when_first_agrees'])} |",
            f"| dialogue first answers readable | {_fmt(mc['dialogue_first_readable'])} |",
            f"| dialogue final answers readable | {_fmt(mc['dialogue_final_readable'])} |",
        ]
        if ff:
            lines += [
                f"| free form: dialogue `flip_rate` (first vs final answer) | "
                f"{_fmt(ff['dialogue_flip_rate_final_answer'])} |",
                f"| free form: the same replies, the old grading (reply to the challenge alone) | "
                f"{_fmt(ff['old_grading_reply_alone'])} |",
            ]
        lines += [
            "",
            "| sub-dataset | dialogue first answers read | final answers read | *_cot: reasoning names a "
            "letter | *_cot: the side turn names the same letter | the letter's text is another option's |",
            "|---|---|---|---|---|---|",
        ]
        for subset, r in part["multiple_choice"].get("read_rates", {}).items():
            cot = [r.get("cot_reasoning_names_a_letter"), r.get("cot_reasoning_letter_is_the_side_turns")]
            lines.append(
                f"| {subset} | {_fmt(r['first'])} | {_fmt(r['final'])} | "
                + " | ".join(_fmt(c) if c else "" for c in cot)
                + f" | {_fmt(r['letter_names_another_options_text'])} |"
            )
        op, dl = part["one_pass"], part["dialogue"]
        ratio = part["dialogue_over_one_pass_time_per_question"]
        lines += [
            "",
            f"time per question: one pass {op['seconds_per_question']:.2f} s ({op['rows_per_question']:.2f} "
            f"forward rows, K+1 = {op['expected_rows_per_question']:.2f}), dialogue "
            f"{dl['seconds_per_question']:.2f} s ({dl['rows_per_question']:.1f} rows)"
            + (f"; the dialogue costs {ratio:.1f}x the one pass per question" if ratio else ""),
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
