"""Render the summary to a self-contained static site, written atomically.

Safety rules, each enforced here:

* every string from a results file reaches HTML through Jinja2 autoescaping; CSS and JS are inline and
  allowed by hash in a Content-Security-Policy, so nothing else can run (and no CDN is needed);
* file names come only from slugs and the catalogue, and every write goes through ``SiteWriter``, which
  refuses any path that would land outside the site folder;
* the site is built in a temporary folder beside ``--out`` and swapped in (``files.replacing_dir``): a
  failed build leaves the previous site untouched, a killed one is repaired by the next run, and a
  folder that is not a site built by us is never replaced.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from lm_eval_tasks.sycophancy import files

from . import plots, tasks

MARKER = ".syco-leaderboard"
MANIFEST = "manifest.json"
HERE = Path(__file__).resolve().parent
_SAFE_REL = re.compile(r"^\.?[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


class SiteError(ValueError):
    """The site cannot be written where asked; the message says why and what to do."""


class SiteWriter:
    """Writes files under one root and nowhere else; records what it wrote for the manifest."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.written: list[str] = []

    def target(self, rel: str) -> Path:
        if not _SAFE_REL.match(rel) or ".." in PurePosixPath(rel).parts:
            raise SiteError(f"refusing to write {rel!r}: not a plain relative path inside the site")
        path = (self.root / rel).resolve()
        if not path.is_relative_to(self.root):
            raise SiteError(f"refusing to write {rel!r}: it resolves outside the site folder {self.root}")
        return path

    def write(self, rel: str, content: str | bytes) -> None:
        path = self.target(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode("utf-8") if isinstance(content, str) else content
        # O_EXCL: never follow a link or overwrite a file someone planted in the temporary folder.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        self.written.append(rel)


# ------------------------------------------------------------------------------- formatting
def _fmt(value: float | None, is_delta: bool, bare: bool = False) -> str:
    """Deltas in signed percentage points, rates in percent (``bare``: without the % sign)."""
    if value is None:
        return "\u2013"
    scaled = value * 100.0
    text = f"{scaled:+.1f}" if is_delta else f"{scaled:.1f}"
    return text.replace("-", "\u2212") + ("" if is_delta or bare else "%")


def _p_value(value: float | None) -> str:
    if value is None:
        return "\u2013"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _short_sha(value: Any) -> str:
    return str(value)[:12] if value else "\u2013"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template, whatever its name: all output is HTML
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["fmt"] = _fmt
    env.filters["p_value"] = _p_value
    env.filters["short_sha"] = _short_sha
    env.globals["track_label"] = tasks.track_label
    return env


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


# ------------------------------------------------------------------------------------- data files
def _csv_cell(value: Any) -> Any:
    """Spreadsheet-safe cell: text starting with = + - @ (a formula) is prefixed with a quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return value


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_csv_cell(v) for v in row])
    return buf.getvalue()


def data_files(summary: dict[str, Any]) -> dict[str, str]:
    """``data/*.json|csv``: the same numbers as the pages, for people and scripts."""
    est_keys = ("value", "lo", "hi", "n")
    main_header = ["model", "label", "base", "variant"]
    for col in summary["columns"]:
        main_header += [f"{col['id']}:{k}" for k in est_keys]
    main_rows = []
    for m in summary["models"]:
        row = [m["model"], m["label"], m["base"], m["variant"]]
        for col in summary["columns"]:
            est = m["main"].get(col["id"]) or {}
            row += [est.get(k) for k in est_keys]
        main_rows.append(row)

    ds_header = ["model", "base", "variant", "track", "subset", "metric", "value", "lo", "hi", "n", "k"]
    ds_rows = []
    for m in summary["models"]:
        for track, subsets in m["datasets"].items():
            scopes = list(subsets.items()) + [("pooled", m["pooled"][track])]
            for subset, metrics in scopes:
                for metric, est in metrics.items():
                    ds_rows.append(
                        [m["model"], m["base"], m["variant"], track, subset, metric]
                        + [est.get(k) for k in ("value", "lo", "hi", "n", "k")]
                    )

    cmp_header = [
        "base", "model", "variant", "reference_model", "reference_variant", "track", "subset", "metric",
        "test", "n", "b", "c", "p_value", "difference", "difference_lo", "difference_hi",
    ]  # fmt: skip
    cmp_rows = []
    for c in summary["comparisons"]:
        diff = c.get("difference") or {}
        cmp_rows.append(
            [c.get(k) for k in cmp_header[:13]] + [diff.get("value"), diff.get("lo"), diff.get("hi")]
        )

    run_keys = [
        "model", "task", "task_version", "timestamp", "date", "lm_eval_version", "model_sha",
        "model_revision", "chat_template_sha", "system_instruction_sha", "protocol", "grader",
        "data_source", "data_file", "data_sha256", "data_pinned_sha256_match", "n_questions", "limit",
        "results_file", "samples_file",
    ]  # fmt: skip
    run_rows = [[r.get(k) for k in run_keys] + ["current"] for m in summary["models"] for r in m["runs"]] + [
        [r.get(k) for k in run_keys] + ["superseded"] for m in summary["models"] for r in m["history"]
    ]

    return {
        "data/leaderboard.json": json.dumps(summary, indent=1, ensure_ascii=False, allow_nan=False) + "\n",
        "data/main.csv": _csv(main_header, main_rows),
        "data/datasets.csv": _csv(ds_header, ds_rows),
        "data/comparisons.csv": _csv(cmp_header, cmp_rows),
        "data/runs.csv": _csv(run_keys + ["status"], run_rows),
    }


# ------------------------------------------------------------------------------------- pages
def render_site(summary: dict[str, Any], writer: SiteWriter, title: str) -> None:
    """Every page, plot and data file of the site, through ``writer``."""
    env = _environment()
    css = (HERE / "static" / "leaderboard.css").read_text(encoding="utf-8")
    js = (HERE / "static" / "leaderboard.js").read_text(encoding="utf-8")
    common = {
        "summary": summary,
        "title": title,
        "css": css,
        "js": js,
        "csp": (
            "default-src 'none'; img-src 'self'; "
            f"style-src {_csp_hash(css)}; script-src {_csp_hash(js)}; base-uri 'none'; form-action 'none'"
        ),
    }

    figures = []
    for name, track, panels in plots.figure_specs(summary):
        rel = f"plots/{name}.svg"
        writer.write(rel, plots.render_svg(panels))
        figures.append({"src": rel, "title": f"{tasks.track_label(track)}: {panels[0].title}"})

    writer.write("index.html", env.get_template("index.html").render(common, root="", figures=figures))

    for ds in summary["datasets"]:
        specs = plots.figure_specs(summary, subset=ds["subset"], family=ds["family"])
        ds_figures = []
        for name, track, panels in specs:
            rel = f"plots/{ds['slug']}.{name}.svg"
            writer.write(rel, plots.render_svg(panels))
            ds_figures.append({"src": "../" + rel, "title": tasks.track_label(track)})
        page = env.get_template("dataset.html").render(common, root="../", dataset=ds, figures=ds_figures)
        writer.write(f"datasets/{ds['slug']}.html", page)

    for model in summary["models"]:
        mine = [c for c in summary["comparisons"] if model["model"] in (c["model"], c["reference_model"])]
        page = env.get_template("model.html").render(common, root="../", model=model, comparisons=mine)
        writer.write(f"models/{model['slug']}.html", page)

    # The page lists each comparison once (pooled, or the only sub-dataset); per sub-dataset rows are on
    # the model pages and in data/comparisons.csv, which keeps this page small for large leaderboards.
    single = {t["id"] for t in summary["tracks"] if len(t["subsets"]) == 1}
    headline = [c for c in summary["comparisons"] if c["subset"] == "pooled" or c["track"] in single]
    page = env.get_template("comparisons.html").render(common, root="", rows=headline)
    writer.write("comparisons.html", page)
    for rel, text in data_files(summary).items():
        writer.write(rel, text)


def _manifest(writer: SiteWriter) -> str:
    files = {
        rel: hashlib.sha256(writer.target(rel).read_bytes()).hexdigest() for rel in sorted(writer.written)
    }
    return json.dumps({"generator": "syco-leaderboard", "files": files}, indent=1) + "\n"


# ------------------------------------------------------------------------------ atomic build
def check_destination(
    out: Path, inputs: Sequence[Path] = (), flag: str = "--out", what: str = "the results folder"
) -> None:
    """Refuse to replace a folder that is not one of our sites, or one that holds the inputs.

    Leftovers of an earlier run killed while replacing ``out`` are repaired first (and reported), so
    that an interrupted replacement never leaves ``out`` missing.
    """
    files.recover_dir(out)
    out_abs = out.resolve()
    for src in inputs:
        src_abs = Path(src).resolve()
        if src_abs == out_abs or src_abs.is_relative_to(out_abs):
            raise SiteError(f"{flag} {out} would replace {what} {src}; choose another folder")
    if out.is_symlink():
        raise SiteError(f"{flag} {out} is a symbolic link; give the real folder")
    if out.exists():
        if not out.is_dir():
            raise SiteError(f"{flag} {out} exists and is not a folder")
        if any(out.iterdir()) and not (out / MARKER).is_file():
            raise SiteError(
                f"{flag} {out} is a non-empty folder that was not built by syco-leaderboard (no {MARKER}); "
                "refusing to replace it"
            )


def write_site(summary: dict[str, Any], out: Path, title: str, inputs: Sequence[Path] = ()) -> list[str]:
    """Build the whole site in a temporary folder beside ``out``, then swap it in; returns the files."""
    out = Path(out)
    check_destination(out, inputs)
    with writing_dir(out) as tmp:
        writer = SiteWriter(tmp)
        render_site(summary, writer, title)
        writer.write(MANIFEST, _manifest(writer))
        writer.write(MARKER, "built by syco-leaderboard; safe to replace with a new build\n")
    return writer.written


@contextmanager
def writing_dir(out: Path) -> Iterator[Path]:
    """``files.replacing_dir`` with the leaderboard's errors: an unwritable place is a ``SiteError``."""
    try:
        with files.replacing_dir(out) as tmp:
            yield tmp
    except OSError as err:
        raise SiteError(
            f"{out}: cannot write the site there ({err.strerror or err}: {err.filename}); "
            "expected a writable folder with room for it"
        ) from err
