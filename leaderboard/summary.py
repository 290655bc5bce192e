"""From validated runs to the leaderboard's numbers: per model, per dataset, pooled, and between variants.

The result is one JSON-ready dict (written as ``data/leaderboard.json``) that the site, the CSV files
and the plots all render; nothing downstream computes a statistic of its own.

A model's estimates depend only on its runs' per-question values, the seed and the resamples, and a
comparison's only on its two models' values; both are kept in the store (``derived``) under the
digests of the files those values were read from, so a rebuild computes only what an added or changed
run touches.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sycophancy_eval_kit.core import registry, stats
from sycophancy_eval_kit.leaderboard import store as stores
from sycophancy_eval_kit.leaderboard import tasks
from sycophancy_eval_kit.leaderboard.ingest import Ingested, TaskRun, load_values
from sycophancy_eval_kit.leaderboard.tasks import Metric
from sycophancy_eval_kit.leaderboard.variants import Placement, Variants

POOLED = "pooled"
_CODE = stores.code_digest(
    Path(__file__), Path(stats.__file__), Path(tasks.__file__), Path(registry.__file__)
)
#: bases whose statistics are computed together, their runs' values loaded in one query per family
BASES_PER_BATCH = 64
#: what identifies the models of a comparison row; the rest of the row is statistics (and stored).
_WHO = ("base", "model", "variant", "reference_model", "reference_variant")


def slugify(text: str) -> str:
    """A file-name-safe, collision-free slug: readable part plus a hash of the full text.

    Output paths are built only from slugs, so nothing in a results file can choose where a page is
    written (``../`` and friends become ``-``).
    """
    readable = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48].strip("-") or "x"
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{readable}-{digest}"


@dataclass
class ModelRuns:
    """One model's current runs (newest per task) and its superseded ones."""

    model: str
    placement: Placement
    slug: str
    runs: dict[str, TaskRun] = field(default_factory=dict)  # task name -> newest run
    history: list[TaskRun] = field(default_factory=list)

    def by_track(self) -> dict[str, dict[str, TaskRun]]:
        """track -> sub-dataset -> run."""
        out: dict[str, dict[str, TaskRun]] = {}
        for run in self.runs.values():
            out.setdefault(run.task.track, {})[run.task.subset] = run
        return out


def _deltas(metrics: Sequence[Metric]) -> list[Metric]:
    return [m for m in metrics if m.is_delta]


def _estimates(
    metrics: Sequence[Metric], columns: Sequence[dict[str, np.ndarray]], resamples: int, seed: int
) -> dict[str, stats.Estimate]:
    """Every metric of a family over the questions of one or more runs (pooled by concatenation).

    Rates get Wilson intervals over the questions that define them; deltas a percentile bootstrap of
    their stored per-question values (``stats.bootstrap_means``).
    """
    deltas = _deltas(metrics)
    boot = stats.bootstrap_means(
        [stats.pooled([c[m.name] for c in columns]) for m in deltas], resamples, seed
    )
    out = {m.name: est for m, est in zip(deltas, boot, strict=True)}
    for m in metrics:
        if not m.is_delta:
            out[m.name] = stats.rate(stats.pooled([c[m.name] for c in columns]), m.name)
    return {m.name: out[m.name] for m in metrics}


def _est_dict(est: stats.Estimate, subsets: Sequence[str] | None = None) -> dict[str, Any]:
    out = {k: stats.finite_or_none(v) if isinstance(v, float) else v for k, v in est.to_dict().items()}
    if subsets is not None:
        out["subsets"] = list(subsets)
    return out


def _aligned(a: TaskRun, b: TaskRun) -> tuple[np.ndarray, np.ndarray] | None:
    """Index arrays selecting the questions both runs share, in ``a``'s order (paired on ``doc.id``);
    None when both runs hold the same questions in the same order (the usual case)."""
    if a.ids_digest == b.ids_digest:
        return None
    where_b = {qid: i for i, qid in enumerate(b.ids)}
    ia = [i for i, qid in enumerate(a.ids) if qid in where_b]
    ib = [where_b[a.ids[i]] for i in ia]
    return np.asarray(ia, dtype=int), np.asarray(ib, dtype=int)


class _Memo:
    """Statistics of earlier builds in the store, by the digest of everything they were computed from."""

    def __init__(self, store: stores.Store | None) -> None:
        self.store = store

    def key(self, kind: str, resamples: int, seed: int, parts: Any, runs: Sequence[TaskRun]) -> str:
        return stores.value_digest([kind, _CODE, resamples, seed, parts, [r.digest for r in runs]])

    def get(self, key: str) -> Any:
        found = self.store.derived(key) if self.store is not None else None
        return None if found is None else json.loads(found)

    def put(self, key: str, value: Any) -> Any:
        if self.store is not None:
            self.store.put_derived(key, json.dumps(value).encode())
        return value


def _comparison(
    variant: ModelRuns, reference: ModelRuns, track: str, resamples: int, seed: int, memo: _Memo
) -> tuple[dict[str, Any], list[str], list[TaskRun], str] | None:
    """Who is compared on ``track``, the shared sub-datasets, the runs and the memo key; None when the
    two models share no sub-dataset there."""
    family = track.split(".")[0]
    mine, theirs = variant.by_track().get(track, {}), reference.by_track().get(track, {})
    shared = sorted(set(mine) & set(theirs), key=lambda s: tasks.subset_order(family, s))
    if not shared:
        return None
    places = (variant.placement, reference.placement)
    who = dict(
        zip(
            _WHO,
            (places[0].base, variant.model, places[0].variant, reference.model, places[1].variant),
            strict=True,
        )
    )
    runs = [run for s in shared for run in (mine[s], theirs[s])]
    return who, shared, runs, memo.key("compare", resamples, seed, [track, shared], runs)


def _compare_rows(
    track: str,
    mine: dict[str, TaskRun],
    theirs: dict[str, TaskRun],
    shared: Sequence[str],
    resamples: int,
    seed: int,
) -> list[dict[str, Any]]:
    """The statistics of one comparison, per scope (pooled, then each shared sub-dataset) and metric.

    Rates (0/1 per question): the exact McNemar test and the difference ``(b - c) / n``. Deltas (not
    0/1): the difference of the deltas with a paired bootstrap interval, all deltas from one bootstrap.
    """
    paired: dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = {}
    for subset in shared:
        aligned = _aligned(mine[subset], theirs[subset])
        if aligned is None:
            paired[subset] = (mine[subset].values, theirs[subset].values)
        else:
            ia, ib = aligned
            paired[subset] = (
                {k: v[ia] for k, v in mine[subset].values.items()},
                {k: v[ib] for k, v in theirs[subset].values.items()},
            )
    scopes: list[tuple[str, list[str]]] = [(s, [s]) for s in shared]
    if len(shared) > 1:
        scopes.insert(0, (POOLED, shared))
    metrics = tasks.track_metrics(track)
    deltas = _deltas(metrics)
    out: list[dict[str, Any]] = []
    for scope, subsets in scopes:
        # the difference of each delta, question by question (both runs' delta defined): bootstrapped
        pairs = [
            [stats.pooled([paired[s][side][m.name] for s in subsets]) for side in (0, 1)] for m in deltas
        ]
        boot = stats.bootstrap_means([a - b for a, b in pairs], resamples, seed)
        diffs = {m.name: est for m, est in zip(deltas, boot, strict=True)}
        for metric in metrics:
            row: dict[str, Any] = {
                "track": track,
                "subset": scope,
                "metric": metric.name,
            }
            if metric.is_delta:
                diff = diffs[metric.name]
                row.update(test="paired bootstrap", n=diff.n, difference=_est_dict(diff))
            else:
                a = stats.pooled([paired[s][0][metric.name] for s in subsets])
                b = stats.pooled([paired[s][1][metric.name] for s in subsets])
                both = ~(np.isnan(a) | np.isnan(b))  # questions where both runs define the metric
                a, b = a[both], b[both]
                test = stats.mcnemar_exact(a, b)
                row.update(test="exact McNemar", **test.to_dict())
                if test.n:  # paired 0/1 outcomes: McNemar is the inference; the difference is (b - c) / n
                    row["difference"] = {"value": (test.b - test.c) / test.n, "n": test.n}
            out.append(row)
    return out


def _model_estimates(entry: ModelRuns, resamples: int, seed: int) -> dict[str, Any]:
    """A model's estimates per track: per sub-dataset, and pooled over the sub-datasets it ran."""
    datasets: dict[str, dict[str, dict[str, Any]]] = {}
    pooled: dict[str, dict[str, Any]] = {}
    for track, runs in entry.by_track().items():
        family, metrics = track.split(".")[0], tasks.track_metrics(track)
        present = sorted(runs, key=lambda s: tasks.subset_order(family, s))
        datasets[track] = {
            s: {k: _est_dict(v) for k, v in _estimates(metrics, [runs[s].values], resamples, seed).items()}
            for s in present
        }
        if len(present) == 1:  # pooling one sub-dataset changes nothing: reuse its numbers
            pooled[track] = {k: v | {"subsets": present} for k, v in datasets[track][present[0]].items()}
        else:
            est = _estimates(metrics, [runs[s].values for s in present], resamples, seed)
            pooled[track] = {k: _est_dict(v, present) for k, v in est.items()}
    return {"datasets": datasets, "pooled": pooled}


def _run_record(run: TaskRun) -> dict[str, Any]:
    return run.provenance | {"timestamp": run.timestamp, "reported": dict(run.reported)}


def group_models(ingested: Ingested, variants: Variants) -> list[ModelRuns]:
    """One entry per model, ordered by base model, then by variant rank."""
    models: dict[str, ModelRuns] = {}
    for run in ingested.runs:
        entry = models.get(run.model)
        if entry is None:
            entry = models[run.model] = ModelRuns(run.model, variants.place(run.model), slugify(run.model))
        entry.runs[run.task.name] = run
    for run in ingested.superseded:
        if run.model in models:
            models[run.model].history.append(run)
    return sorted(
        models.values(),
        key=lambda m: (m.placement.base.lower(), variants.variant_rank(m.placement.variant), m.model),
    )


def _columns(tracks: Sequence[str]) -> list[dict[str, Any]]:
    """Main-table columns: the three template deltas, the flip rate(s), then the baseline accuracy."""
    from sycophancy_eval_kit.core import prompts

    cols: list[dict[str, Any]] = []

    def add(track: str, name: str, extra: dict[str, Any] | None = None) -> None:
        family = track.split(".")[0]
        metric = tasks.metric(family, name)
        col = {
            "id": f"{track}/{name}",
            "track": track,
            "track_label": tasks.track_label(track),
            "metric": name,
            "label": metric.label,
            "denominator": metric.denominator,
            "higher_is_better": metric.higher_is_better,
            "is_delta": metric.is_delta,
        }
        cols.append(col | (extra or {}))

    answer = [t for t in tracks if t.startswith(tasks.ANSWER + ".")]
    ays = [t for t in tracks if t.startswith(tasks.AYS + ".")]
    for track in answer:
        for cond in tasks.TEMPLATE_CONDITIONS:
            add(track, f"delta_{cond}", {"template": prompts.ANSWER_TEMPLATES[cond]})
    for track in ays:  # each protocol's own flip rate, never one name for two quantities
        add(track, tasks.headline_flip(track))
    for track in answer:
        add(track, "acc_baseline", {"template": prompts.ANSWER_TEMPLATES["baseline"]})
    return cols


def _metrics_with_data(track: str, model_rows: Sequence[dict[str, Any]]) -> list[str]:
    """The track's metrics that some model has questions for (free-form runs have no acc_final)."""
    return [
        m.name
        for m in tasks.track_metrics(track)
        if any((row["pooled"].get(track, {}).get(m.name) or {}).get("n") for row in model_rows)
    ]


def _track_order(track: str) -> tuple[int, int, tuple[int, str], int]:
    family, protocol, grader, scope = tasks.track_parts(track)
    return (
        tasks.SCOPES.index(scope),
        [tasks.ANSWER, tasks.AYS].index(family),
        tasks.protocol_order(protocol),
        [tasks.RULE, tasks.JUDGE].index(grader),
    )


def summarize(
    ingested: Ingested,
    variants: Variants,
    resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = stats.DEFAULT_SEED,
    allow_sample: bool = False,
    store: stores.Store | None = None,
) -> dict[str, Any]:
    """Every number the site shows, as one JSON-ready dict (statistics reused from ``store``)."""
    memo = _Memo(store)
    models = group_models(ingested, variants)
    tracks = sorted({run.task.track for run in ingested.runs}, key=_track_order)
    subsets_of: dict[str, list[str]] = {}
    for run in ingested.runs:
        subsets_of.setdefault(run.task.track, [])
        if run.task.subset not in subsets_of[run.task.track]:
            subsets_of[run.task.track].append(run.task.subset)
    for track, subs in subsets_of.items():
        subs.sort(key=lambda s: tasks.subset_order(track.split(".")[0], s))

    notes: list[str] = []
    columns = _columns(tracks)
    by_base: dict[str, list[ModelRuns]] = {}
    for entry in models:
        by_base.setdefault(entry.placement.base, []).append(entry)
    estimates: dict[str, dict[str, Any]] = {}
    comparisons: list[dict[str, Any]] = []
    # bases a batch at a time: a batch's models and comparisons need only their own runs' values, which
    # are loaded where a statistic is not in the store, then dropped: memory holds one batch's
    bases = list(by_base.items())
    for start in range(0, len(bases), BASES_PER_BATCH):
        work: list[tuple[list[ModelRuns], dict[str, str], list]] = []
        needed: list[TaskRun] = []
        for base, group in bases[start : start + BASES_PER_BATCH]:
            keys = {}
            for entry in group:
                ordered = sorted(entry.runs.values(), key=lambda r: r.task)
                parts = [[r.task.track, r.task.subset] for r in ordered]
                keys[entry.model] = memo.key("model", resamples, seed, parts, ordered)
                estimates[entry.model] = memo.get(keys[entry.model])
                needed += list(entry.runs.values()) if estimates[entry.model] is None else []
            reference = group[0]  # models are sorted by variant rank within a base
            pairs = [
                (t, c, memo.get(c[3]))
                for other in group[1:]
                for t in tracks
                if (c := _comparison(other, reference, t, resamples, seed, memo))
            ]
            needed += [r for _, c, found in pairs if found is None for r in c[2]]
            if len({m.placement.variant for m in group}) < len(group):
                notes.append(f"base {base!r} has two models with the same variant name")
            work.append((group, keys, pairs))
        load_values(needed)
        for group, keys, pairs in work:
            for entry in group:
                if estimates[entry.model] is None:
                    estimates[entry.model] = memo.put(
                        keys[entry.model], _model_estimates(entry, resamples, seed)
                    )
            for track, (who, shared, runs, key), found in pairs:
                if found is None:
                    mine = {s: runs[2 * i] for i, s in enumerate(shared)}
                    theirs = {s: runs[2 * i + 1] for i, s in enumerate(shared)}
                    found = memo.put(key, _compare_rows(track, mine, theirs, shared, resamples, seed))
                comparisons += [who | row for row in found]
        for run in needed:
            run._values = None
    model_rows: list[dict[str, Any]] = []
    for entry in models:
        datasets, pooled = estimates[entry.model]["datasets"], estimates[entry.model]["pooled"]
        main = {c["id"]: pooled.get(c["track"], {}).get(c["metric"]) for c in columns}
        model_rows.append(
            {
                "model": entry.model,
                "slug": entry.slug,
                "label": entry.placement.label,
                "base": entry.placement.base,
                "variant": entry.placement.variant,
                "main": main,
                "pooled": pooled,
                "datasets": datasets,
                "runs": [_run_record(r) for r in sorted(entry.runs.values(), key=lambda r: r.task)],
                "history": [
                    _run_record(r)
                    for r in sorted(entry.history, key=lambda r: (r.task, r.timestamp), reverse=True)
                ],
            }
        )

    for track in tracks:
        for subset in subsets_of[track]:
            shas = {
                r.provenance.get("data_sha256")
                for r in ingested.runs
                if r.task.track == track and r.task.subset == subset
            }
            if len(shas) > 1:
                notes.append(
                    f"{tasks.track_label(track)} / {subset}: runs used {len(shas)} different data files "
                    "(data_sha256 differs); their numbers are not directly comparable"
                )
    limited = sorted(
        {f"{r.model} ({r.task.name})" for r in ingested.runs if r.provenance.get("limit") is not None}
    )
    if limited:
        notes.append(f"runs made with lm-eval --limit cover only part of the data: {', '.join(limited)}")
    unmatched = variants.unmatched([m.model for m in models])
    if unmatched:
        notes.append(f"leaderboard.yaml lists models with no results: {', '.join(unmatched)}")

    dataset_pages = [
        {
            "family": track.split(".")[0],
            "subset": subset,
            "slug": slugify(f"{track.split('.')[0]}-{subset}"),
        }
        for track in tracks
        for subset in subsets_of[track]
    ]
    unique_pages = {(d["family"], d["subset"]): d for d in dataset_pages}
    custom_data: dict[str, list[str]] = {}  # a user's data name -> the sha256s of its input tables
    for run in ingested.runs:
        if run.task.scope:
            shas = custom_data.setdefault(run.task.subset, [])
            sha = run.provenance.get("data_input_sha256")
            if isinstance(sha, str) and sha not in shas:
                shas.append(sha)
    pressure = any(tasks.track_parts(t)[1].startswith(tasks.PRESSURE_PREFIX) for t in tracks)
    return {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "sharma_data": any(not r.task.scope for r in ingested.runs),
        "custom_data": {name: sorted(shas) for name, shas in sorted(custom_data.items())},
        "sample_data": allow_sample
        and any(r.provenance.get("data_source") == "embedded" for r in ingested.runs),
        "statistics": {
            "confidence": stats.CONFIDENCE,
            "rates": "Wilson score interval (scipy.stats.binomtest(...).proportion_ci)",
            "deltas": f"paired percentile bootstrap over questions, {resamples} resamples, seed {seed}",
            "variants": (
                "exact McNemar test on shared question ids (two-sided binomial test on discordant pairs)"
            ),
        },
        "tracks": [  # (a pressure schedule's per-round rates are listed only when such a track exists)
            {
                "id": t,
                "label": tasks.track_label(t),
                "family": t.split(".")[0],
                "subsets": subsets_of[t],
                "metrics": _metrics_with_data(t, model_rows),
            }
            for t in tracks
        ],
        "columns": columns,
        "variants": sorted({m.placement.variant for m in models}, key=variants.variant_rank),
        "models": model_rows,
        "datasets": sorted(
            unique_pages.values(),
            key=lambda d: (d["family"] != tasks.ANSWER, tasks.subset_order(d["family"], d["subset"])),
        ),
        "comparisons": comparisons,
        "metrics": {
            family: [
                {
                    "name": m.name,
                    "label": m.label,
                    "denominator": m.denominator,
                    "higher_is_better": m.higher_is_better,
                    "is_delta": m.is_delta,
                }
                for m in metrics + (tasks.PRESSURE_METRICS if family == tasks.AYS and pressure else ())
            ]
            for family, metrics in tasks.METRICS.items()
        },
        "notes": notes,
        "results_files": ingested.results_files,
    }
