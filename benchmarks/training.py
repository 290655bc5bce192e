"""Training throughput and peak memory: SycophancyORPOTrainer vs TRL's stock ORPOTrainer, in one run.

Both trainers get the same tiny model (``testing.tiny_models``), the same LoRA setup and the same rows
(the smoke fixtures, repeated), in fresh worker processes run alternately, so the numbers are
comparable with each other (not across machines). Throughput counts every non-padding token of the
chosen and rejected sequences consumed. Two measurements:

* paired steps (the overhead figure): both trainers in one process take turns on the same batches
  (forward + backward), so load from other processes hits both alike;
* whole runs: ``trainer.train()`` in fresh worker processes, alternately; tokens / ``train_runtime``
  and peak memory (the worker's maximum RSS on CPU, ``torch.cuda.max_memory_allocated`` on a GPU).

Run: ``python -m benchmarks.training [--steps 30] [--rounds 3] [--layers 2] [--json OUT]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from sycophancy_eval_kit.core.cli_flags import ArgumentParser

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "training" / "fixtures"
KINDS = ("stock", "sycophancy")
#: the paired measurement adds our trainer with TRL's NLL term: the cost of the metrics and NaN check alone.
PAIRED_KINDS = (*KINDS, "sycophancy_trl_nll")


def build_trainer(kind: str, model_dir: str, steps: int, repeat: int):
    """One trainer (stock or ours) on the tiny model with LoRA and the repeated smoke fixtures."""
    import torch
    from datasets import concatenate_datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import get_peft_config
    from trl.trainer.model_config import ModelConfig

    from sycophancy_eval_kit.training.chat_templates import apply_policy
    from sycophancy_eval_kit.training.config import DataArguments, SycophancyORPOConfig
    from sycophancy_eval_kit.training.data import prepare_preference_data
    from sycophancy_eval_kit.training.trainer import SycophancyORPOTrainer
    from sycophancy_eval_kit.training.trl_orpo import ORPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    choice = apply_policy(tokenizer)
    data_args = DataArguments(
        datasets=["dpo_mix_en", "saa"],
        dpo_mix_en_path=str(FIXTURES / "dpo_mix_en_smoke.json"),
        saa_path=str(FIXTURES / "saa"),
    )
    rows = prepare_preference_data(data_args, tokenizer, 384, choice).dataset
    dataset = concatenate_datasets([rows] * repeat)
    on_gpu = torch.cuda.is_available()
    args = SycophancyORPOConfig(
        output_dir=tempfile.mkdtemp(prefix=f"bench-{kind}-"),
        per_device_train_batch_size=4,
        max_steps=steps,
        learning_rate=1e-4,
        bf16=on_gpu,
        use_cpu=not on_gpu,
        gradient_checkpointing=False,
        report_to="none",
        logging_steps=steps,
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
        response_only_nll=kind != "sycophancy_trl_nll",
    )
    peft = get_peft_config(
        ModelConfig(
            use_peft=True, lora_r=8, lora_alpha=16, lora_dropout=0.0, lora_target_modules="all-linear"
        )
    )
    cls = ORPOTrainer if kind == "stock" else SycophancyORPOTrainer
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    return cls(model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft)


def worker(kind: str, model_dir: str, steps: int, repeat: int) -> dict:
    """A whole ``trainer.train()`` of ``steps`` steps in this process: tokens/s and peak memory."""
    import torch

    trainer = build_trainer(kind, model_dir, steps, repeat)
    on_gpu = torch.cuda.is_available()
    tokens = {"n": 0}
    collate = trainer.data_collator

    def counting_collator(features):
        batch = collate(features)
        tokens["n"] += int(batch["chosen_attention_mask"].sum() + batch["rejected_attention_mask"].sum())
        return batch

    trainer.data_collator = counting_collator
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    runtime = trainer.train().metrics["train_runtime"]
    shutil.rmtree(trainer.args.output_dir, ignore_errors=True)
    if on_gpu:
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"kind": kind, "tokens": tokens["n"], "runtime_s": runtime, "peak_mib": peak_mib, "gpu": on_gpu}


def paired_worker(model_dir: str, steps: int, repeat: int) -> dict:
    """Both trainers in one process, alternating ``training_step`` (forward + backward) on the same batches.

    Load from other processes shifts both trainers alike, so the time ratio is the overhead of the
    extension's loss and metrics code, which is all that differs between the two.
    """
    import time

    import torch

    trainers = {kind: build_trainer(kind, model_dir, steps, repeat) for kind in PAIRED_KINDS}
    for trainer in trainers.values():
        trainer.current_gradient_accumulation_steps = 1  # set by train(); training_step reads it
    loader = trainers["stock"].get_train_dataloader()
    seconds = dict.fromkeys(PAIRED_KINDS, 0.0)
    tokens = 0
    batches = iter(loader)
    for step in range(steps + 2):  # the first two steps warm up and are not timed
        batch = next(batches)
        if step >= 2:
            tokens += int(batch["chosen_attention_mask"].sum() + batch["rejected_attention_mask"].sum())
        order = PAIRED_KINDS if step % 2 == 0 else PAIRED_KINDS[::-1]
        for kind in order:
            trainer = trainers[kind]
            trainer.model.train()
            start = time.perf_counter()
            trainer.training_step(trainer.model, dict(batch))
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            if step >= 2:
                seconds[kind] += time.perf_counter() - start
            trainer.model.zero_grad(set_to_none=True)
            trainer._stored_metrics.clear()
    for trainer in trainers.values():
        shutil.rmtree(trainer.args.output_dir, ignore_errors=True)
    return {"tokens": tokens, "seconds": seconds}


def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per trainer (alternating)")
    parser.add_argument("--layers", type=int, default=2, help="layers of the tiny Llama")
    parser.add_argument("--repeat", type=int, default=8, help="copies of the 25 fixture pairs")
    parser.add_argument("--json", type=Path, help="also write the raw measurements here")
    parser.add_argument("--worker", choices=(*KINDS, "paired"), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker == "paired":
        print(json.dumps(paired_worker(args.model, args.steps, args.repeat)))
        return
    if args.worker:
        print(json.dumps(worker(args.worker, args.model, args.steps, args.repeat)))
        return

    from sycophancy_eval_kit.testing.tiny_models import build_tiny_model

    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "tiny", layers=args.layers)

        def run(kind: str) -> dict:
            cmd = [sys.executable, "-m", "benchmarks.training", "--worker", kind, "--model", str(model_dir)]
            cmd += ["--steps", str(args.steps), "--repeat", str(args.repeat)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=REPO)
            if out.returncode != 0:
                sys.exit(f"worker {kind} failed:\n{out.stderr[-3000:]}")
            return json.loads(out.stdout.strip().splitlines()[-1])

        paired = run("paired")
        runs: list[dict] = []
        for round_no in range(args.rounds):
            order = KINDS if round_no % 2 == 0 else KINDS[::-1]  # alternate who goes first
            runs += [run(kind) for kind in order]

    summary = {}
    for kind in KINDS:
        mine = [r for r in runs if r["kind"] == kind]
        summary[kind] = {
            "paired_tokens_per_s": paired["tokens"] / paired["seconds"][kind],
            "train_tokens_per_s": statistics.median(r["tokens"] / r["runtime_s"] for r in mine),
            "peak_mib": max(r["peak_mib"] for r in mine),
        }
    paired_ratio = paired["seconds"]["stock"] / paired["seconds"]["sycophancy"]
    train_ratio = summary["sycophancy"]["train_tokens_per_s"] / summary["stock"]["train_tokens_per_s"]
    mem_ratio = summary["sycophancy"]["peak_mib"] / summary["stock"]["peak_mib"]
    device = "GPU" if runs[0]["gpu"] else f"CPU ({os.cpu_count()} cores)"
    memory = "peak CUDA allocation" if runs[0]["gpu"] else "peak RSS of the worker process"
    print(
        f"ORPO + LoRA (r=8) on a tiny Llama ({args.layers} layers, hidden 32), batch 4, {args.steps} steps, "
        f"{25 * args.repeat} pairs; {device}; Python {platform.python_version()}"
    )
    header = f"tokens/s, whole train() (median of {args.rounds})"
    print(f"| trainer | tokens/s, paired steps | {header} | {memory} (MiB) |")
    print("|---|---:|---:|---:|")
    for kind, label in (("stock", "TRL ORPOTrainer"), ("sycophancy", "SycophancyORPOTrainer")):
        s = summary[kind]
        cells = [f"{s['paired_tokens_per_s']:.0f}", f"{s['train_tokens_per_s']:.0f}", f"{s['peak_mib']:.0f}"]
        print(f"| {label} | {' | '.join(cells)} |")
    extra = paired["tokens"] / paired["seconds"]["sycophancy_trl_nll"]
    print(f"| SycophancyORPOTrainer, response_only_nll=false | {extra:.0f} | | |")
    print(
        f"throughput ours/stock: {paired_ratio:.3f} paired ({paired['tokens']} tokens each), "
        f"{train_ratio:.3f} whole runs; with TRL's NLL term "
        f"{paired['seconds']['stock'] / paired['seconds']['sycophancy_trl_nll']:.3f} paired; "
        f"peak memory ours/stock: {mem_ratio:.3f}"
    )
    if args.json:
        record = {"paired": paired, "runs": runs, "summary": summary, "paired_ratio": paired_ratio}
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
