"""Benchmark: Are-You-Sure one pass vs the adaptive dialogue, same model, same questions, one run.

    python scripts/bench_ays.py                                   # tiny random model, embedded sample
    python scripts/bench_ays.py --data_dir ../shared/data/sharma-format-sample --limit 40
    python scripts/bench_ays.py --model_path MODEL --batch_size 16 --max_gen_toks 256

Multiple-choice sub-datasets only (the one-pass branching is the MC design). Reports, for each
protocol: model forward rows per question (rows of every model call, counted by a forward hook:
one row is one sequence in a batch, so a dialogue's generation step counts one row per question
still generating), questions per second (wall time of the whole protocol, model already loaded),
and the ratio. Then the two protocols' flip rates and how often their first answers agree. Timings
are ratios within this one run, on whatever machine runs it; nothing here is a threshold.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lm_eval_tasks.sycophancy.cli_flags import ArgumentParser

REPO = Path(__file__).resolve().parents[1]


def make_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model_path", default=None, help="a Hugging Face model folder (default: build the tiny one)"
    )
    parser.add_argument(
        "--data_dir", default="embedded", help="'embedded' or a folder with are_you_sure.jsonl"
    )
    parser.add_argument(
        "--subsets", default=None, help="comma-separated MC sub-datasets (default: all in the data)"
    )
    parser.add_argument("--limit", type=int, default=None, help="questions per sub-dataset")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument(
        "--max_gen_toks", type=int, default=256, help="per dialogue turn (the driver's default)"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: tiny models, shared machines)"
    )
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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = make_parser().parse_args(argv)
    import torch
    from lm_eval.evaluator import evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from lm_eval_tasks import TASKS_DIR
    from lm_eval_tasks.sycophancy import data, dialogue

    model_path = args.model_path
    if model_path is None:
        sys.path.insert(0, str(REPO / "tests"))
        from tiny_models import build_tiny_model

        model_path = str(build_tiny_model(Path(tempfile.mkdtemp(prefix="bench_ays_")) / "tiny"))
    source = data.resolve_source(args.data_dir)
    docs = data.are_you_sure_docs(data.read_sharma_file(source.path(data.ARE_YOU_SURE_FILE)))
    subsets = args.subsets.split(",") if args.subsets else [s for s in data.AYS_MC_SUBSETS if docs.get(s)]
    tasks = [f"sycophancy_ays_{s}" for s in subsets]

    def manager() -> TaskManager:
        return TaskManager(
            include_path=str(TASKS_DIR), include_defaults=False, metadata={"data_dir": args.data_dir}
        )

    torch.set_num_threads(args.threads)
    lm = HFLM(pretrained=model_path, dtype="float32", device="cpu", batch_size=args.batch_size)
    counter = RowCounter(lm.model)

    # Both timings cover loading the questions and running the protocol (lm-eval's evaluate(), not
    # simple_evaluate(), whose environment report would be charged to the one pass alone).
    start = time.perf_counter()
    one_pass = evaluate(lm, manager().load(tasks), limit=args.limit, log_samples=True, bootstrap_iters=0)
    one_pass_s = time.perf_counter() - start
    one_pass_rows, one_pass_calls = counter.take()

    start = time.perf_counter()
    dlg = dialogue.evaluate_dialogue(
        lm,
        manager().load(tasks),
        gen_kwargs={"max_gen_toks": args.max_gen_toks},
        limit=args.limit,
        bootstrap_iters=0,
    )
    dialogue_s = time.perf_counter() - start
    dialogue_rows, dialogue_calls = counter.take()

    n = sum(len(one_pass["samples"][t]) for t in tasks)
    report: dict[str, Any] = {
        "model": model_path,
        "data": source.location,
        "subsets": subsets,
        "questions": n,
        "batch_size": args.batch_size,
        "torch_threads": args.threads,
        "dialogue_max_gen_toks": args.max_gen_toks,
        "one_pass": {"seconds": one_pass_s, "forward_rows": one_pass_rows, "forward_calls": one_pass_calls},
        "dialogue": {"seconds": dialogue_s, "forward_rows": dialogue_rows, "forward_calls": dialogue_calls},
        "flip_rate": {},
    }
    for part in (report["one_pass"], report["dialogue"]):
        part["rows_per_question"] = part["forward_rows"] / n
        part["questions_per_second"] = n / part["seconds"]
    report["speedup_one_pass_over_dialogue"] = dialogue_s / one_pass_s
    options = sum(len(s["doc"]["letters"]) + 1 for t in tasks for s in one_pass["samples"][t])
    report["one_pass"]["expected_rows_per_question"] = options / n  # K + 1, averaged

    agree = readable = flips_op = flips_dl = first_correct_op = first_correct_dl = 0
    for task in tasks:
        by_id = {s["doc"]["id"]: s for s in dlg["samples"][dialogue.dialogue_name(task)]}
        for s in one_pass["samples"][task]:
            d = by_id[s["doc"]["id"]]
            first_op = _one_pass_first(s)
            readable += d["first_answer"] is not None
            agree += d["first_answer"] == first_op
            first_correct_op += "flip_rate" in s
            flips_op += s.get("flip_rate", 0)
            first_correct_dl += "flip_rate" in d
            flips_dl += d.get("flip_rate", 0)
        report["flip_rate"][task] = {
            "one_pass": one_pass["results"][task].get("flip_rate,none"),
            "dialogue": dlg["results"][dialogue.dialogue_name(task)].get("flip_rate,none"),
        }
    report["first_answer_readable_in_dialogue"] = readable / n
    report["first_answer_agreement"] = agree / n
    report["pooled_flip_rate"] = {
        "one_pass": flips_op / first_correct_op if first_correct_op else None,
        "one_pass_first_correct": first_correct_op,
        "dialogue": flips_dl / first_correct_dl if first_correct_dl else None,
        "dialogue_first_correct": first_correct_dl,
    }

    op, dl = report["one_pass"], report["dialogue"]
    print(f"{n} MC questions ({', '.join(subsets)}), batch size {args.batch_size}, {args.threads} thread(s)")
    print(
        f"one pass: {op['rows_per_question']:.2f} forward rows/question "
        f"(K+1 = {op['expected_rows_per_question']:.2f}), {op['questions_per_second']:.2f} questions/s"
    )
    print(
        f"dialogue: {dl['rows_per_question']:.2f} forward rows/question "
        f"({args.max_gen_toks} tokens max per turn), {dl['questions_per_second']:.2f} questions/s"
    )
    print(f"one pass is {report['speedup_one_pass_over_dialogue']:.1f}x faster")
    pooled = report["pooled_flip_rate"]
    print(
        f"pooled flip rate: one pass {pooled['one_pass']} ({pooled['one_pass_first_correct']} first-correct),"
        f" dialogue {pooled['dialogue']} ({pooled['dialogue_first_correct']} first-correct)"
    )
    print(
        f"first answers agree on {report['first_answer_agreement']:.0%} of questions; "
        f"the dialogue's first answer was readable on {readable / n:.0%}"
    )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    return report


def _one_pass_first(sample: dict[str, Any]) -> str:
    """The one-pass first answer: the arg-max letter of the first context's log-likelihoods."""
    letters = sample["doc"]["letters"]
    lls = [float(r[0]) for r in sample["filtered_resps"][: len(letters)]]
    return letters[max(range(len(letters)), key=lambda i: (lls[i], -i))]


if __name__ == "__main__":
    main()
