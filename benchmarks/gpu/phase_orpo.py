"""Phase (b): ORPO + LoRA with the paper's settings, our trainer against TRL's."""

from __future__ import annotations

import copy
import shutil
import tempfile
import time
from typing import Any

from .common import (
    PAPER_CONFIG,
    REPO,
    Run,
    allocated_gib,
    cuda_sync,
    free_device_memory,
    log,
    peak_gib,
    reset_peak,
)


def synthetic_preference_rows(tokenizer: Any, n: int, prompt_tokens: int, max_length: int, seed: int) -> list:
    """Rows in TRL's plain-text preference format whose sequences all reach ``max_length`` tokens.

    Text is random words of the tokenizer's vocabulary; responses are longer than the room left after
    the prompt, so TRL's own truncation cuts every chosen and rejected sequence at the cutoff.
    """
    import random

    rng = random.Random(seed)
    words = [t for t, _ in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])]
    words = [t[1:] for t in words if t.startswith("\u0120") and t[1:].isalpha()]  # "Ġword": one token
    if len(words) < 50:
        raise RuntimeError(f"the tokenizer has only {len(words)} whole-word tokens to build text from")

    def text(n_words: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n_words))

    sources = ("dpo_mix_en", "saa")
    return [
        {
            "prompt": text(prompt_tokens),
            "chosen": " " + text(max_length),
            "rejected": " " + text(max_length),
            "source": sources[i % 2],
            "row_id": f"synthetic:{i}",
        }
        for i in range(n)
    ]


def phase_orpo(run: Run) -> dict[str, Any]:
    """Our trainer vs TRL's, alternating ``train()`` calls on identical model copies and rows."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import ModelConfig, get_peft_config

    from sycophancy_eval_kit.training.config import SycophancyORPOConfig
    from sycophancy_eval_kit.training.trainer import SycophancyORPOTrainer
    from sycophancy_eval_kit.training.trl_orpo import ORPOTrainer

    device, sizes, paper = run.device, run.sizes, run.paper
    base = run.model()
    if device == "cuda":
        import torch

        need = 2 * run.report["model"]["weights_gib"] + 20
        total = torch.cuda.get_device_properties(0).total_memory / 2**30
        if total < need:
            raise RuntimeError(
                f"two model copies and activations need about {need:.0f} GiB; the GPU has {total:.0f}"
            )
    steps_per_call = sizes.train_steps + 1  # the first step of each call is a warm-up
    rows = synthetic_preference_rows(
        run.tokenizer, sizes.effective_batch_size * steps_per_call, sizes.prompt_tokens, sizes.max_length, 0
    )
    dataset = Dataset.from_list(rows)
    peft = get_peft_config(
        ModelConfig(
            use_peft=True,
            lora_r=int(paper["lora_r"]),
            lora_alpha=int(paper["lora_alpha"]),
            lora_dropout=float(paper["lora_dropout"]),
            lora_target_modules=paper["lora_target_modules"],
        )
    )
    copies = {"stock": base, "sycophancy": copy.deepcopy(base)}
    run.drop_model()  # the copies are the trainers' now

    class StepTimer(TrainerCallback):
        """Seconds and peak memory of every optimizer step (synchronised with the GPU)."""

        def __init__(self) -> None:
            self.steps: list[dict[str, Any]] = []

        def on_step_begin(self, args, state, control, model=None, **kwargs):
            # transformers 5 names it activation checkpointing; 4.x only has the gradient_ spelling
            self._checkpointing = getattr(model, "is_activation_checkpointing", None)
            if self._checkpointing is None:
                self._checkpointing = getattr(model, "is_gradient_checkpointing", None)
            reset_peak(device)
            self._resident = allocated_gib(device)
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            cuda_sync(device)
            self.steps.append(
                {
                    "seconds": time.perf_counter() - self._start,
                    "peak_gib": peak_gib(device),
                    "resident_gib": self._resident,
                    "activation_checkpointing": self._checkpointing,
                }
            )

    trainers: dict[str, Any] = {}
    timers: dict[str, StepTimer] = {}
    tokens: dict[str, list[tuple[int, int]]] = {}
    out_dirs: list[str] = []
    for kind, cls in (("stock", ORPOTrainer), ("sycophancy", SycophancyORPOTrainer)):
        out_dirs.append(tempfile.mkdtemp(prefix=f"bench-gpu-{kind}-", dir=run.work))
        args = SycophancyORPOConfig(
            output_dir=out_dirs[-1],
            per_device_train_batch_size=sizes.per_device_train_batch_size,
            effective_batch_size=sizes.effective_batch_size,
            max_steps=steps_per_call,
            max_length=sizes.max_length,
            beta=float(paper["beta"]),
            learning_rate=float(paper["learning_rate"]),
            lr_scheduler_type=paper["lr_scheduler_type"],
            response_only_nll=bool(paper["response_only_nll"]),
            gradient_checkpointing=bool(paper["gradient_checkpointing"]),
            bf16=True,
            use_cpu=device == "cpu",
            report_to="none",
            logging_steps=10_000,
            save_strategy="no",
            disable_tqdm=True,
            dataloader_num_workers=0,
            seed=run.args.seed,
        )
        timers[kind] = StepTimer()
        trainer = cls(
            model=copies[kind],
            args=args,
            train_dataset=dataset,
            processing_class=run.tokenizer,
            peft_config=peft,
            callbacks=[timers[kind]],
        )
        tokens[kind] = []
        collate = trainer.data_collator

        def counting(features, collate=collate, sink=tokens[kind]):
            batch = collate(features)
            masks = (batch["chosen_attention_mask"], batch["rejected_attention_mask"])
            sink.append((int(sum(m.sum() for m in masks)), int(sum(m.numel() for m in masks))))
            return batch

        trainer.data_collator = counting
        trainers[kind] = trainer
    del copies, base
    accumulation = trainers["stock"].args.gradient_accumulation_steps

    timed: dict[str, list[dict[str, Any]]] = {kind: [] for kind in trainers}
    for round_no in range(sizes.train_rounds):
        order = list(trainers) if round_no % 2 == 0 else list(trainers)[::-1]
        for kind in order:
            trainer, timer = trainers[kind], timers[kind]
            timer.steps.clear()
            tokens[kind].clear()
            trainer.train()
            if len(timer.steps) != steps_per_call:
                raise RuntimeError(f"{kind}: {len(timer.steps)} optimizer steps, expected {steps_per_call}")
            for i, step in enumerate(timer.steps[1:], start=1):  # step 0 warms up
                batch = tokens[kind][i * accumulation : (i + 1) * accumulation]
                step.update(tokens=sum(b[0] for b in batch), padded_tokens=sum(b[1] for b in batch))
                timed[kind].append(step)
            log(
                f"orpo: round {round_no + 1}, {kind}: {timer.steps[-1]['seconds']:.2f} s/step "
                f"({run.clock.left():.0f} s of the budget left)"
            )
    for path in out_dirs:
        shutil.rmtree(path, ignore_errors=True)
    for trainer in trainers.values():
        trainer.accelerator.free_memory()  # the accelerator keeps references to what it prepared
    trainer = timer = None
    del trainers
    free_device_memory(device)

    summary: dict[str, Any] = {}
    for kind, steps in timed.items():
        seconds = sum(s["seconds"] for s in steps)
        peaks = [s["peak_gib"] for s in steps if s["peak_gib"] is not None]
        above = [s["peak_gib"] - s["resident_gib"] for s in steps if s["peak_gib"] is not None]
        summary[kind] = {
            "timed_steps": len(steps),
            "tokens": sum(s["tokens"] for s in steps),
            "seconds": seconds,
            "tokens_per_s": sum(s["tokens"] for s in steps) / seconds,
            "seconds_per_step": seconds / len(steps),
            "peak_gib": max(peaks) if peaks else None,
            "peak_above_step_start_gib": max(above) if above else None,
            "steps": steps,
        }
    out: dict[str, Any] = {
        "settings": {
            "config": str(PAPER_CONFIG.relative_to(REPO)),
            "lora_r": paper["lora_r"],
            "lora_alpha": paper["lora_alpha"],
            "lora_dropout": paper["lora_dropout"],
            "lora_target_modules": paper["lora_target_modules"],
            "max_length": sizes.max_length,
            "prompt_tokens": sizes.prompt_tokens,
            "per_device_train_batch_size": sizes.per_device_train_batch_size,
            "effective_batch_size": sizes.effective_batch_size,
            "gradient_accumulation_steps": accumulation,
            "gradient_checkpointing": bool(paper["gradient_checkpointing"]),
            # read from the model during every timed step: the config asked, this says it happened
            "activation_checkpointing_seen": sorted(
                {str(s["activation_checkpointing"]) for steps in timed.values() for s in steps}
            ),
            "response_only_nll": bool(paper["response_only_nll"]),
            "bf16": True,
            "timed_steps_per_call": sizes.train_steps,
            "rounds": sizes.train_rounds,
        },
        "trainers": summary,
        "tokens_per_s_ratio_ours_over_stock": summary["sycophancy"]["tokens_per_s"]
        / summary["stock"]["tokens_per_s"],
    }
    if summary["stock"]["peak_gib"]:
        out["peak_ratio_ours_over_stock"] = summary["sycophancy"]["peak_gib"] / summary["stock"]["peak_gib"]
    return out


