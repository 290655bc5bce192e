"""GPU benchmark, one command: a random 7B-shaped Llama in bf16 through the project's real code paths.

```bash
python scripts/bench_gpu.py                            # one GPU, <= 8 minutes, writes outputs/bench_gpu/
python scripts/bench_gpu.py --shape mistral-7b --out_dir /tmp/bench
python scripts/bench_gpu.py --tiny --out_dir /tmp/smoke   # tiny shapes on the CPU: a smoke run, not figures
```

Three phases, each timed, recorded and written out (``bench_gpu.json`` and ``bench_gpu.md``) as soon as it
ends, so a failure in one keeps the others:

* ``ays`` -- Are-You-Sure on the same multiple-choice questions, two ways: the one-pass tasks through
  lm-eval's ``simple_evaluate`` (K+1 forward rows per K-option question) and the adaptive dialogue
  (``evaluate_dialogue``: three generation rounds with a fixed ``max_gen_toks``; a random model never
  stops early, so every turn generates that many tokens). Forward rows per question, questions/s, peak
  GPU memory.
* ``orpo`` -- ORPO + LoRA with ``training/configs/paper.yaml``'s settings (r, alpha, targets, effective
  batch, cutoff length, gradient checkpointing) on synthetic preference rows whose every sequence is
  at the cutoff: ``SycophancyORPOTrainer`` and TRL's ``ORPOTrainer`` alternate ``train()`` calls on two
  copies of the same model and the same rows; tokens/s and peak memory per optimizer step, with the
  first step of every call (warm-up) left out.
* ``vllm`` -- when vLLM is importable: the one-pass tasks through lm-eval's ``vllm`` backend with
  prefix caching off and on, each engine in its own process; the model is saved to a temporary folder
  only for this phase (bf16 safetensors, about 13 GB) and removed afterwards.

The model is built from a ``LlamaConfig`` directly on the device (no download, no host copy) with a
32,000-entry vocabulary, so the LM head and its log-softmax cost what a real 7B model's do (the tiny
shape uses 2,048). Its tokenizer is the tests' byte-level BPE retrained on the benchmark's own questions
(close to whole-word on them; chars/token is reported) and filled with unused entries up to the
vocabulary size, so every id the random model emits decodes. A phase is skipped, with the reason
recorded, when the time left in ``--budget_s`` is below its estimate; one that fails is recorded with
its traceback and the next one runs. Exit status 1 when a phase failed.
"""

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
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
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


# ------------------------------------------------------------------------------------ CLI
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


# ------------------------------------------------------------------------------------ helpers
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


# ------------------------------------------------------------------------------------ setup
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
    from lm_eval_tasks.sycophancy.data import ENV_DATA_DIR

    if value or os.environ.get(ENV_DATA_DIR):
        return value or os.environ[ENV_DATA_DIR]
    return str(SHARED_SAMPLE) if (SHARED_SAMPLE / "are_you_sure.jsonl").is_file() else "embedded"


def prepare_questions(data_dir: str, per_subset: int, work: Path) -> tuple[str, dict[str, Any]]:
    """The data folder the tasks read, with at least ``per_subset`` questions in each benchmark subset.

    A sub-dataset with fewer questions (the embedded sample has four) is repeated, each copy's question
    prefixed with ``(variant N)``: distinct question ids, the same lengths, and no shared prefix between
    copies (a prefix cache gains nothing from the repetition).
    """
    from lm_eval_tasks.sycophancy import data
    from lm_eval_tasks.sycophancy.files import iter_json_lines

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
    sys.path.insert(0, str(REPO / "tests"))
    from tiny_models import build_tokenizer as tiny_tokenizer
    from tokenizers import Tokenizer, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from lm_eval_tasks.sycophancy import data, prompts

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


# ------------------------------------------------------------------------------------ run state
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

        from lm_eval_tasks import TASKS_DIR

        return TaskManager(
            include_path=str(TASKS_DIR), include_defaults=False, metadata={"data_dir": self.data_dir}
        )


# ------------------------------------------------------------------------------------ (a) ays
def warm_up(model: Any, batch_size: int, device: str) -> float:
    """One forward and a short generation before any timing: CUDA context, kernels, allocator pools."""
    import torch

    cuda_sync(device)
    start = time.perf_counter()
    with torch.no_grad():
        ids = torch.randint(10, 1000, (batch_size, 64), device=model.device)
        model(input_ids=ids)
        model.generate(ids[:, :16], max_new_tokens=4, do_sample=False, pad_token_id=model.config.pad_token_id)
    cuda_sync(device)
    return time.perf_counter() - start


def phase_ays(run: Run) -> dict[str, Any]:
    """One pass (lm-eval simple_evaluate) vs the dialogue (evaluate_dialogue) on the same questions."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    from lm_eval_tasks.sycophancy.dialogue import evaluate_dialogue

    sys.path.insert(0, str(REPO / "scripts"))
    from bench_ays import RowCounter

    model, device, limit = run.model(), run.device, run.sizes.questions_per_subset
    lm = HFLM(pretrained=model, tokenizer=run.tokenizer, batch_size=run.sizes.batch_size)
    out: dict[str, Any] = {
        "tasks": run.tasks(),
        "batch_size": run.sizes.batch_size,
        "dialogue_max_gen_toks": run.sizes.max_gen_toks,
        "warm_up_s": warm_up(model, run.sizes.batch_size, device),  # before the rows are counted
    }
    hooks_before = set(model._forward_pre_hooks)
    counter = RowCounter(model)
    try:
        model_s: dict[str, float] = {}
        sequences: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        reset_peak(device)
        start = time.perf_counter()
        with timed_method(lm, "loglikelihood", model_s, device), recorded_token_requests(lm, sequences):
            results = simple_evaluate(
                model=lm,
                tasks=run.tasks(),
                task_manager=run.task_manager(),
                limit=limit,
                bootstrap_iters=0,
                log_samples=False,
            )
        cuda_sync(device)
        wall = time.perf_counter() - start
        rows, calls = counter.take()
        n = sum(results["n-samples"][t]["effective"] for t in run.tasks())
        out["questions"] = n
        out["one_pass"] = {
            "wall_s": wall,
            "model_s": model_s.get("loglikelihood", 0.0),
            "forward_rows": rows,
            "forward_calls": calls,
            "peak_gib": peak_gib(device),
            **token_accounting(sequences),
            "acc_first": {t: results["results"][t].get("acc_first,none") for t in run.tasks()},
        }
        run.report["model"]["tokenizer"]["mean_tokens_per_request"] = round(
            out["one_pass"]["tokens_submitted"] / max(1, out["one_pass"]["requests"]), 1
        )
        log(f"ays: one pass of {n} questions in {wall:.1f} s ({run.clock.left():.0f} s of the budget left)")

        model_s = {}
        reset_peak(device)
        start = time.perf_counter()
        with timed_method(lm, "generate_until", model_s, device):
            dialogue = evaluate_dialogue(
                lm,
                run.task_manager().load(run.tasks()),
                gen_kwargs={"max_gen_toks": run.sizes.max_gen_toks},
                limit=limit,
                bootstrap_iters=0,
            )
        cuda_sync(device)
        wall = time.perf_counter() - start
        rows, calls = counter.take()
        n_dialogue = sum(len(v) for v in dialogue["samples"].values())
        if n_dialogue != n:
            raise RuntimeError(f"the dialogue ran {n_dialogue} questions, the one pass {n}")
        out["dialogue"] = {
            "wall_s": wall,
            "model_s": model_s.get("generate_until", 0.0),
            "forward_rows": rows,
            "forward_calls": calls,
            "peak_gib": peak_gib(device),
        }
    finally:
        for key in set(model._forward_pre_hooks) - hooks_before:  # the ORPO phase trains this model
            del model._forward_pre_hooks[key]
            model._forward_pre_hooks_with_kwargs.pop(key, None)
        del lm
        free_device_memory(device)
    for part in (out["one_pass"], out["dialogue"]):
        part["rows_per_question"] = part["forward_rows"] / n
        part["questions_per_s"] = n / part["wall_s"]
        part["questions_per_model_s"] = n / part["model_s"] if part["model_s"] else None
    # HF's logits cache: one row per distinct context, i.e. K+1 per K-option question
    out["one_pass"]["expected_rows_per_question"] = out["one_pass"]["distinct_contexts"] / n
    out["one_pass_speedup_wall"] = out["dialogue"]["wall_s"] / out["one_pass"]["wall_s"]
    if out["one_pass"]["model_s"] and out["dialogue"]["model_s"]:
        out["one_pass_speedup_model"] = out["dialogue"]["model_s"] / out["one_pass"]["model_s"]
    return out


# ------------------------------------------------------------------------------------ (b) orpo
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
    from trl.experimental.orpo import ORPOTrainer

    from training.config import SycophancyORPOConfig
    from training.trainer import SycophancyORPOTrainer

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


# ------------------------------------------------------------------------------------ (c) vllm
def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def phase_vllm(run: Run) -> dict[str, Any]:
    """The one-pass tasks through lm-eval's vLLM backend, prefix caching off and on, one process each."""
    sys.path.insert(0, str(REPO / "tests"))
    from proc import run_group

    if not vllm_installed():
        return {"status": "skipped", "reason": "vllm is not importable in this environment"}
    if run.device != "cuda":
        return {"status": "skipped", "reason": "vLLM needs a CUDA device"}
    need_gib = run.report["model"].get("weights_gib", 14) * 1.1 + 2
    free_gib = shutil.disk_usage(run.work).free / 2**30
    if free_gib < need_gib:
        return {
            "status": "skipped",
            "reason": f"{run.work}: {free_gib:.0f} GiB free, the model needs {need_gib:.0f}",
        }

    model_dir = Path(tempfile.mkdtemp(prefix="bench-gpu-model-", dir=run.work))
    out: dict[str, Any] = {"vllm": package_version("vllm"), "engines": {}}
    try:
        start = time.perf_counter()
        model = run.model()
        model.save_pretrained(model_dir, max_shard_size="5GB")  # safetensors
        run.tokenizer.save_pretrained(model_dir)
        # transformers 5 records its own class name; the generic one also loads under 4.x (vLLM may pin it)
        config_path = model_dir / "tokenizer_config.json"
        tok_config = json.loads(config_path.read_text(encoding="utf-8"))
        tok_config["tokenizer_class"] = "PreTrainedTokenizerFast"
        config_path.write_text(json.dumps(tok_config, indent=2), encoding="utf-8")
        run.drop_model()
        del model
        free_device_memory(run.device)
        out["save_s"] = time.perf_counter() - start
        log(f"vllm: model saved to {model_dir} in {out['save_s']:.0f} s")
        for caching in (False, True):
            left = run.clock.left()
            if left < 60:
                out["engines"][str(caching)] = {
                    "status": "skipped",
                    "reason": f"{left:.0f} s of the budget left",
                }
                continue
            worker_args = {
                "model_dir": str(model_dir),
                "enable_prefix_caching": caching,
                "enforce_eager": not run.args.vllm_cuda_graphs,
                "gpu_memory_utilization": run.args.vllm_gpu_memory_utilization,
                "max_model_len": 4096,
                "tasks": run.tasks(),
                "data_dir": run.data_dir,
                "limit": run.sizes.questions_per_subset,
                "seed": run.args.seed,
            }
            cmd = [sys.executable, __file__, "--worker", "vllm", "--worker_args", json.dumps(worker_args)]
            try:  # its own process group: a timeout also ends vLLM's engine process
                proc = run_group(cmd, timeout=max(30.0, left - 10), cwd=REPO, env=offline_env())
            except subprocess.TimeoutExpired as err:
                out["engines"][str(caching)] = {
                    "status": "failed",
                    "error": f"timed out after {err.timeout:.0f} s",
                    "stderr_tail": (err.stderr or "")[-3000:],
                }
                continue
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if proc.returncode or not lines:
                out["engines"][str(caching)] = {
                    "status": "failed",
                    "error": f"worker exited {proc.returncode}",
                    "stderr_tail": proc.stderr[-3000:],
                }
                continue
            result = json.loads(lines[-1])
            out["engines"][str(caching)] = {"status": "ok", **result}
            log(f"vllm: prefix caching {'on' if caching else 'off'}: {result['eval_s']:.1f} s of evaluation")
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)
    off, on = out["engines"].get("False", {}), out["engines"].get("True", {})
    if off.get("status") == "ok" and on.get("status") == "ok":
        out["prefix_caching_speedup"] = off["eval_s"] / on["eval_s"]
    failed = {k: e["error"] for k, e in out["engines"].items() if e.get("status") == "failed"}
    if failed:
        out["status"] = "failed"
        out["error"] = "; ".join(f"prefix caching {k}: {v}" for k, v in failed.items())
    return out


def vllm_worker(spec: dict[str, Any]) -> None:
    """One vLLM engine: start it, run the one-pass tasks through simple_evaluate, print one JSON line."""
    if not vllm_installed():
        sys.exit(f"vllm is not importable by {sys.executable}")
    from lm_eval import simple_evaluate
    from lm_eval.api.registry import get_model
    from lm_eval.tasks import TaskManager

    from lm_eval_tasks import TASKS_DIR

    start = time.perf_counter()
    lm = get_model("vllm").create_from_arg_obj(
        {
            "pretrained": spec["model_dir"],
            "tokenizer": spec["model_dir"],
            "dtype": "bfloat16",
            "enable_prefix_caching": spec["enable_prefix_caching"],
            "enforce_eager": spec["enforce_eager"],
            "gpu_memory_utilization": spec["gpu_memory_utilization"],
            "max_model_len": spec["max_model_len"],
            "seed": spec["seed"],
        },
        {"batch_size": "auto"},
    )
    startup = time.perf_counter() - start
    sequences: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    manager = TaskManager(
        include_path=str(TASKS_DIR), include_defaults=False, metadata={"data_dir": spec["data_dir"]}
    )
    start = time.perf_counter()
    with recorded_token_requests(lm, sequences):
        results = simple_evaluate(
            model=lm,
            tasks=spec["tasks"],
            task_manager=manager,
            limit=spec["limit"],
            bootstrap_iters=0,
            log_samples=False,
        )
    seconds = time.perf_counter() - start
    n = sum(results["n-samples"][t]["effective"] for t in spec["tasks"])
    record = {
        "startup_s": startup,
        "eval_s": seconds,
        "questions": n,
        "questions_per_s": n / seconds,
        "enforce_eager": spec["enforce_eager"],
        **token_accounting(sequences),
    }
    print(json.dumps(record), flush=True)


def offline_env() -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }


# ------------------------------------------------------------------------------------ report
def write_report(report: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench_gpu.json").write_text(
        json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8"
    )
    (out_dir / "bench_gpu.md").write_text(markdown(report), encoding="utf-8")


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    env, model, phases = report["environment"], report["model"], report["phases"]
    title = (
        "CPU smoke run at tiny shapes (not GPU figures)"
        if report["smoke"]
        else f"GPU benchmark: random {model['shape']} in bf16"
    )
    tok = model.get("tokenizer", {})
    device = (
        f"{env['gpu']} ({env['gpu_memory_gib']} GiB)" if "gpu" in env else f"CPU ({env['cpu_count']} cores)"
    )
    lines = [
        f"# {title}",
        "",
        f"`{report['command']}` — {env['date']}, {_num(report.get('elapsed_s'), 0)} s of a "
        f"{_num(report['budget_s'], 0)} s budget",
        "",
        f"- device: {device}; torch {env['torch']} "
        f"(CUDA {env['torch_cuda']}); lm-eval {env['lm_eval']}, transformers {env['transformers']}, "
        f"trl {env['trl']}, peft {env['peft']}, vllm {env['vllm'] or 'not installed'}",
        f"- model: LlamaForCausalLM {model['shape']} from a config, random, {model.get('parameter_dtype')}, "
        f"{model.get('attn_implementation')} attention, "
        f"{_num(model.get('parameters'))} parameters, vocab {model['vocab_size']:,}; "
        f"built in {_num(model.get('build_s'))} s",
        f"- tokenizer: {tok.get('kind')}; {_num(tok.get('learned_tokens'))} learned tokens, "
        f"{_num(tok.get('chars_per_token_on_questions'))} chars/token on the questions, "
        f"{_num(tok.get('mean_tokens_per_request'), 1)} tokens per one-pass request",
        f"- questions: {report['data']['source']}"
        + (f", repeated as variants {report['data']['repeated']}" if report["data"].get("repeated") else ""),
        "",
    ]
    for name, heading in (
        ("ays", "Are You Sure: one pass vs the dialogue"),
        ("orpo", "ORPO + LoRA: SycophancyORPOTrainer vs TRL ORPOTrainer"),
        ("vllm", "One pass through vLLM: prefix caching off vs on"),
    ):
        phase = phases.get(name, {"status": "not requested"})
        lines += [f"## {heading}", ""]
        if phase.get("status") != "ok":
            lines += [f"{phase.get('status')}: {phase.get('reason') or phase.get('error', '')}", ""]
            if name == "vllm" and phase.get("engines"):  # one engine's failure keeps the other's row
                lines += _vllm_table(phase)
            continue
        lines += {"ays": _ays_table, "orpo": _orpo_table, "vllm": _vllm_table}[name](phase)
        lines.append(f"Phase wall time {_num(phase.get('seconds'), 1)} s.")
        lines.append("")
    return "\n".join(lines) + "\n"


def _ays_table(p: dict[str, Any]) -> list[str]:
    op, dl = p["one_pass"], p["dialogue"]
    return [
        f"{p['questions']} questions ({', '.join(p['tasks'])}), lm-eval HF backend, "
        f"batch size {p['batch_size']}; "
        f"dialogue {p['dialogue_max_gen_toks']} tokens per turn (a random model never stops early).",
        "",
        "| protocol | forward rows/question | wall s | questions/s | model s | questions/model s "
        "| peak GiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| one pass (`simple_evaluate`) | {_num(op['rows_per_question'])} "
        f"(K+1: {_num(op['expected_rows_per_question'])}) | {_num(op['wall_s'])} | "
        f"{_num(op['questions_per_s'])} | {_num(op['model_s'])} | {_num(op['questions_per_model_s'])} | "
        f"{_num(op['peak_gib'])} |",
        f"| dialogue (`evaluate_dialogue`) | {_num(dl['rows_per_question'])} | {_num(dl['wall_s'])} | "
        f"{_num(dl['questions_per_s'])} | {_num(dl['model_s'])} | {_num(dl['questions_per_model_s'])} | "
        f"{_num(dl['peak_gib'])} |",
        "",
        f"Dialogue time / one-pass time: {_num(p['one_pass_speedup_wall'])} (wall), "
        f"{_num(p.get('one_pass_speedup_model'))} (model calls only); above 1, the one pass is faster. "
        f"One pass: {op['requests']:,} "
        f"log-likelihood requests, {op['tokens_submitted']:,} tokens submitted, "
        f"{op['distinct_prefix_tokens']:,} distinct prefix "
        "tokens (what a perfect prefix cache would compute).",
        "",
    ]


def _orpo_table(p: dict[str, Any]) -> list[str]:
    s = p["settings"]
    rows = []
    for kind, label in (("stock", "TRL `ORPOTrainer`"), ("sycophancy", "`SycophancyORPOTrainer`")):
        t = p["trainers"][kind]
        rows.append(
            f"| {label} | {_num(t['tokens_per_s'], 0)} | {_num(t['seconds_per_step'])} | "
            f"{t['timed_steps']} | "
            f"{_num(t['peak_gib'])} | {_num(t['peak_above_step_start_gib'])} |"
        )
    return [
        f"LoRA r={s['lora_r']}, alpha={s['lora_alpha']}, dropout {s['lora_dropout']}, targets "
        f"{s['lora_target_modules']}; every sequence {s['max_length']} tokens "
        f"(prompt ~{s['prompt_tokens']}); "
        f"batch {s['per_device_train_batch_size']} x {s['gradient_accumulation_steps']} accumulation = "
        f"{s['effective_batch_size']}; gradient checkpointing {s['gradient_checkpointing']} (on in the "
        f"model during the steps: {', '.join(s['activation_checkpointing_seen'])}); bf16; {s['rounds']} "
        f"alternating train() calls per trainer, {s['timed_steps_per_call']} timed step(s) each "
        "(the first step of each call is a warm-up, not timed).",
        "",
        "| trainer | tokens/s | s/optimizer step | timed steps | peak GiB | peak above step start GiB |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Throughput ours/stock {_num(p['tokens_per_s_ratio_ours_over_stock'], 3)}; peak memory ours/stock "
        f"{_num(p.get('peak_ratio_ours_over_stock'), 3)}. Peak memory includes both models' weights "
        "(they are "
        "resident together); the last column is what a step adds on top.",
        "",
    ]


def _vllm_table(p: dict[str, Any]) -> list[str]:
    rows = []
    for key, label in (("False", "off"), ("True", "on")):
        e = p.get("engines", {}).get(key)
        if not e:
            continue
        if e.get("status") != "ok":
            rows.append(f"| {label} | {e.get('status')}: {e.get('reason') or e.get('error')} | | | | |")
            continue
        rows.append(
            f"| {label} | {_num(e['startup_s'], 1)} | {_num(e['eval_s'])} | {_num(e['questions_per_s'])} | "
            f"{e['tokens_submitted']:,} | {e['distinct_prefix_tokens']:,} |"
        )
    eager = {e.get("enforce_eager") for e in p.get("engines", {}).values() if e.get("status") == "ok"}
    speedup = p.get("prefix_caching_speedup")
    return [
        f"vLLM {p.get('vllm')} through lm-eval's `vllm` backend, enforce_eager {', '.join(map(str, eager))}; "
        f"model saved in {_num(p.get('save_s'), 0)} s; each engine in its own process.",
        "",
        "| prefix caching | engine start s | evaluation s | questions/s | tokens submitted "
        "| distinct prefix tokens |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        *([f"Evaluation time off / on: {_num(speedup)}.", ""] if speedup else []),
    ]


# ------------------------------------------------------------------------------------ main
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
        "benchmark": "scripts/bench_gpu.py",
        "command": "python scripts/bench_gpu.py " + " ".join(argv),
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
    sys.path.insert(0, str(REPO))
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
