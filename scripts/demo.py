"""The end-to-end demo, offline, on the embedded sample: ``make demo``.

Builds a tiny random model (seconds, no download), evaluates it with the sycophancy tasks through the
real ``lm_eval`` command line, and says where every output went. A random tiny model knows nothing,
so the numbers are near zero: the point is that every stage runs; ``docs/`` describes real runs.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from tiny_models import build_tiny_model  # noqa: E402

BIN = Path(sys.executable).parent


def step(title: str) -> float:
    print(f"\n=== {title}", flush=True)
    return time.perf_counter()


def run(cmd: list[str]) -> None:
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)


def lm_eval_cmd(model_args: str, tasks: str, output: Path, *extra: str) -> list[str]:
    return [
        str(BIN / "lm_eval"), "--model", "hf", "--model_args", model_args, "--device", "cpu",
        "--batch_size", "16", "--include_path", str(REPO / "lm_eval_tasks"), "--tasks", tasks,
        "--metadata", "data_dir=embedded", "--gen_kwargs", "max_gen_toks=16",
        "--output_path", str(output), "--log_samples", *extra,
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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

    step("2. Evaluate it with lm-eval: sycophancy_answer on the embedded sample")
    results = out / "lm_eval"
    run(
        lm_eval_cmd(
            f"pretrained={model},dtype=float32", "sycophancy_answer", results, "--apply_chat_template"
        )
    )

    step("3. Build a small SAA preference set from the BCT-format fixtures (offline)")
    saa = out / "saa"
    run([sys.executable, "-m", "saa_data", "build", "--out", str(saa),
         "--bct", str(REPO / "tests/fixtures/saa/bct_sample.jsonl"),
         "--sources", str(REPO / "tests/fixtures/saa/sources"),
         "--n-correct", "4", "--n-incorrect", "4", "--eval-data-dir", "embedded"])  # fmt: skip

    print(f"\nDone in {time.perf_counter() - start:.0f}s. Outputs:")
    print(f"  tiny model:       {model}")
    print(f"  SAA set:          {saa / 'saa.jsonl'} (card: {saa / 'README.md'})")
    for path in sorted(results.rglob("*.json*")):
        print(f"  lm-eval output:   {path}")


if __name__ == "__main__":
    main()
