"""The command line and the phase loop: budget, skip, record a failure and go on."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .common import (
    PAPER_CONFIG,
    PHASES,
    REPO,
    SHAPES,
    SHARED_SAMPLE,
    SUBSETS,
    TINY_VOCAB_SIZE,
    VOCAB_SIZE,
    Clock,
    Run,
    Sizes,
    allocated_gib,
    build_tokenizer,
    check_setup,
    default_sizes,
    environment,
    log,
    prepare_questions,
    resolve_data_dir,
)
from .phase_ays import phase_ays
from .phase_orpo import phase_orpo
from .phase_vllm import phase_vllm, vllm_worker
from .report import markdown, write_report


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=list(SHAPES), default="llama2-7b", help="model dimensions")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument(
        "--tiny", action="store_true", help="--shape tiny --device cpu: the smoke run the tests use"
    )
    parser.add_argument("--out_dir", type=Path, default=REPO / "outputs" / "bench_gpu")
    parser.add_argument(
        "--work_dir", type=Path, default=None, help="scratch (the vLLM phase saves the model there)"
    )
    parser.add_argument("--budget_s", type=float, default=480.0, help="wall-clock budget of the whole run")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {PHASES}")
    parser.add_argument(
        "--data_dir",
        default=None,
        help="Sharma-format folder or 'embedded' (default: $SYCOPHANCY_DATA_DIR, else "
        f"{SHARED_SAMPLE} when present, else embedded)",
    )
    parser.add_argument(
        "--questions_per_subset",
        type=int,
        default=None,
        help=f"questions of each of {', '.join(SUBSETS)}; a smaller sub-dataset is repeated with numbered "
        "question variants",
    )
    parser.add_argument("--batch_size", type=int, default=None, help="lm-eval batch size (HF backend)")
    parser.add_argument("--max_gen_toks", type=int, default=None, help="dialogue tokens per turn")
    parser.add_argument("--train_steps", type=int, default=None, help="timed optimizer steps per call")
    parser.add_argument("--train_rounds", type=int, default=None, help="train() calls per trainer")
    parser.add_argument("--prompt_tokens", type=int, default=None, help="prompt length of synthetic rows")
    parser.add_argument("--vllm_gpu_memory_utilization", type=float, default=0.85)
    parser.add_argument(
        "--vllm_cuda_graphs",
        action="store_true",
        help="let vLLM compile and capture CUDA graphs (slower start-up; default: enforce_eager)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: 1 on the CPU, torch's own on a GPU)",
    )
    parser.add_argument("--seed", type=int, default=0)
    # the vLLM phase runs each engine in a fresh process through this script
    parser.add_argument("--worker", choices=("vllm",), help=argparse.SUPPRESS)
    parser.add_argument("--worker_args", help=argparse.SUPPRESS)
    return parser


def run_phase(name: str, fn: Callable[[Run], dict[str, Any]], run: Run) -> None:
    estimate = run.sizes.estimates.get(name, 0)
    left = run.clock.left()
    if left < estimate:
        run.report["phases"][name] = {
            "status": "skipped",
            "reason": f"needs about {estimate:.0f} s, {left:.0f} s of the --budget_s "
            f"{run.clock.budget_s:.0f} left",
        }
        log(f"{name}: skipped ({run.report['phases'][name]['reason']})")
        return
    log(f"{name}: starting at {run.clock.elapsed():.0f} s")
    at_start = allocated_gib(run.device)  # what earlier phases left on the GPU (should be ~0 or one model)
    start = time.perf_counter()
    try:
        result = fn(run)
        result.setdefault("status", "ok")
    except Exception as err:  # a failing phase is recorded; the next one still runs
        result = {
            "status": "failed",
            "error": f"{type(err).__name__}: {err}",
            "traceback": traceback.format_exc()[-4000:],
        }
        run.drop_model()
    result["seconds"] = time.perf_counter() - start
    result["gpu_allocated_at_start_gib"] = at_start
    run.report["phases"][name] = result
    run.report["elapsed_s"] = run.clock.elapsed()
    write_report(run.report, run.args.out_dir)
    log(f"{name}: {result['status']} in {result['seconds']:.1f} s (elapsed {run.clock.elapsed():.0f} s)")


def prepare(args: argparse.Namespace, argv: list[str]) -> Run:
    """Everything before the phases: checks, settings, the questions, the tokenizer, the first report."""
    clock = Clock(args.budget_s)
    check_setup(args)
    import torch
    import yaml

    threads = args.threads or (1 if args.device == "cpu" else None)
    if threads:  # tiny models on a shared CPU run fastest on one thread (no oversubscription)
        torch.set_num_threads(threads)
    paper = yaml.safe_load(PAPER_CONFIG.read_text(encoding="utf-8"))
    flags = (
        "questions_per_subset",
        "batch_size",
        "max_gen_toks",
        "train_steps",
        "train_rounds",
        "prompt_tokens",
    )
    overrides = {k: getattr(args, k) for k in flags if getattr(args, k) is not None}
    sizes = Sizes(**{**default_sizes(args.shape, paper).__dict__, **overrides})
    args.out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    smoke = args.shape == "tiny" or args.device == "cpu"
    report: dict[str, Any] = {
        "benchmark": "benchmarks/gpu/",
        "command": "python -m benchmarks.gpu " + " ".join(argv),
        "smoke": smoke,
        "label": "CPU smoke run at tiny shapes, not GPU figures" if smoke else "GPU figures",
        "budget_s": args.budget_s,
        "environment": environment(args.device),
        "sizes": sizes.__dict__,
        "phases": {},
    }
    data_dir, report["data"] = prepare_questions(
        resolve_data_dir(args.data_dir), sizes.questions_per_subset, work
    )
    vocab_size = TINY_VOCAB_SIZE if args.shape == "tiny" else VOCAB_SIZE
    tokenizer, tok_info = build_tokenizer(data_dir, vocab_size)
    report["model"] = {
        "shape": args.shape,
        "dtype": "bfloat16",
        "vocab_size": vocab_size,
        "tokenizer": tok_info,
    }
    return Run(args, sizes, paper, clock, work, data_dir, tokenizer, report)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = make_parser().parse_args(argv)
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(key, "1")  # nothing here may download
    if args.worker == "vllm":
        vllm_worker(json.loads(args.worker_args))
        return 0
    if args.tiny:
        args.shape, args.device = "tiny", "cpu"
    run = prepare(args, argv)
    try:
        where = run.report["environment"].get("gpu", args.device)
        log(f"{run.report['label']}: shape {args.shape} on {where}")
        write_report(run.report, args.out_dir)
        wanted = args.phases.split(",")
        for name, fn in (("ays", phase_ays), ("orpo", phase_orpo), ("vllm", phase_vllm)):
            if name in wanted:
                run_phase(name, fn, run)
        run.drop_model()
    finally:
        if args.work_dir is None:
            shutil.rmtree(run.work, ignore_errors=True)
    run.report["elapsed_s"] = run.clock.elapsed()
    write_report(run.report, args.out_dir)
    print(markdown(run.report), flush=True)
    log(f"written {args.out_dir}/bench_gpu.json and bench_gpu.md in {run.clock.elapsed():.0f} s")
    failed = [n for n, p in run.report["phases"].items() if p["status"] == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
