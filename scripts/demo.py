"""The end-to-end demo, offline, on the embedded sample: ``make demo``.

Steps 1-7 build a tiny random model (seconds, no download) and run every part on it: both tasks
through the real ``lm_eval`` command line, the dialogue, the SAA builder, ORPO training, the adapter's
evaluation and the leaderboard. A random model knows nothing, so those numbers are near zero. Step 8
is the toy world (``scripts/configs/toy.yaml``): a small model trained on invented facts, then
aligned two ways, where the sycophancy measures move for real (``docs/toy-world.md``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from tiny_models import build_tiny_model  # noqa: E402

from lm_eval_tasks.sycophancy.cli_flags import ArgumentParser  # noqa: E402

BIN = Path(sys.executable).parent


def step(title: str) -> float:
    print(f"\n=== {title}", flush=True)
    return time.perf_counter()


def run(cmd: list[str]) -> None:
    print("$ " + " ".join(cmd), flush=True)
    # Tiny models run fastest on one thread; a user's own setting wins.
    env = {"OMP_NUM_THREADS": "1", **os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(cmd, check=True, cwd=REPO, env=env)


def lm_eval_cmd(model_args: str, tasks: str, output: Path, *extra: str) -> list[str]:
    return [
        str(BIN / "lm_eval"), "--model", "hf", "--model_args", model_args, "--device", "cpu",
        "--batch_size", "16", "--include_path", str(REPO / "lm_eval_tasks"), "--tasks", tasks,
        "--metadata", "data_dir=embedded", "--gen_kwargs", "max_gen_toks=16",
        "--output_path", str(output), "--log_samples", *extra,
    ]  # fmt: skip


def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "demo_output"), help="where everything is written")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    start = time.perf_counter()

    t = step("1. Build a tiny random Llama with a chat template (offline)")
    model = build_tiny_model(out / "tiny-model", chat_template=True)
    print(f"model in {model} ({time.perf_counter() - t:.1f}s)")

    step(
        "2. Evaluate it with lm-eval: sycophancy_answer and sycophancy_ays (one pass) on the embedded sample"
    )
    results = out / "results"
    base_args = f"pretrained={model},dtype=float32"
    run(lm_eval_cmd(base_args, "sycophancy_answer,sycophancy_ays", results, "--apply_chat_template"))

    step("3. The paper's adaptive Are-You-Sure dialogue over the same lm-eval backend")
    run([str(BIN / "syco-dialogue"), "--model", "hf", "--model_args", base_args, "--device", "cpu",
         "--batch_size", "16", "--tasks", "sycophancy_ays_aqua_mc,sycophancy_ays_trivia_qa",
         "--metadata", "data_dir=embedded", "--gen_kwargs", "max_gen_toks=16", "--apply_chat_template",
         "--bootstrap_iters", "0", "--output_path", str(out / "dialogue")])  # fmt: skip

    step("4. Build a small SAA preference set from the BCT-format fixtures")
    saa = out / "saa"
    run([sys.executable, "-m", "saa_data", "build", "--out", str(saa),
         "--bct", str(REPO / "tests/fixtures/saa/bct_sample.jsonl"),
         "--sources", str(REPO / "tests/fixtures/saa/sources"),
         "--n_correct", "4", "--n_incorrect", "4", "--eval_data_dir", "embedded"])  # fmt: skip

    step("5. Align the tiny model: ORPO + LoRA on the smoke preference data plus that SAA set")
    adapter = out / "models" / "tiny-aligned-saa"
    run([str(BIN / "accelerate"), "launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", str(REPO / "training" / "orpo.py"),
         "--config", str(REPO / "training/configs/smoke.yaml"), "--model_name_or_path", str(model),
         "--saa_path", str(saa), "--output_dir", str(adapter)])  # fmt: skip

    step("6. Evaluate the adapter with the same tasks (lm-eval's peft= argument)")
    run(lm_eval_cmd(f"{base_args},peft={adapter}", "sycophancy_answer,sycophancy_ays", results,
                    "--apply_chat_template"))  # fmt: skip

    step("7. Build the leaderboard site from both runs (sample data, hence --allow_sample)")
    variants = out / "leaderboard.yaml"
    variants.write_text(
        "variant_order: [instruct, aligned-SAA]\n"
        f"models:\n  {json.dumps(str(model))}: {{base: tiny-llama, variant: instruct}}\n"
        f"  {json.dumps(str(adapter))}: {{base: tiny-llama, variant: aligned-SAA}}\n"
    )
    site = out / "site"
    run([sys.executable, "-m", "leaderboard", "build", str(results), "--out", str(site),
         "--variants", str(variants), "--allow_sample"])  # fmt: skip

    step("8. The toy world: a 0.7M-parameter model that knows invented facts, aligned two ways (about 5 min)")
    toy = out / "toy"
    run([sys.executable, str(REPO / "scripts" / "reproduce.py"), "--config",
         str(REPO / "scripts" / "configs" / "toy.yaml"), "--output_dir", str(toy)])  # fmt: skip

    print(f"\nDone in {time.perf_counter() - start:.0f}s. Outputs:")
    print(f"  tiny model:       {model}")
    print(f"  SAA set:          {saa / 'saa.jsonl'} (card: {saa / 'README.md'})")
    print(f"  LoRA adapter:     {adapter} (data_manifest.json, resolved_config.yaml)")
    print(f"  dialogue run:     {out / 'dialogue'}")
    print(f"  leaderboard:      {site / 'index.html'}")
    print(f"  toy world:        {toy / 'site' / 'index.html'} (findings explained in docs/toy-world.md)")
    for path in sorted(results.rglob("results_*.json")):
        print(f"  lm-eval results:  {path}")


if __name__ == "__main__":
    main()
