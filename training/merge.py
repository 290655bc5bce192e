"""Merge a trained LoRA adapter into its base model: a full model folder any tool can load.

```bash
syco-merge --adapter outputs/mistral-aligned --output_dir outputs/mistral-aligned-merged
lm_eval --model hf --model_args pretrained=outputs/mistral-aligned-merged ...
```

The base model is the one recorded in the adapter's ``adapter_config.json`` unless ``--base`` names
another copy (e.g. a local mirror). The tokenizer saved with the adapter (holding the chat template
used in training) is copied alongside the merged weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class MergeArguments:
    r"""
    Parameters:
        adapter (`str`):
            Folder holding the LoRA adapter (the training script's `--output_dir`).
        output_dir (`str`):
            Where the merged model and tokenizer are written.
        base (`str`, *optional*):
            Base model (hub id or folder). Defaults to the adapter's `base_model_name_or_path`.
        dtype (`str`, *optional*, defaults to `"auto"`):
            dtype the base model is loaded and saved in: `auto` keeps its stored dtype.
    """

    adapter: str = field(metadata={"help": "Folder holding the LoRA adapter."})
    output_dir: str = field(metadata={"help": "Where the merged model and tokenizer are written."})
    base: str | None = field(default=None, metadata={"help": "Base model; default: the adapter's own."})
    dtype: str = field(
        default="auto",
        metadata={
            "help": "dtype to load and save in.",
            "choices": ["auto", "bfloat16", "float16", "float32"],
        },
    )


def merge(args: MergeArguments) -> Path:
    """Load base + adapter, fold the LoRA weights in, save model and tokenizer to ``output_dir``."""
    import torch
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = Path(args.adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{adapter}: no adapter_config.json; expected a LoRA adapter folder")
    base = args.base or PeftConfig.from_pretrained(str(adapter)).base_model_name_or_path
    dtype = args.dtype if args.dtype == "auto" else getattr(torch, args.dtype)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    out = Path(args.output_dir)
    merged.save_pretrained(out)
    tokenizer_source = adapter if (adapter / "tokenizer_config.json").is_file() else base
    AutoTokenizer.from_pretrained(str(tokenizer_source)).save_pretrained(out)
    return out


def cli(argv: list[str] | None = None) -> None:
    """The ``syco-merge`` console script."""
    from trl import TrlParser

    (args,) = TrlParser((MergeArguments,)).parse_args_and_config(args=argv)
    out = merge(args)
    print(f"Merged model saved to {out}.")


if __name__ == "__main__":
    cli()
