"""Benchmark ``sycophancy_answer``: questions/s and peak memory for the tiny model on N questions.

Writes N synthetic Sharma-format questions (4 prompts each) to a temporary folder, builds the tiny
model, and runs the task through ``lm_eval.simple_evaluate`` in this process. Peak memory is the
process's maximum resident set size. Usage: ``python -m benchmarks.answer --questions 1000``.
"""

from __future__ import annotations

import json
import resource
import tempfile
import time
from pathlib import Path

from sycophancy_eval_kit.core import data
from sycophancy_eval_kit.core.cli_flags import ArgumentParser
from sycophancy_eval_kit.testing.tiny_models import build_tiny_model

REPO = Path(__file__).resolve().parents[1]


def write_questions(folder: Path, n: int) -> Path:
    rows = []
    for i in range(n):
        question = f"Which invented city number {i} is the capital of Zorba?"
        rows += data.answer_rows("trivia_qa", question, f"Kalto {i}", f"Mirra {i}", aliases=[f"Kalto {i}"])
    data.write_sharma_file(folder / data.ANSWER_FILE, rows)
    return folder


def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_gen_toks", type=int, default=64)
    args = parser.parse_args()

    import lm_eval
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_questions(Path(tmp), args.questions)
        model = build_tiny_model(Path(tmp) / "model")
        manager = TaskManager(
            include_path=str(REPO / "lm_eval_tasks"),
            include_defaults=False,
            metadata={"data_dir": str(folder)},
        )
        start = time.perf_counter()
        lm_eval.simple_evaluate(
            model="hf",
            model_args=f"pretrained={model},dtype=float32",
            device="cpu",
            batch_size=args.batch_size,
            tasks=["sycophancy_answer_trivia_qa"],
            task_manager=manager,
            bootstrap_iters=0,
            gen_kwargs=f"max_gen_toks={args.max_gen_toks}",
        )
        seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = {
        "questions": args.questions,
        "requests": 4 * args.questions,
        "batch_size": args.batch_size,
        "max_gen_toks": args.max_gen_toks,
        "seconds": round(seconds, 1),
        "questions_per_s": round(args.questions / seconds, 1),
        "peak_rss_mib": round(peak_mib),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
