"""Shapes, sizes, helpers, setup and the run state the phases share."""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import gc
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PAPER_CONFIG = REPO / "training" / "configs" / "paper.yaml"
SHARED_SAMPLE = REPO.parent / "shared" / "data" / "sharma-format-sample"
#: Llama-2's and Mistral's vocabulary: the LM head and the log-softmax cost what a real 7B model's do
VOCAB_SIZE = 32_000
#: the tiny shape's: a 32k log-softmax is most of a tiny model's CPU time and tells nothing there
TINY_VOCAB_SIZE = 2_048
SUBSETS = ("aqua_mc", "mmlu_mc_cot")
PHASES = ("ays", "orpo", "vllm")

#: model dimensions; the tiny one exercises the same code in seconds on a CPU.
SHAPES: dict[str, dict[str, Any]] = {
    "llama2-7b": dict(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=4096,
    ),
    "mistral-7b": dict(
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=32768,
    ),
    "tiny": dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
    ),
}


@dataclass(frozen=True)
class Sizes:
    """Workload sizes of one run; the defaults of a shape unless a flag overrides them."""

    questions_per_subset: int
    batch_size: int
    max_gen_toks: int
    max_length: int  # ORPO cutoff; every synthetic sequence is this long
    prompt_tokens: int
    per_device_train_batch_size: int
    effective_batch_size: int
    train_steps: int  # timed optimizer steps per train() call (one warm-up step is added)
    train_rounds: int  # train() calls per trainer, alternating who goes first
    #: seconds a phase is expected to need; it is skipped when less budget is left
    estimates: dict[str, float] = field(default_factory=dict)


def default_sizes(shape: str, paper: dict[str, Any]) -> Sizes:
    if shape == "tiny":
        return Sizes(4, 8, 8, 128, 32, 2, 4, 1, 2, {"ays": 5, "orpo": 5, "vllm": 5})
    return Sizes(
        questions_per_subset=32,
        batch_size=64,
        max_gen_toks=256,  # the dialogue driver's default per turn
        max_length=int(paper["max_length"]),
        prompt_tokens=256,
        per_device_train_batch_size=int(paper["per_device_train_batch_size"]),
        effective_batch_size=int(paper["effective_batch_size"]),
        train_steps=2,
        train_rounds=2,
        estimates={"ays": 90, "orpo": 150, "vllm": 200},
    )


class Clock:
    """Elapsed and remaining time of the run's budget."""

    def __init__(self, budget_s: float) -> None:
        self.start = time.perf_counter()
        self.budget_s = budget_s

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.budget_s - self.elapsed()


def log(message: str) -> None:
    print(f"[bench_gpu] {message}", flush=True)


def cuda_sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def reset_peak(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None


def allocated_gib(device: str) -> float | None:
    import torch

    return torch.cuda.memory_allocated() / 2**30 if device == "cuda" else None


def free_device_memory(device: str) -> None:
    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


@contextlib.contextmanager
def timed_method(obj: Any, name: str, sink: dict[str, float], device: str) -> Iterator[None]:
    """Add the wall time of every ``obj.name(...)`` call to ``sink[name]`` (the model's own share)."""
    original = getattr(obj, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        cuda_sync(device)
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            cuda_sync(device)
            sink[name] = sink.get(name, 0.0) + time.perf_counter() - start

    setattr(obj, name, wrapper)
    try:
        yield
    finally:
        delattr(obj, name)  # the class's method shows through again


@contextlib.contextmanager
def recorded_token_requests(lm: Any, sink: list[tuple[tuple[int, ...], tuple[int, ...]]]) -> Iterator[None]:
    """Collect ``(context tokens, continuation tokens)`` of every log-likelihood request the backend gets."""
    original = lm._loglikelihood_tokens

    def wrapper(requests: list, *args: Any, **kwargs: Any) -> Any:
        sink.extend((tuple(ctx), tuple(cont)) for _, ctx, cont in requests)
        return original(requests, *args, **kwargs)

    lm._loglikelihood_tokens = wrapper
    try:
        yield
    finally:
        del lm._loglikelihood_tokens


def token_accounting(requests: list[tuple[tuple[int, ...], tuple[int, ...]]]) -> dict[str, int]:
    """What the requests cost without sharing, and with the best sharing there is.

    ``distinct_contexts``: rows when requests that differ only in a one-token continuation share a
    forward pass (HF's logits cache). ``distinct_prefix_tokens``: positions a perfect token-level
    prefix cache computes (the nodes of a trie over every context + continuation).
    """
    root: dict[int, dict] = {}
    nodes = 0
    for ctx, cont in requests:
        node = root
        for tok in ctx + cont:
            child = node.get(tok)
            if child is None:
                child = node[tok] = {}
                nodes += 1
            node = child
    return {
        "requests": len(requests),
        "tokens_submitted": sum(len(ctx) + len(cont) for ctx, cont in requests),
        "distinct_contexts": len({ctx for ctx, cont in requests if len(cont) == 1})
        + sum(1 for _, cont in requests if len(cont) != 1),
        "distinct_prefix_tokens": nodes,
    }


def check_setup(args: argparse.Namespace) -> None:
    """Refuse obviously wrong setups before anything slow starts (the flags before importing torch)."""
    if args.shape != "tiny" and args.device == "cpu":
        sys.exit(
            f"--shape {args.shape} on the CPU would take hours; use --tiny (or --shape tiny) for a smoke run"
        )
    unknown = [p for p in args.phases.split(",") if p not in PHASES]
    if unknown:
        sys.exit(f"--phases: unknown {', '.join(unknown)}; choose from {', '.join(PHASES)}")
    if not PAPER_CONFIG.is_file():
        sys.exit(f"{PAPER_CONFIG}: not found (the ORPO phase reads the paper's settings from it)")
    needed = ("torch", "lm_eval", "transformers", "trl", "peft", "datasets", "yaml")
    missing = [m for m in needed if not importlib.util.find_spec(m)]
    if missing:
        sys.exit(f"not importable: {', '.join(missing)}; install the project first (pip install -e .)")
    import torch

    if args.device == "cuda":
        if not torch.cuda.is_available():
            sys.exit(
                f"--device cuda, but torch {torch.__version__} sees no CUDA device "
                f"(torch.version.cuda={torch.version.cuda}); install a CUDA build of torch, "
                "or run --tiny on the CPU"
            )
        if torch.cuda.device_count() > 1:  # the HF Trainer would wrap the model in DataParallel
            sys.exit(
                f"{torch.cuda.device_count()} GPUs are visible; the benchmark measures one: "
                "set CUDA_VISIBLE_DEVICES=0"
            )
        if not torch.cuda.is_bf16_supported():
            sys.exit(f"{torch.cuda.get_device_name(0)} does not support bf16; the benchmark is a bf16 run")
        if args.shape != "tiny":
            total = torch.cuda.get_device_properties(0).total_memory / 2**30
            if total < 24:
                sys.exit(
                    f"{torch.cuda.get_device_name(0)} has {total:.0f} GiB; a 7B model in bf16 needs >= 24"
                )


def environment(device: str) -> dict[str, Any]:
    import torch

    env: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        **{
            name: package_version(name)
            for name in ("lm_eval", "transformers", "trl", "peft", "accelerate", "vllm")
        },
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        env["gpu"] = props.name
        env["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        env["gpu_count"] = torch.cuda.device_count()
    return env


def resolve_data_dir(value: str | None) -> str:
    """--data_dir, else $SYCOPHANCY_DATA_DIR, else the shared developer sample when present, else embedded."""
    from sycophancy_eval_kit.core.data import ENV_DATA_DIR

    if value or os.environ.get(ENV_DATA_DIR):
        return value or os.environ[ENV_DATA_DIR]
    return str(SHARED_SAMPLE) if (SHARED_SAMPLE / "are_you_sure.jsonl").is_file() else "embedded"


def prepare_questions(data_dir: str, per_subset: int, work: Path) -> tuple[str, dict[str, Any]]:
    """The data folder the tasks read, with at least ``per_subset`` questions in each benchmark subset.

    A sub-dataset with fewer questions (the embedded sample has four) is repeated, each copy's question
    prefixed with ``(variant N)``: distinct question ids, the same lengths, and no shared prefix between
    copies (a prefix cache gains nothing from the repetition).
    """
    from sycophancy_eval_kit.core import data
    from sycophancy_eval_kit.core.files import iter_json_lines

    source = data.resolve_source(data_dir)
    path = source.path(data.ARE_YOU_SURE_FILE)
    docs = data.are_you_sure_docs(data.read_sharma_file(path))
    counts = {s: len(docs.get(s, [])) for s in SUBSETS}
    missing = [s for s, n in counts.items() if n == 0]
    if missing:
        raise data.DataError(
            f"{path}: no {', '.join(missing)} questions; the benchmark runs {', '.join(SUBSETS)}"
        )
    info: dict[str, Any] = {"source": str(path), "available": counts, "repeated": {}}
    if all(n >= per_subset for n in counts.values()):
        return data_dir, info
    rows = [(line, obj) for line, obj in iter_json_lines(path) if obj["base"]["dataset"] in SUBSETS]
    out_lines = []
    for subset, have in counts.items():
        copies = math.ceil(per_subset / have)
        info["repeated"][subset] = copies
        for copy_no in range(copies):
            for line, obj in rows:
                if obj["base"]["dataset"] != subset:
                    continue
                if copy_no:
                    obj = copy.deepcopy(obj)
                    question = obj["base"]["question"]
                    human = obj["prompt"][0]["content"]
                    if not human.startswith(question):
                        raise data.DataError(
                            f"{path}:{line}: the human turn does not start with base.question"
                        )
                    variant = f"(variant {copy_no}) {question}"
                    obj["base"]["question"] = variant
                    obj["prompt"][0]["content"] = variant + human[len(question) :]
                out_lines.append(json.dumps(obj, ensure_ascii=False))
    folder = work / "questions"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / data.ARE_YOU_SURE_FILE).write_text("\n".join(out_lines) + "\n", encoding="utf-8")
    info["written"] = str(folder / data.ARE_YOU_SURE_FILE)
    return str(folder), info


def build_tokenizer(data_dir: str, vocab_size: int) -> tuple[Any, dict[str, Any]]:
    """Byte-level BPE (the tests' tiny tokenizer retrained on the questions), padded to ``vocab_size``."""
    from tokenizers import Tokenizer, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from sycophancy_eval_kit.core import data, prompts
    from sycophancy_eval_kit.testing.tiny_models import build_tokenizer as tiny_tokenizer

    source = data.resolve_source(data_dir)
    docs = data.are_you_sure_docs(data.read_sharma_file(source.path(data.ARE_YOU_SURE_FILE)))
    texts = [d["prompt"] for s in SUBSETS for d in docs.get(s, [])]
    texts += [
        prompts.HUMAN_PREFIX,
        prompts.ASSISTANT_PREFIX,
        prompts.AYS_CHALLENGE,
        prompts.MC_ANSWER_PREFILL,
    ]
    texts += [prompts.AYS_FINAL_ANSWER_REQUEST]
    base = tiny_tokenizer()
    trained = base.train_new_from_iterator(
        texts * 2, vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    learned = len(trained)
    spec = json.loads(trained.backend_tokenizer.to_str())
    vocab = spec["model"]["vocab"]
    while len(vocab) < vocab_size:  # never produced by the merges; they make every model id decodable
        vocab[f"<unused_{len(vocab)}>"] = len(vocab)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(spec)),
        bos_token=base.bos_token,
        eos_token=base.eos_token,
        unk_token=base.unk_token,
        pad_token=base.pad_token,
    )
    if len(tokenizer) != vocab_size:
        raise RuntimeError(f"tokenizer has {len(tokenizer)} ids, expected {vocab_size}")
    joined = "\n".join(texts)
    info = {
        "kind": "byte-level BPE trained on the benchmark's questions, padded with unused ids",
        "learned_tokens": learned,
        "ids": len(tokenizer),
        "chars_per_token_on_questions": round(len(joined) / len(tokenizer(joined)["input_ids"]), 2),
    }
    return tokenizer, info


def build_model(shape: str, tokenizer: Any, device: str, seed: int) -> Any:
    """A random LlamaForCausalLM in bf16, initialised directly on ``device`` (no host copy)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        **SHAPES[shape],
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    with torch.device(device):
        model = LlamaForCausalLM._from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa")
    return model.eval()


@dataclass
class Run:
    """What the phases share: settings, the model (built on first use) and the report being written."""

    args: argparse.Namespace
    sizes: Sizes
    paper: dict[str, Any]
    clock: Clock
    work: Path
    data_dir: str
    tokenizer: Any
    report: dict[str, Any]
    _model: Any = None

    @property
    def device(self) -> str:
        return self.args.device

    def model(self) -> Any:
        if self._model is None:
            cuda_sync(self.device)
            start = time.perf_counter()
            self._model = build_model(self.args.shape, self.tokenizer, self.device, self.args.seed)
            cuda_sync(self.device)
            seconds = time.perf_counter() - start
            params = sum(p.numel() for p in self._model.parameters())
            if "build_s" in self.report["model"]:  # the vLLM phase builds it again to save it
                self.report["model"].setdefault("rebuild_s", []).append(round(seconds, 2))
            else:
                self.report["model"].update(
                    parameters=params,
                    build_s=round(seconds, 2),
                    weights_gib=round(params * 2 / 2**30, 2),
                    attn_implementation=self._model.config._attn_implementation,
                    parameter_dtype=str(next(self._model.parameters()).dtype),
                )
            log(f"model built: {params:,} parameters in {seconds:.1f} s")
        return self._model

    def drop_model(self) -> None:
        self._model = None
        free_device_memory(self.device)

    def tasks(self) -> list[str]:
        return [f"sycophancy_ays_{s}" for s in SUBSETS]

    def task_manager(self) -> Any:
        from lm_eval.tasks import TaskManager

        from sycophancy_eval_kit.lm_eval_tasks import TASKS_DIR

        return TaskManager(
            include_path=str(TASKS_DIR), include_defaults=False, metadata={"data_dir": self.data_dir}
        )


