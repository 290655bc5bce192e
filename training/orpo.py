"""
ORPO + LoRA alignment on dpo_mix_en, optionally mixed with SAA (the paper's "aligned" / "aligned-SAA").

# The paper's setup, one GPU ("aligned-SAA"; drop `--datasets ... --saa_path ...` for "aligned")
```bash
accelerate launch --config_file training/accelerate/single_gpu.yaml training/orpo.py \
    --config training/configs/paper.yaml \
    --model_name_or_path mistralai/Mistral-7B-Instruct-v0.2 \
    --datasets dpo_mix_en saa --saa_path saa_out \
    --output_dir outputs/mistral-v0.2-aligned-saa
```

# Eight GPUs (DDP): the effective batch stays 16, gradient accumulation is derived
```bash
accelerate launch --config_file training/accelerate/multi_gpu.yaml --num_processes 8 training/orpo.py \
    --config training/configs/paper.yaml --model_name_or_path google/gemma-7b-it \
    --output_dir outputs/gemma-aligned
```

# Offline smoke run on CPU (seconds, shipped fixtures; any small causal LM)
```bash
python -m sycophancy_eval_kit.testing.tiny_models /tmp/tiny
accelerate launch --cpu training/orpo.py --config training/configs/smoke.yaml \
    --model_name_or_path /tmp/tiny --output_dir /tmp/smoke
```

Resume after an interruption: rerun the same command with `--resume_from_checkpoint true` (the newest
complete checkpoint in `--output_dir`; one cut short by a kill while it was saved is skipped, and named)
or a checkpoint folder. Stop a run with Ctrl-C or by signalling the launcher's process group
(`kill -TERM -- -PGID`); `accelerate launch` does not forward a SIGTERM sent to it alone. The output
folder gets the LoRA adapter, the tokenizer (with the chat template used), `resolved_config.yaml` and
`data_manifest.json`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any


def main(script_args, training_args, model_args, callbacks: list[Any] | None = None):
    """Wire the pieces: tokenizer + chat-template policy, data, model, PEFT, the trainer."""
    import torch
    import yaml
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import get_peft_config

    from sycophancy_eval_kit.core import files
    from sycophancy_eval_kit.training.chat_templates import apply_policy
    from sycophancy_eval_kit.training.checkpoints import resolve_resume
    from sycophancy_eval_kit.training.data import prepare_preference_data, write_manifest
    from sycophancy_eval_kit.training.trainer import SycophancyORPOTrainer

    if not model_args.model_name_or_path:
        raise ValueError("--model_name_or_path is required (a hub id or a local model folder)")
    # a missing local folder is said to be missing (transformers would call it a malformed repo id)
    files.check_model_folder(model_args.model_name_or_path, "--model_name_or_path")
    # before any loading, so a bad --resume_from_checkpoint fails in seconds
    resume, note = resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir)

    tokenizer = AutoTokenizer.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
    )
    if tokenizer.pad_token is None:  # Mistral and Falcon ship without one; TRL's collator pads
        tokenizer.pad_token = tokenizer.eos_token
    template = apply_policy(tokenizer, script_args.chat_template_policy, script_args.chat_template_file)

    with training_args.main_process_first(desc="preparing preference data"):
        data = prepare_preference_data(script_args, tokenizer, training_args.max_length, template)

    model = AutoModelForCausalLM.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        dtype=getattr(torch, model_args.dtype)
        if model_args.dtype not in (None, "auto")
        else model_args.dtype,
        attn_implementation=model_args.attn_implementation,
        trust_remote_code=training_args.trust_remote_code,
    )

    trainer = SycophancyORPOTrainer(
        model=model,
        args=training_args,
        train_dataset=data.dataset,
        # the held-out split of test_split_size, evaluated as trl/scripts/dpo.py does
        eval_dataset=data.eval_dataset if training_args.eval_strategy != "no" else None,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        callbacks=callbacks,
    )
    processes = trainer.accelerator.num_processes
    effective = training_args.train_batch_size * training_args.gradient_accumulation_steps * processes
    resolved = {
        "model": dataclasses.asdict(model_args),
        "data": dataclasses.asdict(script_args),
        "training": training_args.to_dict(),
        "derived": {
            "world_size": processes,
            "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
            "effective_batch_size": effective,
            "chat_template": template.as_dict(),
        },
    }
    output_dir = Path(training_args.output_dir)
    if trainer.accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "resolved_config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
        write_manifest(data.manifest, output_dir)
    rows = ", ".join(f"{n}={c}" for n, c in data.manifest["rows_per_source"].items())
    trainer.accelerator.print(
        f"Training on {data.manifest['rows_total']} pairs ({rows}); {processes} process(es), "
        f"gradient accumulation {training_args.gradient_accumulation_steps}, effective batch {effective}; "
        f"chat template policy {template.policy}."
    )

    if note:
        trainer.accelerator.print(note)
    trainer.train(resume_from_checkpoint=resume)

    trainer.save_model(training_args.output_dir)
    if trainer.accelerator.is_main_process:
        (output_dir / "train_summary.json").write_text(
            json.dumps(
                {
                    "global_step": trainer.state.global_step,
                    "world_size": processes,
                    "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
                    "effective_batch_size": effective,
                    "log_history": trainer.state.log_history,
                },
                indent=2,
            )
            + "\n"
        )
    trainer.accelerator.print(f"Adapter, tokenizer and manifests saved to {output_dir}.")
    if hasattr(trainer, "end"):  # transformers >= 5.18: finish trackers, destroy the process group
        # Every rank must reach the teardown together: rank 0 writes its files first, and a rank that
        # starts destroying a gloo group alone was seen to hang there after training had finished.
        trainer.accelerator.wait_for_everyone()
        trainer.end()
    return trainer


def make_parser(subparsers: argparse._SubParsersAction | None = None, prog: str | None = None):
    from trl import ModelConfig, TrlParser

    from sycophancy_eval_kit.training.config import DataArguments, SycophancyORPOConfig

    dataclass_types = (DataArguments, SycophancyORPOConfig, ModelConfig)
    if subparsers is not None:
        return subparsers.add_parser("orpo", help="Run the ORPO script", dataclass_types=dataclass_types)
    return TrlParser(dataclass_types, prog=prog)


def cli(argv: list[str] | None = None) -> None:
    """Entry point of ``accelerate launch training/orpo.py`` and the ``syco-train`` console script."""
    from sycophancy_eval_kit.core.procs import stop_when_parent_dies

    stop_when_parent_dies("training/orpo.py")  # first: a launcher killed alone would leave this training
    from sycophancy_eval_kit.core.files import DataError, RefusedFolder
    from sycophancy_eval_kit.training.checkpoints import CheckpointError

    parser = make_parser()
    script_args, training_args, model_args = parser.parse_args_and_config(args=argv)
    try:
        trainer = main(script_args, training_args, model_args)
    except (DataError, CheckpointError, RefusedFolder) as err:  # an input error: its message, no stack
        raise SystemExit(f"error: {err}") from None
    if trainer.accelerator.num_processes > 1:
        # Everything is written and every rank has synchronised. Freeing the DDP reducer now would
        # destroy its gloo process group while holding the GIL, joining a gloo thread that waits for
        # the GIL (torch 2.13: seen to hang a rank forever after a finished run): exit without it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":  # `accelerate launch training/orpo.py` runs this file as a script
    cli()
