"""Pressure schedules on one model: Sharma's single challenge against escalation and each rebuttal type,
paired on the same questions, with the cost of every round.

    python -m benchmarks.pressure                                  # tiny random model, embedded sample
    python -m benchmarks.pressure --real_model --apply_chat_template \\
        --data_dir embedded,../shared/data/sharma-format-sample --limit 60 --out_dir /tmp/pressure

For every data folder and schedule (``--schedules``, default: sharma, escalating and the four rebuttal
types at ``--rounds``) it runs ``dialogue.evaluate_dialogue`` on the same loaded model, without a
request cache, and reports (JSON, and a markdown summary beside it):

* per schedule, pooled over the sub-datasets: accuracy after every round (the decay curve), the flip
  rate after the last round, ``turn_of_flip``, ``never_flipped_rate``, ``number_of_flips``,
  ``progressive_flip_rate`` and ``pushed_answer_rate``, rates with k / n and a Wilson interval, the
  means with a bootstrap interval;
* paired against ``sharma`` on the same questions (the first answer is the same request under every
  schedule, so the first-correct questions are the same): the difference in the last round's flip
  and accuracy, with the exact McNemar test;
* cost: seconds per question, and per question per round as a ratio to the single challenge's.

Timings are ratios within this one run; nothing here is a threshold.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.models import add_model_flags, resolve_model

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SCHEDULES = "sharma,escalating,simple,authority,justification,citation"
SUMMARY_RATES = ("never_flipped_rate", "regressive_flip_rate", "progressive_flip_rate", "pushed_answer_rate")
SUMMARY_MEANS = ("turn_of_flip", "number_of_flips")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_flags(parser)
    parser.add_argument("--data_dir", default="embedded", help="'embedded' or data folders, comma-separated")
    parser.add_argument("--subsets", default=None, help="comma-separated sub-datasets (default: all present)")
    parser.add_argument("--limit", type=int, default=None, help="questions per sub-dataset")
    parser.add_argument("--schedules", default=DEFAULT_SCHEDULES, help="--pressure values, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each repeated rebuttal type")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_gen_toks", type=int, default=128, help="per turn (answers: at most 64)")
    parser.add_argument("--apply_chat_template", action="store_true", help="the model's chat template")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out_dir", default=None, help="write report.json, report.md and the samples here")
    return parser


def _wilson(values: list[float]) -> dict[str, Any]:
    from sycophancy_eval_kit.core import stats

    k, n = int(sum(values)), len(values)
    est = stats.wilson(k, n)
    return {"k": k, "n": n, "value": est.value, "lo": est.lo, "hi": est.hi}


def _mean(values: list[float]) -> dict[str, Any]:
    from sycophancy_eval_kit.core import stats

    if not values:
        return {"n": 0, "value": None, "lo": None, "hi": None}
    est = stats.paired_bootstrap([np.asarray(values, dtype=float)], [1.0], resamples=10_000, seed=0)
    return {"n": len(values), "value": float(np.mean(values)), "lo": est.lo, "hi": est.hi}


def _defined(sample: dict[str, Any], name: str) -> float | None:
    value = sample.get(name)
    return None if not isinstance(value, (int, float)) or math.isnan(value) else float(value)


def _column(samples: list[dict[str, Any]], name: str) -> list[float]:
    return [v for s in samples if (v := _defined(s, name)) is not None]


def summarize(samples: list[dict[str, Any]], rounds: int, sharma: bool) -> dict[str, Any]:
    """A schedule's numbers over its samples (every sub-dataset pooled)."""
    last = "flip_rate" if sharma else f"flip_rate_round_{rounds}"
    out: dict[str, Any] = {"questions": len(samples), "rounds": rounds}
    if sharma:
        out["acc_round"] = [_wilson(_column(samples, "acc_first")), _wilson(_column(samples, "acc_final"))]
    else:
        out["acc_round"] = [_wilson(_column(samples, f"acc_round_{k}")) for k in range(rounds + 1)]
    out["flip_rate_last"] = _wilson(_column(samples, last))
    out["flip_rate_last_upper"] = _wilson(_column(samples, "flip_rate_upper"))
    out["unparsed_rate"] = _wilson(_column(samples, "unparsed_rate"))
    if not sharma:
        for name in SUMMARY_RATES:
            out[name] = _wilson(_column(samples, name))
        for name in SUMMARY_MEANS:
            out[name] = _mean(_column(samples, name))
    return out


def paired(base: list[dict[str, Any]], other: list[dict[str, Any]]) -> dict[str, Any]:
    """``other`` against ``base`` on the questions both ran: the last answer's flip (first-correct
    questions in both) and correctness, with exact McNemar tests."""
    from sycophancy_eval_kit.core import stats

    by_id = {s["doc"]["id"]: s for s in other}
    flips: tuple[list[float], list[float]] = ([], [])
    correct: tuple[list[float], list[float]] = ([], [])
    for s in base:
        o = by_id.get(s["doc"]["id"])
        if o is None:
            continue
        correct[0].append(float(s["acc_final"]))
        correct[1].append(float(o["acc_final"]))
        a, b = _defined(s, "flip_rate"), _defined(o, "flip_rate")
        if a is not None and b is not None:
            flips[0].append(a)
            flips[1].append(b)
    out = {}
    for name, (a, b) in (("flip_rate_last", flips), ("acc_last", correct)):
        x, y = np.asarray(b), np.asarray(a)
        test = stats.mcnemar_exact(x, y)
        out[name] = {
            "n": len(a),
            "difference": float(x.mean() - y.mean()) if len(a) else None,
        } | test.to_dict()
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from sycophancy_eval_kit import dialogue
    from sycophancy_eval_kit.core import data, registry, task_names
    from sycophancy_eval_kit.dialogue import pressure
    from sycophancy_eval_kit.lm_eval_tasks import TASKS_DIR

    args = make_parser().parse_args(argv)
    model_path = resolve_model(args, "pressure-bench-", chat_template=True)
    torch.set_num_threads(args.threads)
    lm = HFLM(pretrained=model_path, dtype="float32", device="cpu", batch_size=args.batch_size)
    schedules = [
        pressure.resolve(name, None if name in (pressure.SHARMA, pressure.ESCALATING) else args.rounds)
        for name in args.schedules.split(",")
    ]
    report: dict[str, Any] = {
        "model": model_path,
        "apply_chat_template": args.apply_chat_template,
        "max_gen_toks": args.max_gen_toks,
        "limit": args.limit,
        "schedules": {s.name: list(s.rounds) for s in schedules},
        "data": {},
    }
    for data_dir in args.data_dir.split(","):
        source = data.resolve_source(data_dir)
        docs = data.are_you_sure_docs(data.read_sharma_file(source.path(data.ARE_YOU_SURE_FILE)))
        wanted = args.subsets.split(",") if args.subsets else list(data.AYS_SUBSETS)
        tasks = [task_names.task_name(registry.AYS, s) for s in wanted if docs.get(s)]
        manager = TaskManager(
            include_path=str(TASKS_DIR), include_defaults=False, metadata={"data_dir": data_dir}
        )
        part: dict[str, Any] = {"tasks": tasks, "schedules": {}}
        by_schedule: dict[str, list[dict[str, Any]]] = {}
        for schedule in schedules:
            start = time.perf_counter()
            results = dialogue.evaluate_dialogue(
                lm,
                manager.load(tasks),
                apply_chat_template=args.apply_chat_template,
                gen_kwargs={"max_gen_toks": args.max_gen_toks},
                limit=args.limit,
                bootstrap_iters=0,
                schedule=schedule,
            )
            seconds = time.perf_counter() - start
            samples = [s for lines in results["samples"].values() for s in lines]
            by_schedule[schedule.name] = samples
            rounds = len(schedule.rounds)
            summary = summarize(samples, rounds, schedule.is_sharma)
            summary["seconds_per_question"] = seconds / max(len(samples), 1)
            summary["seconds_per_question_per_round"] = summary["seconds_per_question"] / rounds
            summary["unavailable"] = sum(
                c["metadata"].get("pressure_unavailable", 0) for c in results["configs"].values()
            )
            part["schedules"][schedule.name] = summary
            if args.out_dir:
                folder = Path(args.out_dir) / "samples" / Path(source.location).name
                folder.mkdir(parents=True, exist_ok=True)
                with open(folder / f"{schedule.name}.jsonl", "w", encoding="utf-8") as handle:
                    for s in samples:
                        handle.write(json.dumps(s, default=str, ensure_ascii=False) + "\n")
        base = part["schedules"].get(pressure.SHARMA)
        for name, summary in part["schedules"].items():
            if base and name != pressure.SHARMA:
                summary["vs_sharma"] = paired(by_schedule[pressure.SHARMA], by_schedule[name])
                summary["cost_per_round_vs_sharma"] = (
                    summary["seconds_per_question_per_round"] / base["seconds_per_question_per_round"]
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
    return report


def _fmt(est: dict[str, Any], digits: int = 2) -> str:
    if not est.get("n") or est.get("value") is None:
        return "n = 0"
    interval = f" [{est['lo']:.{digits}f}, {est['hi']:.{digits}f}]" if est.get("lo") is not None else ""
    count = f"{est['k']}/{est['n']}" if "k" in est else f"n = {est['n']}"
    return f"{est['value']:.{digits}f}{interval} ({count})"


def markdown(report: dict[str, Any]) -> str:
    """The report as docs/protocols.md shows it."""
    lines = [
        f"model `{Path(report['model']).name}`, chat template {report['apply_chat_template']}, "
        f"{report['max_gen_toks']} tokens per turn, {report['limit']} questions per sub-dataset, "
        f"peak RSS {report['peak_rss_mib']:.0f} MiB",
        "",
    ]
    for location, part in report["data"].items():
        lines += [f"### {location} ({', '.join(part['tasks'])})", ""]
        lines += [
            "| schedule | rounds | flip rate after the last round | vs sharma (same questions) | "
            "accuracy after each round | turn of flip | never flipped | pushed answer taken | "
            "seconds / question / round (× sharma) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, s in part["schedules"].items():
            vs = s.get("vs_sharma", {}).get("flip_rate_last")
            versus = (
                f"{vs['difference']:+.2f}, McNemar p = {vs['p_value']:.3g} (n = {vs['n']})"
                if vs and vs.get("n") and vs.get("p_value") is not None
                else "-"
            )
            accs = " → ".join(f"{a['value']:.2f}" for a in s["acc_round"] if a.get("n"))
            ratio = s.get("cost_per_round_vs_sharma")
            lines.append(
                f"| {name} | {s['rounds']} | {_fmt(s['flip_rate_last'])} | {versus} | {accs} "
                f"(n = {s['acc_round'][0]['n']}) | {_fmt(s.get('turn_of_flip', {}))} | "
                f"{_fmt(s.get('never_flipped_rate', {}))} | {_fmt(s.get('pushed_answer_rate', {}))} | "
                f"{s['seconds_per_question_per_round']:.2f}" + (f" (×{ratio:.2f})" if ratio else "") + " |"
            )
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
