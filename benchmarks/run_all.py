"""Run every benchmark of the project in one go and write their output, with machine info, to one file.

```bash
python -m benchmarks.run_all --out outputs/bench/benchmarks.md      # every benchmark, their defaults
python -m benchmarks.run_all --quick --out /tmp/bench.md            # small sizes: a smoke run
python -m benchmarks.run_all --only toy,answer --out /tmp/bench.md
```

Each benchmark is its own module of ``benchmarks/`` (``python -m benchmarks.NAME`` from a clone) and runs
in a fresh process, one after another, so they do not compete for the CPU; its output is copied
verbatim under its own heading with the exact command. ``toy`` times the whole toy world
(``syco-reproduce --config examples/toy_world/toy.yaml``) from a clean output folder. The file is
meant to be merged by hand into ``docs/benchmarks.md``: speeds on a shared machine only mean
something as the ratios each script reports within its own run.

``gpu`` (``python -m benchmarks.gpu``, a random 7B model on one GPU) runs only when named in ``--only``:
it needs a CUDA device and about 8 minutes of it, so it is not part of the default CPU set. With
``--quick`` it is its CPU smoke run at tiny shapes (which ``tests/test_bench_gpu.py`` also runs).
"""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sycophancy_eval_kit.core.cli_flags import ArgumentParser

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


#: run only when named in --only (they need hardware the default CPU set does not assume)
OPT_IN = ("gpu",)


def benchmarks(work: Path, quick: bool) -> dict[str, list[str]]:
    """name -> command. ``quick`` shrinks every size so the whole set runs in a few minutes."""
    q = quick
    return {
        "answer": [PY, "-m", "benchmarks.answer", *(["--questions", "100"] if q else [])],
        "ays": [PY, "-m", "benchmarks.ays", *(["--limit", "20"] if q else [])],
        "saa": [PY, "-m", "benchmarks.saa", *(["--repeats", "1"] if q else [])],
        "training": [PY, "-m", "benchmarks.training", *(["--steps", "5", "--rounds", "1"] if q else [])],
        "judge": [PY, "-m", "benchmarks.judge", *(["--n", "100", "--latency", "0.02"] if q else [])],
        "leaderboard": [
            PY,
            "-m",
            "benchmarks.leaderboard",
            "--work",
            str(work / "leaderboard"),
            *(["--folders", "6", "--scale", "0.1"] if q else ["--folders", "50"]),
        ],
        "pressure": [
            PY,
            "-m",
            "benchmarks.pressure",
            *(["--limit", "2", "--rounds", "1", "--schedules", "sharma,escalating,simple"] if q else []),
        ],
        "toy": [
            PY,
            "-m",
            "sycophancy_eval_kit.reproduce",
            "--config",
            str(REPO / "examples" / "toy_world" / "toy.yaml"),
            "--output_dir",
            str(work / "toy"),
            "--progress_every",
            "60",
        ],
        "gpu": [PY, "-m", "benchmarks.gpu", "--out_dir", str(work / "gpu"), *(["--tiny"] if q else [])],
    }


def machine_info() -> list[str]:
    import torch

    lines = [
        f"- date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}",
        f"- platform: {platform.platform()}; Python {platform.python_version()}",
        f"- CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores; "
        f"load average at start {', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"- torch {torch.__version__}; CUDA: "
        + (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU figures)"),
    ]
    try:
        import lm_eval
        import transformers
        import trl

        lines.append(
            f"- lm-eval {lm_eval.__version__}, transformers {transformers.__version__}, trl {trl.__version__}"
        )
    except ImportError:  # the numbers stand without the versions
        pass
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, required=True, help="markdown file to write (not docs/benchmarks.md)"
    )
    parser.add_argument(
        "--only",
        help="comma-separated subset of: answer, ays, saa, training, judge, leaderboard, pressure, toy, "
        "and gpu "
        "(one GPU; only when named)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run of the runner)")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed)")
    parser.add_argument(
        "--data_dir",
        help="Sharma-format folder for benchmarks that read the evaluation questions (the SAA build's "
        "overlap check): default $SYCOPHANCY_DATA_DIR, else ../shared/data/sharma-format-sample when "
        "present, else 'embedded'",
    )
    args = parser.parse_args(argv)

    work = args.work or Path(tempfile.mkdtemp(prefix="syco-bench-"))
    if (work / "toy").exists():  # the toy figure is a run from scratch, never a resumed one
        shutil.rmtree(work / "toy")
    table = benchmarks(work, args.quick)
    wanted = args.only.split(",") if args.only else [name for name in table if name not in OPT_IN]
    unknown = [w for w in wanted if w not in table]
    if unknown:
        parser.error(f"--only: unknown {', '.join(unknown)}; choose from {', '.join(table)}")

    shared_sample = REPO.parent / "shared" / "data" / "sharma-format-sample"
    data_dir = (
        args.data_dir
        or os.environ.get("SYCOPHANCY_DATA_DIR")
        or (str(shared_sample) if (shared_sample / "answer.jsonl").is_file() else "embedded")
    )
    env = {**os.environ, "SYCOPHANCY_DATA_DIR": data_dir}  # cwd is the clone: `-m benchmarks.NAME` works
    sections = ["# Benchmark run", "", *machine_info(), f"- SYCOPHANCY_DATA_DIR={data_dir}", ""]
    failed = []
    for name in wanted:
        cmd = table[name]
        shown = " ".join(str(Path(c).relative_to(REPO)) if c.startswith(str(REPO)) else c for c in cmd[1:])
        print(f"[bench] {name}: python {shown}", flush=True)
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
        print(f"[bench] {name}: {status} in {seconds:.0f}s", flush=True)
        if proc.returncode:
            failed.append(name)
        output = proc.stdout if proc.returncode == 0 else proc.stdout + proc.stderr[-4000:]
        sections += [
            f"## {name}",
            "",
            f"`python {shown}` — {status}, wall time {seconds:.1f} s",
            "",
            "```",
            output.rstrip(),
            "```",
            "",
        ]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(sections) + "\n")  # partial results are kept
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    print(f"[bench] written to {args.out}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
