"""``syco-dialogue``: the dialogue from the command line, with ``lm_eval``'s flags and results layout.

Recipes::

    syco-dialogue --model hf --model_args pretrained=MODEL,dtype=bfloat16 \\
        --tasks sycophancy_ays --metadata data_dir=embedded --batch_size 16 --output_path results/

    # an OpenAI-compatible server (vLLM, TGI, ...); chat models need --apply_chat_template
    syco-dialogue --model local-chat-completions \\
        --model_args model=NAME,base_url=http://localhost:8000/v1/chat/completions \\
        --apply_chat_template --tasks sycophancy_ays_trivia_qa --output_path results/

Data are loaded and validated, and the judge's credentials checked, before the model is built, so bad
input fails before any generation. Samples are always written: the transcripts are the point.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from sycophancy_eval_kit.core import registry, task_names
from sycophancy_eval_kit.dialogue.protocol import DEFAULT_GEN_KWARGS
from sycophancy_eval_kit.dialogue.results import evaluate_dialogue


def one_pass_names(names: Sequence[str]) -> list[str]:
    """Accept one-pass or dialogue task names; lm-eval's task index knows the one-pass ones."""
    one_pass_group = task_names.group_name(registry.AYS)
    out = []
    for name in names:
        if name in (one_pass_group, task_names.group_name(registry.AYS, task_names.DIALOGUE)):
            out.append(one_pass_group)
            continue
        parsed = task_names.parse_task_name(name)
        if parsed is not None and parsed.judged:
            raise ValueError(
                f"--tasks {name}: run the plain Are-You-Sure tasks and add --judge to grade with the judge"
            )
        if parsed is None or parsed.family != registry.AYS:
            raise ValueError(
                f"--tasks {name}: the dialogue runs the Are-You-Sure tasks ({one_pass_group}_<subset>)"
            )
        out.append(task_names.task_name(registry.AYS, parsed.subset))
    return out


def _lm_eval_default(name: str) -> Any:
    """lm_eval's own default for one of its flags, so a flag left out behaves as it does there."""
    from lm_eval.config.evaluate_config import EvaluatorConfig

    return EvaluatorConfig.__dataclass_fields__[name].default


def make_parser() -> argparse.ArgumentParser:
    from lm_eval._cli.utils import MergeDictAction, SplitArgs

    parser = argparse.ArgumentParser(
        prog="syco-dialogue",
        description="Sharma et al.'s adaptive Are-You-Sure dialogue over an lm-eval model backend.",
    )
    parser.add_argument("--model", default="hf", help="lm-eval model backend (default: hf)")
    parser.add_argument(
        "--model_args", nargs="+", action=MergeDictAction, default={}, help="key=val,key2=val2"
    )
    parser.add_argument(
        "--tasks",
        nargs="+",
        action=SplitArgs,
        default=None,
        help="sycophancy_ays (default: every sub-dataset) or sycophancy_ays[_dialogue]_<subset>",
    )
    parser.add_argument(
        "--metadata", nargs="+", action=MergeDictAction, default={}, help="data_dir=PATH|embedded"
    )
    parser.add_argument("--output_path", default=None, help="folder for results_*.json and samples_*.jsonl")
    parser.add_argument(
        "--apply_chat_template", nargs="?", const=True, default=False, help="use the model's chat template"
    )
    parser.add_argument("--system_instruction", default=None)
    parser.add_argument(
        "--gen_kwargs", nargs="+", action=MergeDictAction, default={}, help="e.g. max_gen_toks=128"
    )
    parser.add_argument(
        "--limit", type=float, default=None, help="questions per sub-dataset (count or fraction)"
    )
    parser.add_argument("--batch_size", default=1)
    parser.add_argument(
        "--device",
        default=_lm_eval_default("device"),
        help="as lm_eval's --device (default: its own, which falls back to the CPU without a GPU)",
    )
    parser.add_argument("--bootstrap_iters", type=int, default=100000)
    parser.add_argument(
        "--log_samples", action="store_true", help="accepted for lm_eval parity; samples are always written"
    )
    parser.add_argument(
        "--judge",
        action="store_true",
        help="also grade with the LLM judge: admits_mistake_rate, judged free-form correctness "
        "(needs OPENAI_API_KEY or OPENAI_BASE_URL; settings as judge_* --metadata keys)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the dialogue from command-line arguments; writes and returns lm-eval's results dict."""
    from lm_eval.api.registry import get_model
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.loggers.utils import add_env_info, add_tokenizer_info, get_git_commit_hash
    from lm_eval.tasks import TaskManager
    from lm_eval.utils import make_table, setup_logging

    from sycophancy_eval_kit.core.judge import prepare as prepare_judge
    from sycophancy_eval_kit.dialogue.judging import add_judged_metrics
    from sycophancy_eval_kit.lm_eval_tasks import TASKS_DIR

    args = make_parser().parse_args(argv)
    setup_logging()
    start = time.time()
    names = one_pass_names(args.tasks or [task_names.group_name(registry.AYS)])
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata=args.metadata)
    loaded = manager.load(names)
    if not loaded["tasks"]:
        raise ValueError(f"--tasks {','.join(names)}: no Are-You-Sure task found")
    judge_settings = prepare_judge("syco-dialogue --judge", args.metadata) if args.judge else None
    batch_size = args.batch_size if str(args.batch_size).startswith("auto") else int(args.batch_size)
    lm = get_model(args.model).create_from_arg_obj(
        args.model_args, {"batch_size": batch_size, "max_batch_size": None, "device": args.device}
    )
    if lm.world_size > 1:
        raise ValueError(
            "the dialogue runs in one process (it batches each turn itself); for several GPUs use "
            "--model_args parallelize=True, or --model vllm, instead of accelerate launch"
        )
    chat_template = lm.chat_template(args.apply_chat_template) if args.apply_chat_template else None
    results = evaluate_dialogue(
        lm,
        loaded,
        system_instruction=args.system_instruction,
        apply_chat_template=bool(args.apply_chat_template),
        gen_kwargs=args.gen_kwargs,
        limit=args.limit,
        bootstrap_iters=args.bootstrap_iters,
    )
    if judge_settings is not None:
        add_judged_metrics(results, judge_settings, bootstrap_iters=args.bootstrap_iters)
    results["config"] = {
        "model": args.model,
        "model_args": args.model_args,
        **(lm.get_model_info() if hasattr(lm, "get_model_info") else {}),
        "batch_size": args.batch_size,
        "device": args.device,
        "limit": args.limit,
        "bootstrap_iters": args.bootstrap_iters,
        "gen_kwargs": {**DEFAULT_GEN_KWARGS, **args.gen_kwargs},
        "protocol": "dialogue",
    }
    results["git_hash"] = get_git_commit_hash()
    results["date"] = start
    add_env_info(results)
    add_tokenizer_info(results, lm)
    samples = results.pop("samples")
    if args.output_path:
        tracker = EvaluationTracker(output_path=args.output_path)
        tracker.general_config_tracker.log_experiment_args(
            model_source=args.model,
            model_args=args.model_args,
            system_instruction=args.system_instruction,
            chat_template=chat_template,
            fewshot_as_multiturn=False,
        )
        tracker.save_results_aggregated(results=results, samples=samples)
        for name, task_samples in samples.items():
            tracker.save_results_samples(task_name=name, samples=task_samples)
    print(make_table(results))
    if "groups" in results:
        print(make_table(results, "groups"))
    results["samples"] = samples
    return results


def cli() -> None:
    """Console entry point (``syco-dialogue``)."""
    main(sys.argv[1:])
