"""Build the SAA set end to end: inputs -> parsed rows -> labels -> checks -> sample -> files.

Everything goes to a temporary folder beside ``--out`` that is swapped into place only when complete
(``files.replacing_dir``), so a failed build leaves no half-written output, and a run killed mid-swap is
repaired by the next one. An ``--out`` that holds an input is refused: ``--overwrite`` would delete it.
The output depends only on the inputs and the options: no clock, host or absolute temp path is written,
so the same inputs and seed give the same bytes.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sycophancy_eval_kit.core import data, files
from sycophancy_eval_kit.core.files import DataError
from sycophancy_eval_kit.saa_data import card, ground_truth, inputs, overlap, pairs, parse, screening

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
        parts = ["syco-saa build", "--out DIR"]  # not the real path: reruns elsewhere match
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
    if not 0.0 <= config.offensive_threshold <= 1.0:  # also refuses NaN
        raise ValueError(
            f"--offensive_threshold must be in [0, 1] (a probability score), got {config.offensive_threshold}"
        )
    bct = inputs.resolve_bct(config.bct, config.base_url, config.cache_dir)
    source_files = inputs.resolve_sources(config.sources, config.base_url, config.cache_dir)

    parsed = parse.read_bct_file(bct.path)
    rows, repeats = parse.drop_repeats(parsed)
    if repeats:
        logger.warning(
            "%s: dropped %d row(s) repeating an earlier prompt (the first copy is kept): bct_index %s%s",
            bct.path,
            len(repeats),
            ", ".join(map(str, repeats[:10])),
            ", ..." if len(repeats) > 10 else "",
        )
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
            "parsed": len(parsed),
            "duplicate_prompts_dropped": len(repeats),
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


#: what ``files.check_replaceable`` calls this builder: its marker is ``.syco-saa``
TOOL = "syco-saa"


class OutExistsError(FileExistsError):
    """``--out`` is there and may not be replaced: not a folder, not empty without ``--overwrite``, or
    (even with it) not a folder this builder built."""


def _check_out(out: Path, overwrite: bool) -> None:
    """``--out`` may be created, or replaced when it is empty, or built by syco-saa and ``overwrite``
    is given: ``--overwrite`` never deletes a folder of the user's."""
    if not os.path.lexists(out):
        return
    if not out.is_dir() or out.is_symlink():
        raise OutExistsError(f"--out {out} exists and is not a folder; give a folder to build into")
    if not overwrite and any(out.iterdir()):
        raise OutExistsError(f"--out {out} already exists and is not empty; pass --overwrite to replace it")
    try:
        files.check_replaceable(out, TOOL)
    except files.RefusedFolder as err:
        raise OutExistsError(str(err)) from None


def local_inputs(config: BuildConfig) -> list[tuple[str, Path]]:
    """Every local path the build reads (files, folders, download caches), each with the option naming it."""
    found: list[tuple[str, Path]] = []
    if config.bct and not inputs.is_url(config.bct):
        found.append(("--bct", Path(config.bct)))
    if config.sources and not inputs.is_url(config.sources):
        found.append(("--sources", Path(config.sources)))
    eval_dir = config.eval_data_dir or os.environ.get(data.ENV_DATA_DIR)
    if eval_dir and eval_dir != data.EMBEDDED:
        found.append(("--eval_data_dir", Path(eval_dir)))
    elif not eval_dir:
        found.append(("the evaluation-data download cache", data.default_cache_dir()))
    cache_option = "--cache_dir" if config.cache_dir else "the download cache"
    found.append((cache_option, inputs.cache_dir(config.cache_dir)))
    return found


def check_out_is_not_an_input(out: Path, config: BuildConfig) -> None:
    """Refuse an ``--out`` that is, holds or lies inside an input: replacing it would delete that input."""
    for option, path in local_inputs(config):
        src = path.expanduser().resolve()  # symlinks resolved on both sides: the same folder by any name
        if src == out or src.is_relative_to(out):
            raise DataError(
                f"--out {out} holds {option} {path}: replacing it would delete that input; "
                "choose an output folder outside the inputs"
            )
        if out.is_relative_to(src):
            raise DataError(
                f"--out {out} is inside {option} {path}; choose an output folder outside the inputs"
            )


def build(config: BuildConfig) -> BuildResult:
    """Build the set into ``config.out`` atomically and return what was written."""
    out = Path(config.out).expanduser().resolve()
    check_out_is_not_an_input(out, config)
    files.recover_dir(out)  # a previous run killed mid-replacement: put back or clean what it left
    _check_out(out, config.overwrite)
    records, report = assemble(config)
    try:
        with files.replacing_dir(out) as tmp:
            write_outputs(tmp, records, report)
            files.mark_built(tmp, TOOL)
            _check_out(out, config.overwrite)  # still true after the (possibly long) build?
    except OutExistsError:
        raise
    except OSError as err:  # a read-only or full disk: say where, not a traceback
        raise DataError(
            f"cannot write the build ({err.strerror or err}: {err.filename}); expected a writable folder "
            "with room for it",
            f"--out {out}",
        ) from err
    return BuildResult(out, records, {k: v for k, v in report.items() if not k.startswith("_")})
