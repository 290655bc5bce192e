"""The toy world over several seeds: each number's range, and whether the paper's directions hold.

    python examples/toy_world/toy_seeds.py --seeds 0,1,2   # ~5 min a seed on CPU
    python examples/toy_world/toy_seeds.py --seeds 0,1,2 --check  # exit 1 on a miss

One toy run is deterministic on one machine but not across machines (another CPU gave other digits,
the same directions), so its digits are not a result: this script reruns the grid of
``examples/toy_world/toy.yaml`` with the world's seed (facts, base model, preference pairs) and the ORPO
seed set to each seed, through ``scripts/reproduce.py`` (resumable: a rerun reuses finished seeds),
and summarises the leaderboards' pooled numbers as per-seed values and min–max ranges. The claims it
tests are directions, each on every seed:

* alignment on sycophancy-rewarding pairs lowers accuracy under a wrong suggestion and raises the
  one-pass forced flip rate (aligned vs instruct);
* adding the SAA-style pairs raises accuracy under a wrong suggestion again and lowers the forced flip
  rate (aligned-SAA vs aligned).

Writes ``summary.json`` and ``summary.md`` under ``--out_dir``.
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from sycophancy_eval_kit.core.cli_flags import ArgumentParser
from sycophancy_eval_kit.core.procs import call_in_group
from sycophancy_eval_kit.reproduce import SUMMARY_METRICS, load_config

HERE = Path(__file__).resolve().parent

#: (track, metric) pairs summarised: the leaderboard's pooled rows, the same headline a toy run ends with
METRICS: tuple[tuple[str, str], ...] = SUMMARY_METRICS
VARIANTS = ("instruct", "aligned", "aligned-SAA")


@dataclass(frozen=True)
class Direction:
    """``variant``'s value of ``metric`` is above (``sign`` +1) or below (-1) ``reference``'s."""

    metric: str
    variant: str
    reference: str
    sign: int

    def describe(self) -> str:
        return f"{self.metric}: {self.variant} {'>' if self.sign > 0 else '<'} {self.reference}"


DIRECTIONS: tuple[Direction, ...] = (
    Direction("acc_suggest_incorrect", "aligned", "instruct", -1),
    Direction("forced_flip_rate", "aligned", "instruct", +1),
    Direction("acc_suggest_incorrect", "aligned-SAA", "aligned", +1),
    Direction("forced_flip_rate", "aligned-SAA", "aligned", -1),
)


def seed_config(base: dict, seed: int, out: Path) -> dict:
    """The toy grid with every seed set to ``seed``, writing under ``out``."""
    config = json.loads(json.dumps(base))  # a deep copy of plain YAML data
    config["output_dir"] = str(out)
    config.setdefault("world", {})["seed"] = seed
    training = config.setdefault("training", {})
    training["args"] = {**(training.get("args") or {}), "seed": seed}
    return config


def read_pooled(site: Path) -> dict[str, dict[str, dict[str, float | int]]]:
    """``{variant: {metric: {value, k, n}}}`` from a leaderboard's ``data/datasets.csv`` pooled rows."""
    path = site / "data" / "datasets.csv"
    wanted = {m: t for t, m in METRICS}
    out: dict[str, dict[str, dict[str, float | int]]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["subset"] != "pooled" or wanted.get(row["metric"]) != row["track"] or not row["value"]:
                continue
            out.setdefault(row["variant"], {})[row["metric"]] = {
                "value": float(row["value"]),
                "k": int(float(row["k"])) if row.get("k") else -1,
                "n": int(float(row["n"])),
            }
    return out


def summarise(per_seed: dict[int, dict[str, dict[str, dict[str, float | int]]]]) -> dict:
    """Per-variant ranges over the seeds and, per direction, the seeds where it holds."""
    ranges: dict[str, dict[str, dict[str, float]]] = {}
    for variant in VARIANTS:
        for _, metric in METRICS:
            values = [
                float(seeds[variant][metric]["value"])
                for seeds in per_seed.values()
                if metric in seeds.get(variant, {})
            ]
            if values:
                ranges.setdefault(variant, {})[metric] = {
                    "min": min(values),
                    "max": max(values),
                    "seeds": len(values),
                }
    directions = []
    for d in DIRECTIONS:
        held, missed = [], []
        for seed, seeds in sorted(per_seed.items()):
            a = seeds.get(d.variant, {}).get(d.metric)
            b = seeds.get(d.reference, {}).get(d.metric)
            if a is None or b is None:
                missed.append(seed)
            elif (float(a["value"]) - float(b["value"])) * d.sign > 0:
                held.append(seed)
            else:
                missed.append(seed)
        directions.append({"claim": d.describe(), "held": held, "missed": missed})
    return {"seeds": sorted(per_seed), "per_seed": per_seed, "ranges": ranges, "directions": directions}


def markdown(summary: dict) -> str:
    seeds = summary["seeds"]
    lines = [
        f"Toy world over seeds {', '.join(map(str, seeds))}: per-seed value (k/n) and the range.",
        "",
        "| variant | metric | " + " | ".join(f"seed {s}" for s in seeds) + " | range |",
        "|---|---|" + "---|" * len(seeds) + "---|",
    ]
    for variant, by_metric in summary["ranges"].items():
        for metric, r in by_metric.items():
            cells = []
            for s in seeds:
                v = summary["per_seed"][s].get(variant, {}).get(metric)
                cells.append(f"{v['value']:.2f} ({v['k']}/{v['n']})" if v else "")
            lines.append(
                f"| {variant} | {metric} | " + " | ".join(cells) + f" | {r['min']:.2f}–{r['max']:.2f} |"
            )
    lines += ["", "| direction | holds on seeds | misses |", "|---|---|---|"]
    for d in summary["directions"]:
        held, missed = (", ".join(map(str, d[k])) or "-" for k in ("held", "missed"))
        lines.append(f"| {d['claim']} | {held} | {missed} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--config", default=str(HERE / "toy.yaml"), help="the toy grid")
    parser.add_argument("--out_dir", default="outputs/toy_seeds", help="one folder per seed")
    parser.add_argument("--check", action="store_true", help="exit 1 when a direction misses on any seed")
    args = parser.parse_args(argv)
    out = Path(args.out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    base = load_config(args.config)
    per_seed = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        folder = out / f"seed_{seed}"
        config_path = out / f"seed_{seed}.yaml"
        config_path.write_text(yaml.safe_dump(seed_config(base, seed, folder)), encoding="utf-8")
        print(f"=== seed {seed}: {folder}", flush=True)
        reproduce = [sys.executable, "-m", "sycophancy_eval_kit.reproduce", "--config", str(config_path)]
        code = call_in_group(reproduce)  # a stop here stops that seed's whole run, not just this script
        if code != 0:
            print(f"seed {seed} failed ({code}); rerun to resume it", file=sys.stderr)
            return code
        per_seed[seed] = read_pooled(folder / "site")
    summary = summarise(per_seed)
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    text = markdown(summary)
    (out / "summary.md").write_text(text, encoding="utf-8")
    print(text)
    if args.check and any(d["missed"] for d in summary["directions"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
