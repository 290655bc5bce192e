"""Benchmark the build: wall time per phase and peak memory for N generated lm-eval result folders.

Each folder is one lm-eval ``--output_path`` holding one model's run of every sub-task at the real
data's sizes (answer.jsonl: 1,000 + 817 questions; are_you_sure.jsonl: 254 + 817 + 1,000 + 1,000 +
1,000 + 817), with samples lines of a realistic length. Models come in threes (instruct / aligned /
aligned-SAA of one base, listed in a generated leaderboard.yaml), so the variant comparisons run too.
Per-question values come from the registry's own per-question functions, so the lines carry every
metric of their task (NaN where undefined), as the tasks write them.

    python -m benchmarks.leaderboard --folders 500 --work /tmp/lb-bench
    python -m benchmarks.leaderboard --folders 500 --work /tmp/lb-bench --incremental
    python -m benchmarks.leaderboard --folders 50 --scale 0.1 --work /tmp/lb-bench-small

``--incremental`` measures what a maintainer pays: a cold build (no store), then one more run folder
(the next model, a new variant of the last base) is added and the site rebuilt with the store the cold
build left. ``--baseline REF`` first runs the same cold build with the code of git revision ``REF``
(extracted with ``git archive`` under the work folder, its own child on ``PYTHONPATH``), back to back
on the same data, and compares the two sites' data files value by value (``site_data_vs_baseline``:
equal values, and the largest difference among numbers that differ). Each build runs in a child
process, which reports its own phases and peak resident memory (``ru_maxrss``);
``wall_s_with_imports`` is the child's whole life, start-up and imports included. The store's size
on disk is reported beside the samples files' size.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sycophancy_eval_kit.core import aggregation, data, registry
from sycophancy_eval_kit.core.cli_flags import ArgumentParser
from sycophancy_eval_kit.leaderboard import tasks

REPO = Path(__file__).resolve().parents[1]
SIZES = {
    "answer": {"trivia_qa": 1000, "truthful_qa": 817},
    "ays": {
        "aqua_mc": 254,
        "truthful_qa_mc": 817,
        "mmlu_mc_cot": 1000,
        "math_mc_cot": 1000,
        "trivia_qa": 1000,
        "truthful_qa": 817,
    },
}
VARIANTS = ("instruct", "aligned", "aligned-SAA")
STAMP = "2025-06-01T12-00-00.000000"
_FILLER_PROMPT = "Which of these is correct? " * 12
_FILLER_RESPONSE = "I think the answer is (B), because " * 4


def _answer_rows(rng: np.random.Generator, n: int, skill: float, sway: float) -> list[dict[str, float]]:
    rows = []
    for right in rng.random(n) < skill:
        grades = {
            "baseline": int(right),
            "suggest_correct": int(right or rng.random() < sway),
            "suggest_incorrect": int(right and rng.random() > sway),
            "doubt_correct": int(right and rng.random() > sway / 2),
        }
        rows.append(registry.answer_question_metrics(grades))
    return rows


def _ays_rows(
    rng: np.random.Generator, n: int, skill: float, sway: float, mc: bool
) -> list[dict[str, float]]:
    """What the one-pass tasks write: multiple choice always reads both letters (arg-maxes); free-form
    grades the first answer only (``registry.one_pass_mc_metrics`` / ``first_answer_metrics``)."""
    rows = []
    for _ in range(n):
        first = int(rng.random() < skill)
        if mc:
            final = int(rng.random() > sway if first else rng.random() < 0.1)
            rows.append(registry.one_pass_mc_metrics(first, final))
        else:
            rows.append(registry.first_answer_metrics(None if rng.random() < 0.02 else first))
    return rows


def _write_folder(folder: Path, model: str, seed: int, scale: float) -> None:
    """One lm-eval output folder: results_<stamp>.json and a samples file per task."""
    rng = np.random.default_rng(seed)
    skill, sway = 0.4 + 0.3 * rng.random(), 0.1 + 0.5 * rng.random()
    sanitized = model.replace("/", "__")
    out = folder / sanitized
    out.mkdir(parents=True, exist_ok=True)
    results, configs, n_samples = {}, {}, {}
    for family, sizes in SIZES.items():
        for subset, size in sizes.items():
            n = max(2, round(size * scale))
            name = f"sycophancy_{family}_{subset}"
            rows = (
                _answer_rows(rng, n, skill, sway)
                if family == "answer"
                else _ays_rows(rng, n, skill, sway, "_mc" in subset)
            )
            with open(out / f"samples_{name}_{STAMP}.jsonl", "w", encoding="utf-8") as handle:
                for i, metrics in enumerate(rows):
                    qid = data.question_id(subset, f"{subset} question {i}")
                    line = {
                        "doc_id": i,
                        "doc": {"id": qid, "dataset": subset, "question": f"{subset} question {i}"},
                        "target": "B",
                        "arguments": {"gen_args_0": {"arg_0": _FILLER_PROMPT, "arg_1": {"max_gen_toks": 64}}},
                        "resps": [[_FILLER_RESPONSE]],
                        "filtered_resps": [_FILLER_RESPONSE],
                        "filter": "none",
                        "metrics": list(metrics),
                        "doc_hash": qid * 4,
                        "prompt_hash": qid * 4,
                        "target_hash": qid * 4,
                    } | metrics
                    handle.write(json.dumps(line) + "\n")
            entry: dict[str, float | str | int] = {"name": name, "alias": name, "sample_len": n}
            for m in tasks.METRICS[family]:
                if any(m.name in r for r in rows):
                    values = [r.get(m.name, np.nan) for r in rows]
                    entry[f"{m.name},none"] = float(aggregation.nan_mean(values))
            results[name] = entry
            configs[name] = {
                "task": name,
                "metadata": {
                    "version": 1.0,
                    "data_source": "download",
                    "data_file": data.ANSWER_FILE if family == "answer" else data.ARE_YOU_SURE_FILE,
                    "data_sha256": data.PINNED_SHA256[
                        data.ANSWER_FILE if family == "answer" else data.ARE_YOU_SURE_FILE
                    ],
                    "data_pinned_sha256_match": True,
                },
            }
            n_samples[name] = {"original": n, "effective": n}
    doc = {
        "results": results,
        "configs": configs,
        "versions": {name: 1.0 for name in results},
        "n-samples": n_samples,
        "config": {
            "model": "hf",
            "model_args": f"pretrained={model}",
            "model_sha": f"{seed:040x}",
            "limit": None,
        },
        "date": 1748779200.0,
        "lm_eval_version": "0.4.13",
        "model_name": model,
        "model_name_sanitized": sanitized,
        "chat_template_sha": f"{seed:064x}",
    }
    (out / f"results_{STAMP}.json").write_text(json.dumps(doc), encoding="utf-8")


def _model(i: int) -> tuple[str, str, str]:
    base, variant = f"bench-{i // len(VARIANTS):03d}", VARIANTS[i % len(VARIANTS)]
    return f"bench-org/{base}-{variant}", base, variant


def _folder(work: Path, i: int, scale: float, where: str = "runs") -> Path:
    model = _model(i)[0]
    folder = work / where / f"run-{i:04d}"
    if not (folder / model.replace("/", "__") / f"results_{STAMP}.json").is_file():
        _write_folder(folder, model, seed=i, scale=scale)
    return folder


def _write_variants(work: Path, folders: int) -> Path:
    lines = [f"variant_order: [{', '.join(VARIANTS)}]", "models:"]
    for i in range(folders):
        model, base, variant = _model(i)
        lines.append(f"  {model}: {{base: {base}, variant: {variant}}}")
    path = work / "leaderboard.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def generate(work: Path, folders: int, scale: float) -> tuple[list[Path], Path]:
    runs = [_folder(work, i, scale) for i in range(folders)]
    return runs, _write_variants(work, folders)


def _child(args: argparse.Namespace) -> None:
    """The build, phase by phase, in this process; prints the timings as JSON."""
    from sycophancy_eval_kit.leaderboard import store as stores
    from sycophancy_eval_kit.leaderboard.ingest import VERSION, ingest
    from sycophancy_eval_kit.leaderboard.site import write_site
    from sycophancy_eval_kit.leaderboard.summary import summarize
    from sycophancy_eval_kit.leaderboard.variants import load_variants

    path = None if args.no_store else args.work / "site.duckdb"
    def peak() -> int:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

    t0 = time.perf_counter()
    store = stores.Store(path, VERSION)
    ingested = ingest([args.work / "runs"], store=store)
    t1, peaks = time.perf_counter(), {"ingest": peak()}
    variants = load_variants(args.work / "leaderboard.yaml")
    summary = summarize(ingested, variants, resamples=args.resamples, store=store)
    t2, peaks["statistics"] = time.perf_counter(), peak()
    files = write_site(summary, args.work / "site", "Benchmark", inputs=[args.work / "runs"], store=store)
    peaks["render"] = peak()
    store.save_derived()
    store.close()
    t3, peaks["save"] = time.perf_counter(), peak()
    print(
        json.dumps(
            {
                "task_runs": len(ingested.runs),
                "models": len(summary["models"]),
                "comparisons": len(summary["comparisons"]),
                "files": len(files),
                "ingest_s": round(t1 - t0, 2),
                "statistics_s": round(t2 - t1, 2),
                "render_s": round(t3 - t2, 2),
                "total_s": round(t3 - t0, 2),
                "peak_rss_mib": peak(),
                "peak_rss_mib_by_phase_end": peaks,
                "store_mb": round(path.stat().st_size / 1e6, 1) if path is not None else None,
            }
        )
    )


def _baseline_tree(work: Path, ref: str) -> Path:
    """The package as it was at ``ref``, laid out for ``PYTHONPATH`` (its pyproject maps the design
    card's folders into ``sycophancy_eval_kit``), with that revision's ``benchmarks``."""
    root = work / f"baseline-{ref}"
    if (root / "pkg" / "sycophancy_eval_kit").is_dir():
        return root
    raw = root / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(raw)], input=archive, check=True)
    import tomllib

    mapped = tomllib.loads((raw / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    pkg = root / "pkg"
    for package, folder in sorted(mapped.items(), key=lambda kv: kv[0].count(".")):
        target = pkg / package.replace(".", "/")
        if not target.exists():
            shutil.copytree(raw / folder, target)
    shutil.copytree(raw / "benchmarks", root / "benchmarks")
    return root


def _build(args: argparse.Namespace, label: str, baseline: Path | None = None) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.leaderboard", "--child", "--work", str(args.work)]
    cmd += ["--folders", str(args.folders), "--scale", str(args.scale)]
    if args.resamples:
        cmd += ["--resamples", str(args.resamples)]
    if args.no_store and baseline is None:
        cmd.append("--no_store")
    env = dict(os.environ)
    if baseline is not None:  # its own build cache, emptied: the cold build its users paid
        shutil.rmtree(args.work / ".site.cache", ignore_errors=True)
        env["PYTHONPATH"] = os.pathsep.join([str(baseline / "pkg"), str(baseline)])
    start = time.perf_counter()
    child = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=baseline or REPO, env=env)
    report = json.loads(child.stdout.strip().splitlines()[-1])
    report = {"build": label} | report | {"wall_s_with_imports": round(time.perf_counter() - start, 2)}
    print(json.dumps(report), flush=True)
    return report


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}/{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, f"{path}/{i}")
    else:
        yield path, value


def _number(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def compare_sites(before: Path, after: Path) -> dict[str, Any]:
    """Cell by cell, the site data of two builds of the same runs: how many values are equal, and the
    largest difference among numbers that are not (``generated``, the build time, left out)."""
    pairs: list[tuple[str, Any, Any]] = []
    for name in sorted(p.name for p in (before / "data").glob("*.csv")):
        with (
            open(before / "data" / name, newline="", encoding="utf-8") as a,
            open(after / "data" / name, newline="", encoding="utf-8") as b,
        ):
            rows_a, rows_b = list(csv.reader(a)), list(csv.reader(b))
        if len(rows_a) != len(rows_b):
            pairs.append((f"{name}: rows", len(rows_a), len(rows_b)))
        for i, (ra, rb) in enumerate(zip(rows_a, rows_b, strict=False)):
            pairs += [(f"{name}:{i}:{j}", x, y) for j, (x, y) in enumerate(zip(ra, rb, strict=False))]
    docs = [
        json.loads((site / "data" / "leaderboard.json").read_text(encoding="utf-8"))
        for site in (before, after)
    ]
    leaves = [dict(_leaves({k: v for k, v in doc.items() if k != "generated"})) for doc in docs]
    if leaves[0].keys() != leaves[1].keys():
        pairs.append(("leaderboard.json: keys", len(leaves[0]), len(leaves[1])))
    pairs += [(f"leaderboard.json{k}", v, leaves[1].get(k)) for k, v in leaves[0].items()]
    differing = [(where, x, y) for where, x, y in pairs if x != y]
    numeric = [abs(_number(x) - _number(y)) for _, x, y in differing if None not in (_number(x), _number(y))]
    other = [d for d in differing if None in (_number(d[1]), _number(d[2]))]
    return {
        "values_compared": len(pairs),
        "equal": len(pairs) - len(differing),
        "numbers_differing": len(numeric),
        "largest_number_difference": max(numeric, default=0.0),
        "other_differences": len(other),
        "first_other_differences": [list(map(str, d)) for d in other[:5]],
    }


def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folders", type=int, default=500)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the real question counts")
    parser.add_argument(
        "--resamples", type=int, default=None, help="bootstrap resamples (default: the build's)"
    )
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument(
        "--incremental", action="store_true", help="cold build, then add one run folder and rebuild"
    )
    parser.add_argument("--no_store", action="store_true", help="build without the store")
    parser.add_argument("--baseline", default=None, help="a git revision whose build runs first, cold")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        from sycophancy_eval_kit.core import stats

        args.resamples = args.resamples or stats.DEFAULT_RESAMPLES
        _child(args)
        return
    t0 = time.perf_counter()
    runs, _ = generate(args.work, args.folders, args.scale)
    extra = _folder(args.work, args.folders, args.scale, where="extra") if args.incremental else None
    size = sum(p.stat().st_size for p in (args.work / "runs").rglob("*") if p.is_file())
    print(f"{len(runs)} result folders ({size / 1e9:.2f} GB) ready in {time.perf_counter() - t0:.0f} s")
    before = args.work / "site-baseline"
    if args.baseline:
        _build(args, f"baseline {args.baseline}, cold", _baseline_tree(args.work, args.baseline))
        shutil.rmtree(before, ignore_errors=True)
        (args.work / "site").rename(before)
    (args.work / "site.duckdb").unlink(missing_ok=True)  # every measurement starts cold
    cold = _build(args, "cold")
    if args.baseline:  # the same runs, the same seed: the published data should not change. In a child:
        # the comparison holds both sites' data, and a child forked from a large process reports that
        # process's peak as its own ``ru_maxrss`` (Linux keeps it across exec)
        code = (
            "import json, sys; from pathlib import Path; from benchmarks.leaderboard import compare_sites; "
            "print(json.dumps(compare_sites(Path(sys.argv[1]), Path(sys.argv[2]))))"
        )
        found = subprocess.run(
            [sys.executable, "-c", code, str(before), str(args.work / "site")],
            check=True, capture_output=True, text=True, cwd=REPO,
        )  # fmt: skip
        print(json.dumps({"site_data_vs_baseline": json.loads(found.stdout)}), flush=True)
    if extra is None:
        return
    added = args.work / "runs" / extra.name
    extra.rename(added)
    try:
        _write_variants(args.work, args.folders + 1)
        rebuild = _build(args, "rebuild after adding one run folder")
    finally:
        added.rename(extra)  # leave the work folder as it was, so the measurement can be repeated
        _write_variants(args.work, args.folders)
    ratio = {
        phase: round(cold[phase] / max(rebuild[phase], 1e-9), 1)
        for phase in ("ingest_s", "statistics_s", "render_s", "total_s")
    }
    print(json.dumps({"cold_over_rebuild": ratio}))


if __name__ == "__main__":
    main()
