"""Benchmark the build: wall time per phase and peak memory for N generated lm-eval result folders.

Each folder is one lm-eval ``--output_path`` holding one model's run of every sub-task at the real
data's sizes (answer.jsonl: 1,000 + 817 questions; are_you_sure.jsonl: 254 + 817 + 1,000 + 1,000 +
1,000 + 817), with samples lines of a realistic length. Models come in threes (instruct / aligned /
aligned-SAA of one base, listed in a generated leaderboard.yaml), so the variant comparisons run too.

    python -m leaderboard.bench --folders 500 --work /tmp/lb-bench
    python -m leaderboard.bench --folders 50 --scale 0.1 --work /tmp/lb-bench-small

The build runs in a child process, so its peak resident memory (``ru_maxrss``) is the build's alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lm_eval_tasks.sycophancy import data
from lm_eval_tasks.sycophancy.cli_flags import ArgumentParser

from . import tasks

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
    base = rng.random(n) < skill
    rows = []
    for b in base:
        sc = int(b or rng.random() < sway)
        si = int(b and rng.random() > sway)
        dc = int(b and rng.random() > sway / 2)
        b = int(b)
        deltas = {
            "delta_suggest_correct": sc - b,
            "delta_suggest_incorrect": si - b,
            "delta_doubt_correct": dc - b,
        }
        rows.append(
            {
                "acc_baseline": b,
                "acc_suggest_correct": sc,
                "acc_suggest_incorrect": si,
                "acc_doubt_correct": dc,
            }
            | deltas
            | {"answer_sycophancy": sum(deltas.values()) / 3}
        )
    return rows


def _ays_rows(
    rng: np.random.Generator, n: int, skill: float, sway: float, mc: bool
) -> list[dict[str, float]]:
    rows = []
    for _ in range(n):
        unparsed = int(rng.random() < 0.02)
        first = int(not unparsed and rng.random() < skill)
        final = int(not unparsed and (rng.random() > sway if first else rng.random() < 0.1))
        out: dict[str, float] = {"acc_first": first}
        if mc:
            out["acc_final"] = final
        if first:
            out["flip_rate"] = int(final == 0)
        out["correct_to_incorrect"] = int(first == 1 and final == 0)
        if mc:
            out["incorrect_to_correct"] = int(first == 0 and final == 1)
        out["unparsed_rate"] = unparsed
        rows.append(out)
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
                else _ays_rows(rng, n, skill, sway, subset.endswith("_mc"))
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
                vals = [r[m.name] for r in rows if m.name in r]
                if vals:
                    entry[f"{m.name},none"] = float(np.mean(vals))
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


def generate(work: Path, folders: int, scale: float) -> tuple[list[Path], Path]:
    runs = []
    yaml_lines = [f"variant_order: [{', '.join(VARIANTS)}]", "models:"]
    for i in range(folders):
        base, variant = f"bench-{i // len(VARIANTS):03d}", VARIANTS[i % len(VARIANTS)]
        model = f"bench-org/{base}-{variant}"
        folder = work / "runs" / f"run-{i:04d}"
        if not (folder / model.replace("/", "__") / f"results_{STAMP}.json").is_file():
            _write_folder(folder, model, seed=i, scale=scale)
        runs.append(folder)
        yaml_lines.append(f"  {model}: {{base: {base}, variant: {variant}}}")
    variants = work / "leaderboard.yaml"
    variants.write_text("\n".join(yaml_lines) + "\n", encoding="utf-8")
    return runs, variants


def _child(args: argparse.Namespace) -> None:
    """The build, phase by phase, in this process; prints the timings as JSON."""
    from .ingest import ingest
    from .site import write_site
    from .summary import summarize
    from .variants import load_variants

    t0 = time.perf_counter()
    ingested = ingest([args.work / "runs"])
    t1 = time.perf_counter()
    summary = summarize(ingested, load_variants(args.work / "leaderboard.yaml"), resamples=args.resamples)
    t2 = time.perf_counter()
    files = write_site(summary, args.work / "site", "Benchmark", inputs=[args.work / "runs"])
    t3 = time.perf_counter()
    print(
        json.dumps(
            {
                "task_runs": len(ingested.runs),
                "models": len(summary["models"]),
                "comparisons": len(summary["comparisons"]),
                "files": len(files),
                "ingest_s": round(t1 - t0, 1),
                "statistics_s": round(t2 - t1, 1),
                "render_s": round(t3 - t2, 1),
                "total_s": round(t3 - t0, 1),
            }
        )
    )


def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folders", type=int, default=500)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the real question counts")
    parser.add_argument(
        "--resamples", type=int, default=None, help="bootstrap resamples (default: the build's)"
    )
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        from . import stats

        args.resamples = args.resamples or stats.DEFAULT_RESAMPLES
        _child(args)
        return
    t0 = time.perf_counter()
    runs, _ = generate(args.work, args.folders, args.scale)
    size = sum(p.stat().st_size for p in (args.work / "runs").rglob("*") if p.is_file())
    print(f"{len(runs)} result folders ({size / 1e9:.2f} GB) ready in {time.perf_counter() - t0:.0f} s")
    cmd = [sys.executable, "-m", "leaderboard.bench", "--child", "--work", str(args.work)]
    cmd += ["--folders", str(args.folders), "--scale", str(args.scale)]
    if args.resamples:
        cmd += ["--resamples", str(args.resamples)]
    start = time.perf_counter()
    child = subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KiB
    report = json.loads(child.stdout.strip().splitlines()[-1])
    report |= {"wall_s_with_imports": round(wall, 1), "peak_rss_mib": round(peak_mib)}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
