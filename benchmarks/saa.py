"""Benchmark a full SAA build: wall time and peak memory, plus where the time goes.

Each repeat runs ``syco-saa build`` in a fresh process (interpreter start, imports and input
ingestion included), timed from outside; peak memory is that child's maximum resident set size. A
second, in-process pass times each stage, reported as shares of its own total (ratios within one run,
so they say where time goes whatever the machine's load).

Run: ``python -m benchmarks.saa [--bct FILE --sources DIR] [--repeats 3]``; defaults to the shared
copies in ``../shared/data/bct/`` when present, else the pinned download (cached after the first run).
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from sycophancy_eval_kit.core.cli_flags import ArgumentParser

REPO = Path(__file__).resolve().parents[1]
SHARED_BCT = REPO.parent / "shared" / "data" / "bct"


def _default_inputs() -> list[str]:
    bct = SHARED_BCT / "deprecated_train_original_release" / "bct_non_cot.jsonl"
    if bct.is_file() and (SHARED_BCT / "sources").is_dir():
        return ["--bct", str(bct), "--sources", str(SHARED_BCT / "sources")]
    return []


def run_once(inputs: list[str], extra: list[str]) -> tuple[float, float, float, dict]:
    """(wall seconds, CPU seconds, peak RSS MiB, build report) of one build in a child process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "saa"
        cmd = [sys.executable, "-m", "sycophancy_eval_kit.saa_data", "build", "--out", str(out)]
        cmd += [*inputs, *extra]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _, stderr = proc.communicate()
        wall = time.perf_counter() - start
        if proc.returncode:
            raise SystemExit(f"build failed ({proc.returncode}):\n{stderr}")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # CPU time does not grow when other work shares the cores, so it is the steadier number
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        # ru_maxrss of all waited-for children so far (KiB on Linux): the largest child, i.e. a build
        peak = after.ru_maxrss / 1024
        report = json.loads((out / "build_report.json").read_text())
    return wall, cpu, peak, report


def stage_shares(inputs: list[str]) -> dict[str, float]:
    """Share of one in-process build's time spent in each stage."""
    from sycophancy_eval_kit.saa_data import ground_truth, overlap, pairs, parse, screening
    from sycophancy_eval_kit.saa_data import inputs as saa_inputs

    args = dict(zip(inputs[0::2], inputs[1::2], strict=True))
    times: Counter[str] = Counter()

    def timed(name: str, fn, *a, **k):  # noqa: ANN001, ANN202 (local helper)
        start = time.perf_counter()
        result = fn(*a, **k)
        times[name] += time.perf_counter() - start
        return result

    bct = timed("resolve inputs", saa_inputs.resolve_bct, args.get("--bct"))
    files = timed("resolve inputs", saa_inputs.resolve_sources, args.get("--sources"))
    rows = timed("parse BCT", parse.read_bct_file, bct.path)
    index = timed("index sources", ground_truth.build_index, [(s, f.path) for s, f in files])
    labels = timed("label rows", lambda: [index.label(r) for r in rows])
    cands = [pairs.Candidate(r, g) for r, g in zip(rows, labels, strict=True) if not isinstance(g, str)]
    labelled = [c.row for c in cands]
    timed("load offensive-language model", screening._offensive_scorer)  # the import; cached after
    timed("screening", screening.screen, labelled)
    questions, prov = timed("overlap", overlap.load_eval_questions, "embedded")
    timed("overlap", overlap.check, labelled, questions, prov)
    chosen = timed("sample + pairs", pairs.sample, cands, 500, 500, 0)
    timed("sample + pairs", lambda: [pairs.to_record(c, 0) for c in chosen])
    total = sum(times.values())
    return {name: t / total for name, t in times.items()}


def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bct")
    parser.add_argument("--sources")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--polarity_aware", action="store_true")
    args = parser.parse_args()
    inputs = (
        ["--bct", args.bct, "--sources", args.sources] if args.bct and args.sources else _default_inputs()
    )
    extra = ["--polarity_aware"] if args.polarity_aware else []

    walls, cpus, peaks = [], [], []
    for _ in range(args.repeats):
        wall, cpu, peak, report = run_once(inputs, extra)
        walls.append(wall)
        cpus.append(cpu)
        peaks.append(peak)
    counts = report["counts"]
    print(f"inputs: {' '.join(inputs) or 'pinned download (cached)'} {' '.join(extra)}")
    print(
        f"rows: {counts['parsed']} parsed, {counts['labelled']} labelled, {counts['selected']} pairs written"
    )
    print(
        f"full build (fresh process, {args.repeats} runs): wall median {statistics.median(walls):.2f} s "
        f"(min {min(walls):.2f}, max {max(walls):.2f}); CPU median {statistics.median(cpus):.2f} s; "
        f"peak RSS {max(peaks):.0f} MiB"
    )
    if inputs:
        shares = stage_shares(inputs)
        print("in-process stage shares: " + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()))


if __name__ == "__main__":
    main()
