"""Escalating pressure in the toy world: does aligned-SAA fold later than aligned, seed after seed?

    python examples/toy_world/toy_seeds.py --seeds 0,1,2,3,4 --out_dir outputs/toy_seeds   # first
    python examples/toy_world/toy_pressure.py --seeds_dir outputs/toy_seeds --out_dir outputs/toy_pressure

For every seed folder ``toy_seeds.py`` left (its world and its two LoRA variants), it runs
``syco-dialogue`` on the world's ``aqua_mc`` questions for instruct, aligned and aligned-SAA, under
Sharma et al.'s single challenge and under ``--pressure escalating`` (five rounds, each stronger), and
summarises per seed: accuracy after every round, the flip rate after the first and the last round,
``never_flipped_rate`` and ``turn_of_flip``, with k / n. The directions it reports, each on every seed
(aligned-SAA against aligned): a higher ``never_flipped_rate``, a later ``turn_of_flip`` and a lower
flip rate after the last round, with the exact McNemar test on the questions both answered correctly
first. A finished run is not run again (rerun to resume). Writes ``summary.json`` and ``summary.md``.

The toy model was never trained on the rebuttals of the escalating schedule, only on Sharma's
challenge and the tasks' own wording: what it does under them is a probe of how its trained habit
generalises, not a claim about real models (docs/toy-world.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from sycophancy_eval_kit.core import stats
from sycophancy_eval_kit.core.cli_flags import ArgumentParser

VARIANTS = ("instruct", "aligned", "aligned-SAA")
SCHEDULES = ("sharma", "escalating")
TASK = "sycophancy_ays_aqua_mc"
BIN = Path(sys.executable).parent


def run_one(seed_dir: Path, variant: str, schedule: str, out: Path) -> Path:
    """One dialogue run (skipped when its results file exists); the results file."""
    done = sorted(out.rglob("results_*.json"))
    if done:
        return done[-1]
    world = seed_dir / "world"
    model_args = f"pretrained={world / 'base-model'},dtype=float32"
    if variant != "instruct":
        model_args += f",peft={seed_dir / 'models' / 'toy' / variant}"
    cmd = [str(BIN / "syco-dialogue"), "--model", "hf", "--model_args", model_args, "--tasks", TASK]
    cmd += ["--output_path", str(out), "--device", "cpu", "--batch_size", "32", "--apply_chat_template"]
    cmd += [
        "--gen_kwargs",
        "max_gen_toks=8",
        "--metadata",
        json.dumps({"data_dir": str(world / "eval_data")}),
    ]
    cmd += [] if schedule == "sharma" else ["--pressure", schedule]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
    return sorted(out.rglob("results_*.json"))[-1]


def _samples(results: Path) -> dict[str, dict[str, Any]]:
    (path,) = results.parent.glob(f"samples_*{results.stem.removeprefix('results_')}.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {r["doc"]["id"]: r for r in rows}


def _rate(values: list[float]) -> dict[str, Any]:
    present = [v for v in values if v == v]
    k, n = int(sum(present)), len(present)
    lo, hi = stats.wilson_interval(k, n) if n else (None, None)
    return {"value": k / n if n else None, "k": k, "n": n, "lo": lo, "hi": hi}


def _mean(values: list[float]) -> dict[str, Any]:
    present = [v for v in values if v == v]
    return {"value": sum(present) / len(present) if present else None, "n": len(present)}


#: the single challenge writes the dialogue's metrics as before schedules: its round 1 is its final answer
_SHARMA_NAMES = {"acc_round_0": "acc_first", "acc_round_1": "acc_final", "flip_rate_round_1": "flip_rate"}


def _value(row: dict[str, Any], name: str) -> float:
    found = row.get(name, row.get(_SHARMA_NAMES.get(name, ""), float("nan")))
    return float("nan") if found is None else float(found)


def summarize_run(samples: dict[str, dict[str, Any]], rounds: int) -> dict[str, Any]:
    rows = list(samples.values())
    out: dict[str, Any] = {
        "acc_round": [_rate([_value(r, f"acc_round_{k}") for r in rows]) for k in range(rounds + 1)]
    }
    out["flip_round_1"] = _rate([_value(r, "flip_rate_round_1") for r in rows])
    out["flip_last"] = _rate([_value(r, f"flip_rate_round_{rounds}") for r in rows])
    out["never_flipped_rate"] = _rate([_value(r, "never_flipped_rate") for r in rows])
    out["turn_of_flip"] = _mean([_value(r, "turn_of_flip") for r in rows])
    return out


def _paired_last(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]], rounds: int) -> dict[str, Any]:
    """McNemar on the last round's flip, over the questions both answered correctly first."""
    key = f"flip_rate_round_{rounds}"
    va = {q: _value(r, key) for q, r in a.items()}
    vb = {q: _value(r, key) for q, r in b.items()}
    shared = [q for q in va if q in vb and va[q] == va[q] and vb[q] == vb[q]]
    test = stats.mcnemar_exact(np.array([va[q] for q in shared]), np.array([vb[q] for q in shared]))
    return test.to_dict()


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds_dir", required=True, type=Path, help="toy_seeds.py's --out_dir")
    parser.add_argument("--out_dir", default="outputs/toy_pressure", type=Path)
    args = parser.parse_args(argv)
    seeds = sorted(
        p for p in args.seeds_dir.iterdir() if p.is_dir() and (p / "world" / "base-model").is_dir()
    )
    if not seeds:
        parser.error(f"--seeds_dir {args.seeds_dir}: no seed folder with a world; run toy_seeds.py first")
    summary: dict[str, Any] = {}
    for seed_dir in seeds:
        per: dict[str, Any] = {}
        samples: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        for schedule in SCHEDULES:
            rounds = 1 if schedule == "sharma" else 5
            for variant in VARIANTS:
                results = run_one(
                    seed_dir, variant, schedule, args.out_dir / seed_dir.name / schedule / variant
                )
                samples[(schedule, variant)] = _samples(results)
                per.setdefault(schedule, {})[variant] = summarize_run(samples[(schedule, variant)], rounds)
            per[schedule]["saa_vs_aligned_last_flip"] = _paired_last(
                samples[(schedule, "aligned-SAA")], samples[(schedule, "aligned")], rounds
            )
        summary[seed_dir.name] = per
        print(f"{seed_dir.name}: done", flush=True)
    directions = _directions(summary)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "summary.json").write_text(
        json.dumps({"seeds": summary, "directions": directions}, indent=2)
    )
    text = markdown(summary, directions)
    (args.out_dir / "summary.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


def _directions(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per claim (aligned-SAA against aligned under escalation), the seeds where it holds."""
    claims = {
        "never_flipped_rate higher": lambda s, a: (
            s["never_flipped_rate"]["value"] > a["never_flipped_rate"]["value"]
        ),
        "turn_of_flip later": lambda s, a: (
            (s["turn_of_flip"]["value"] or 0) > (a["turn_of_flip"]["value"] or 0)
        ),
        "flip rate after round 5 lower": lambda s, a: s["flip_last"]["value"] < a["flip_last"]["value"],
    }
    out = {}
    for claim, holds in claims.items():
        ok = [
            seed
            for seed, per in summary.items()
            if holds(per["escalating"]["aligned-SAA"], per["escalating"]["aligned"])
        ]
        out[claim] = {"holds_on": ok, "seeds": len(summary)}
    return out


def _fmt(est: dict[str, Any]) -> str:
    if est.get("value") is None:
        return "n = 0"
    if "k" in est:
        return f"{est['value']:.2f} ({est['k']}/{est['n']})"
    return f"{est['value']:.2f} (n = {est['n']})"


def markdown(summary: dict[str, Any], directions: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| seed | schedule | variant | accuracy after each round | flip after round 1 | flip after the last "
        "round | never flipped | turn of flip |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for seed, per in summary.items():
        for schedule in SCHEDULES:
            for variant in VARIANTS:
                s = per[schedule][variant]
                accs = " → ".join(f"{a['value']:.2f}" for a in s["acc_round"])
                lines.append(
                    f"| {seed} | {schedule} | {variant} | {accs} | {_fmt(s['flip_round_1'])} | "
                    f"{_fmt(s['flip_last'])} | {_fmt(s['never_flipped_rate'])} | {_fmt(s['turn_of_flip'])} |"
                )
    lines += ["", "aligned-SAA against aligned under escalation:", ""]
    for claim, found in directions.items():
        lines.append(
            f"- {claim}: {len(found['holds_on'])} of {found['seeds']} seeds ({', '.join(found['holds_on'])})"
        )
    lines += [
        "",
        "McNemar on the last round's flip (aligned-SAA vs aligned, questions both got right first):",
        "",
    ]
    for seed, per in summary.items():
        for schedule in SCHEDULES:
            t = per[schedule]["saa_vs_aligned_last_flip"]
            p = "-" if t["p_value"] is None else f"{t['p_value']:.3g}"
            lines.append(
                f"- {seed} {schedule}: only aligned-SAA flipped {t['b']}, only aligned {t['c']}, "
                f"of {t['n']}; p = {p}"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
