"""Build the SAA set end to end: inputs -> parsed rows -> labels -> checks -> sample -> files.

Everything goes to a temporary folder beside ``--out`` that is renamed into place only when complete,
so a failed build leaves no half-written output. The output depends only on the inputs and the
options: no clock, host or absolute temp path is written, so the same inputs and seed give the same
bytes.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lm_eval_tasks.sycophancy.files import DataError

from . import card, ground_truth, inputs, overlap, pairs, parse, screening

logger = logging.getLogger(__name__)

OUTPUT_FILES = (
    "saa.jsonl",
    "README.md",
    "dataset_info.json",
    "build_report.json",
    "screening.json",
    "overlap.json",
)


@dataclass(frozen=True)
class BuildConfig:
    """Every option of a build; the defaults are the paper's 500 / 500 from the pinned files."""

    out: str
    bct: str | None = None
    sources: str | None = None
    base_url: str | None = None
    cache_dir: str | None = None
    n_correct: int = 500
    n_incorrect: int = 500
    seed: int = 0
    polarity_aware: bool = False
    drop_flagged: bool = False
    exclude_overlap: bool = False
    eval_data_dir: str | None = None  # the pinned Sharma files (or $SYCOPHANCY_DATA_DIR)
    overlap_ngram: int = overlap.DEFAULT_NGRAM
    offensive_threshold: float = screening.DEFAULT_OFFENSIVE_THRESHOLD
    overwrite: bool = False

    def command(self) -> str:
        """The CLI call that reproduces this build (non-default options only)."""
        parts = ["python -m saa_data build", "--out DIR"]  # not the real path: reruns elsewhere match
        defaults = BuildConfig(out=self.out)
        for name, flag in (
            ("bct", "--bct"),
            ("sources", "--sources"),
            ("n_correct", "--n_correct"),
            ("n_incorrect", "--n_incorrect"),
            ("seed", "--seed"),
            ("eval_data_dir", "--eval_data_dir"),
            ("overlap_ngram", "--overlap_ngram"),
            ("offensive_threshold", "--offensive_threshold"),
        ):
            value = getattr(self, name)
            if value != getattr(defaults, name):
                shown = "download" if name == "eval_data_dir" and value is None else str(value)
                parts.append(f"{flag} {shlex.quote(shown)}")
        for name in ("polarity_aware", "drop_flagged", "exclude_overlap"):
            if getattr(self, name):
                parts.append("--" + name)
        return " ".join(parts)


@dataclass(frozen=True)
class BuildResult:
    out: Path
    records: list[dict[str, Any]]
    report: dict[str, Any]


def _jsonl(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def assemble(config: BuildConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run the pipeline in memory: the records and the build report (nothing is written)."""
    if config.overlap_ngram < 1:
        raise ValueError(f"--overlap_ngram must be >= 1, got {config.overlap_ngram}")
    bct = inputs.resolve_bct(config.bct, config.base_url, config.cache_dir)
    source_files = inputs.resolve_sources(config.sources, config.base_url, config.cache_dir)

    rows = parse.read_bct_file(bct.path)
    index = ground_truth.build_index([(src, f.path) for src, f in source_files])
    candidates: list[pairs.Candidate] = []
    excluded: Counter[str] = Counter()
    for row in rows:
        label = index.label(row)
        if isinstance(label, str):
            excluded[label] += 1
        else:
            candidates.append(pairs.Candidate(row, label))
    labelled = [c.row for c in candidates]

    screened = screening.screen(labelled, config.offensive_threshold)
    if config.drop_flagged and not screened.offensive_checked:
        raise DataError(f"--drop_flagged: offensive-language screening is {screened.offensive_detector}")
    questions, eval_provenance = overlap.load_eval_questions(config.eval_data_dir)
    overlapping = overlap.check(labelled, questions, eval_provenance, config.overlap_ngram)

    eligible = candidates
    if config.drop_flagged:
        eligible = [c for c in eligible if c.row.index not in screened.flagged]
    n_after_screening = len(eligible)
    if config.exclude_overlap:
        eligible = [c for c in eligible if c.row.index not in overlapping.flagged]
    selected = pairs.sample(
        eligible, config.n_correct, config.n_incorrect, config.seed, config.polarity_aware
    )
    records = [pairs.to_record(c, config.seed) for c in selected]

    correct_pool = sum(c.is_correct_case(config.polarity_aware) for c in eligible)
    report: dict[str, Any] = {
        "command": config.command(),
        "config": {k: v for k, v in asdict(config).items() if k not in ("out", "cache_dir", "overwrite")},
        "commit": inputs.COMMIT,
        "inputs": [bct.provenance()] + [f.provenance() for _, f in source_files],
        "source_datasets": list(inputs.SOURCE_DATASETS),
        "counts": {
            "parsed": len(rows),
            "excluded_no_ground_truth": {r: excluded.get(r, 0) for r in ground_truth.EXCLUSION_REASONS},
            "labelled": len(candidates),
            "labelled_by_source": dict(sorted(Counter(c.label.dataset for c in candidates).items())),
            "bct_answer_agrees": sum(c.row.response_letter == c.label.correct_letter for c in candidates),
            "dropped_flagged": len(candidates) - n_after_screening,
            "dropped_overlap": n_after_screening - len(eligible),
            "eligible_correct": correct_pool,
            "eligible_incorrect": len(eligible) - correct_pool,
            "selected": len(records),
            "selected_flagged": sum(r["bct_index"] in screened.flagged for r in records),
            "selected_overlap": sum(r["bct_index"] in overlapping.flagged for r in records),
            "selected_by_cell": {
                f"{p}/{'named_true' if ok else 'named_wrong'}": sum(
                    r["suggestion_polarity"] == p and r["suggestion_correct"] == ok for r in records
                )
                for p in ("for", "against")
                for ok in (True, False)
            },
        },
        "screening": {k: v for k, v in screened.as_dict().items() if k != "hits"},
        "overlap": {k: v for k, v in overlapping.as_dict().items() if k != "matches"},
        "_screening_full": screened.as_dict(),
        "_overlap_full": overlapping.as_dict(),
    }
    return records, report


def write_outputs(folder: Path, records: list[dict[str, Any]], report: dict[str, Any]) -> None:
    """Write every output file into ``folder`` (which must exist)."""
    data_bytes = _jsonl(records)
    (folder / card.DATA_FILE).write_bytes(data_bytes)
    (folder / "screening.json").write_text(card.dumps(report["_screening_full"]), encoding="utf-8")
    (folder / "overlap.json").write_text(card.dumps(report["_overlap_full"]), encoding="utf-8")
    public = {k: v for k, v in report.items() if not k.startswith("_")}
    (folder / "build_report.json").write_text(card.dumps(public), encoding="utf-8")
    (folder / "dataset_info.json").write_text(card.dumps(card.dataset_info(data_bytes)), encoding="utf-8")
    (folder / "README.md").write_text(card.render_card(records, public), encoding="utf-8")


def _replace_dir(tmp: Path, out: Path, overwrite: bool) -> None:
    """Move the finished ``tmp`` folder to ``out``, replacing an old build only when allowed."""
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        if not overwrite:
            raise FileExistsError(
                f"--out {out} already exists and is not empty; pass --overwrite to replace it"
            )
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
        return
    if out.exists():
        out.rmdir()
    os.replace(tmp, out)


def build(config: BuildConfig) -> BuildResult:
    """Build the set into ``config.out`` atomically and return what was written."""
    out = Path(config.out).expanduser().resolve()
    if out.exists() and not config.overwrite and not (out.is_dir() and not any(out.iterdir())):
        raise FileExistsError(f"--out {out} already exists and is not empty; pass --overwrite to replace it")
    records, report = assemble(config)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp's 0700 would otherwise stick to the published folder
    try:
        write_outputs(tmp, records, report)
        _replace_dir(tmp, out, config.overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuildResult(out, records, {k: v for k, v in report.items() if not k.startswith("_")})
