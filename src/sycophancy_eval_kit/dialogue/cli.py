"""``syco-dialogue``: the dialogue from the command line, with ``lm_eval``'s flags and results layout.

Recipes::

    syco-dialogue --model hf --model_args pretrained=MODEL,dtype=bfloat16 \\
        --tasks sycophancy_ays --metadata data_dir=embedded --batch_size 16 --output_path results/

    # an OpenAI-compatible server (vLLM, TGI, ...); chat models need --apply_chat_template
    syco-dialogue --model local-chat-completions \\
        --model_args model=NAME,base_url=http://localhost:8000/v1/chat/completions \\
        --apply_chat_template --tasks sycophancy_ays_trivia_qa --output_path results/

Data are loaded and validated, the judge and the output folder checked, before the model is built, so
bad input fails before any generation; an input error is one line (``--debug`` shows the stack).
Samples are always written: the transcripts are the point.

**Pressure.** ``--pressure escalating`` (or a rebuttal type with ``--rounds N``, or a schedule's YAML
file) challenges the model round after round and asks for its answer after each; results are named
``sycophancy_ays_pressure_<schedule>_<subset>`` and add the answer after every round (``acc_round_<k>``,
``flip_rate_round_<k>``) and the summary rates (``turn_of_flip``, ``number_of_flips``, ...).

**Resume.** With ``--output_path``, every reply is stored as it is generated (lm-eval's request cache,
in ``<output_path>/.syco-dialogue-requests/``, one file per model, its local weights' fingerprint
included), so rerunning an interrupted command sends only the requests that were not answered;
``--use_cache PATH`` puts that cache elsewhere (``lm_eval``'s flag and naming), ``--no_request_cache``
switches it off. A completed run whose results cannot be saved exits 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sycophancy_eval_kit.core import files, registry, task_names
from sycophancy_eval_kit.core.cli_flags import CommandError, run_main
from sycophancy_eval_kit.dialogue import pressure
from sycophancy_eval_kit.dialogue.backends import check_api_replies, with_request_cache
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
        out.append(dataclasses.replace(parsed, protocol=task_names.ONE_PASS).name)
    return out


def positive_limit(value: str) -> float:
    """``--limit``: a count (>= 1) or a fraction (0 < f < 1) of each sub-dataset's questions."""
    try:
        limit = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a count of questions or a fraction") from None
    if not limit > 0 or (limit >= 1 and limit != int(limit)):
        raise argparse.ArgumentTypeError(f"{value}: expected a whole number >= 1 or a fraction in (0, 1)")
    return limit


REQUESTS_FOLDER = ".syco-dialogue-requests"


def request_cache_prefix(output_path: str, model: str, model_args: dict[str, Any]) -> str:
    """Where a run's replies are kept for resuming: one file per model and its settings, with a
    fingerprint of any local model folder, so replaced weights never get another model's replies."""
    import hashlib
    import json

    from sycophancy_eval_kit.core import files

    identity: dict[str, Any] = {"model": model, "model_args": {k: str(v) for k, v in model_args.items()}}
    for key in ("pretrained", "peft", "model", "delta"):
        value = str(model_args.get(key) or "")
        if value and Path(value).expanduser().is_dir():
            identity[f"{key}_files"] = files.fingerprint_folder(Path(value).expanduser())
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(output_path).parent if Path(output_path).suffix == ".json" else Path(output_path)
    return str(folder / REQUESTS_FOLDER / digest)


def results_folder(output_path: str) -> Path:
    """The folder lm-eval's tracker writes into (``--output_path`` may name a ``.json`` file)."""
    path = Path(output_path)
    return path.parent if path.suffix == ".json" else path


def _written(folder: Path) -> set[Path]:
    """The results (``*.json``) and samples (``samples_*.jsonl``) files under ``folder``."""
    return set(folder.rglob("*.json")) | set(folder.rglob("samples_*.jsonl"))


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
        "--limit", type=positive_limit, default=None, help="questions per sub-dataset (count or fraction)"
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
        "--pressure",
        default=pressure.SHARMA,
        help="the challenges, round by round: sharma (one, the default), escalating (five, growing), "
        "simple, authority, justification or citation (repeated --rounds times), or a schedule's YAML "
        "file (see dialogue/pressure.py)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help=f"rounds of a repeated rebuttal type (default {pressure.DEFAULT_ROUNDS}, "
        f"at most {registry.MAX_ROUNDS})",
    )
    parser.add_argument(
        "--judge",
        action="store_true",
        help="also grade with the LLM judge: admits_mistake_rate, judged free-form correctness "
        "(needs OPENAI_API_KEY or OPENAI_BASE_URL; settings as judge_* --metadata keys)",
    )
    parser.add_argument(
        "--use_cache",
        default=None,
        help="path prefix of the request cache that makes a rerun resume (lm_eval's flag); default "
        f"with --output_path: <output_path>/{REQUESTS_FOLDER}/<model fingerprint>",
    )
    parser.add_argument(
        "--no_request_cache", action="store_true", help="do not store replies; a rerun starts over"
    )
    parser.add_argument("--debug", action="store_true", help="show the Python stack of an error")
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
    try:
        names = one_pass_names(args.tasks or [task_names.group_name(registry.AYS)])
    except ValueError as err:
        raise CommandError(str(err)) from None
    schedule = pressure.resolve(args.pressure, args.rounds)
    if args.judge and not schedule.is_sharma:
        raise CommandError(
            f"--judge grades the single-challenge dialogue; with --pressure {args.pressure} the answers "
            "after every round are graded by the rules (letters; free form: the shared grader)"
        )
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata=args.metadata)
    loaded = manager.load(names)
    if not loaded["tasks"]:
        raise CommandError(f"--tasks {','.join(names)}: no Are-You-Sure task found")
    judge_settings = prepare_judge("syco-dialogue --judge", args.metadata) if args.judge else None
    if args.output_path:  # before the model: a run whose results cannot be written is not started
        files.writable_folder(results_folder(args.output_path), "--output_path")
    for key in ("pretrained", "peft"):
        if args.model_args.get(key):
            files.check_model_folder(str(args.model_args[key]), f"--model_args {key}=")
    batch_size = args.batch_size if str(args.batch_size).startswith("auto") else int(args.batch_size)
    lm = get_model(args.model).create_from_arg_obj(
        args.model_args, {"batch_size": batch_size, "max_batch_size": None, "device": args.device}
    )
    if lm.world_size > 1:
        raise CommandError(
            "the dialogue runs in one process (it batches each turn itself); for several GPUs use "
            "--model_args parallelize=True, or --model vllm, instead of accelerate launch"
        )
    lm = check_api_replies(lm)
    cache_prefix = args.use_cache or (
        request_cache_prefix(args.output_path, args.model, args.model_args) if args.output_path else None
    )
    if cache_prefix and not args.no_request_cache:
        lm = with_request_cache(lm, cache_prefix)
    chat_template = lm.chat_template(args.apply_chat_template) if args.apply_chat_template else None
    results = evaluate_dialogue(
        lm,
        loaded,
        system_instruction=args.system_instruction,
        apply_chat_template=bool(args.apply_chat_template),
        gen_kwargs=args.gen_kwargs,
        limit=args.limit,
        bootstrap_iters=args.bootstrap_iters,
        schedule=schedule,
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
        **({} if schedule.is_sharma else {"pressure": schedule.name}),
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
        folder = results_folder(args.output_path)
        before = _written(folder)
        # lm-eval's tracker logs a failed save and returns: check that every file arrived
        tracker.save_results_aggregated(results=results, samples=samples)
        for name, task_samples in samples.items():
            tracker.save_results_samples(task_name=name, samples=task_samples)
        new = _written(folder) - before
        saved_samples = [p for p in new if p.name.startswith("samples_")]
        if len(new) - len(saved_samples) < 1 or len(saved_samples) < len(samples):
            raise CommandError(
                f"--output_path {args.output_path}: the results could not be saved (see the log above); "
                f"the replies are kept{f' in {cache_prefix}_rank0.db' if cache_prefix else ''}: "
                "rerun into a writable folder to write them without generating again",
                exit_code=1,
            )
    print(make_table(results))
    if "groups" in results:
        print(make_table(results, "groups"))
    results["samples"] = samples
    return results


def cli() -> None:
    """Console entry point (``syco-dialogue``): input errors in one line, exit 2; ``--debug``: the stack."""
    sys.exit(run_main(main, "syco-dialogue"))
