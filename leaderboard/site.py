"""Render the summary to a self-contained static site, written atomically.

Safety rules, each enforced here:

* every string from a results file reaches HTML through Jinja2 autoescaping; CSS and JS are inline and
  allowed by hash in a Content-Security-Policy, so nothing else can run (and no CDN is needed);
* file names come only from slugs and the catalogue, and every write goes through ``SiteWriter``, which
  refuses any path that would land outside the site folder;
* the site is built in a temporary folder beside ``--out`` and swapped in (``files.replacing_dir``): a
  failed build leaves the previous site untouched, a killed one is repaired by the next run, and a
  folder that is not a site built by us is never replaced.

With a store, a page or plot whose inputs are unchanged is not rendered again: each template is given
exactly the part of the summary it shows, and the sha256 of that (with the rendering code) finds the
earlier output in the store (``derived``). Only the leaderboard page shows the build time, so the
others can be reused.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from sycophancy_eval_kit.core import files
from sycophancy_eval_kit.leaderboard import plots, tasks
from sycophancy_eval_kit.leaderboard import store as stores

TOOL = "syco-leaderboard"
MARKER = files.built_marker(TOOL)
MANIFEST = "manifest.json"
HERE = Path(__file__).resolve().parent
_CODE = stores.code_digest(
    Path(__file__), Path(plots.__file__), Path(tasks.__file__), HERE / "templates", HERE / "static"
)
#: what every page's frame (banner, footer) reads from the summary.
_FRAME = ("sample_data", "statistics", "sharma_data", "custom_data")
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


class _Environment(Environment):
    """Jinja's attribute lookup, with the common case first.

    ``row.base`` on a dict tries ``getattr`` and catches its AttributeError before the key: a third
    of the rendering time of a large leaderboard. For names a dict has no attribute of, the key is
    the only possible result, so it is looked up directly; every other name goes the usual way.
    """

    _DICT_ATTRIBUTES = frozenset(dir(dict))

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in self._DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


def _environment() -> Environment:
    env = _Environment(
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


def _csv(header: Sequence[str] | None, rows: Iterable[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header is not None:
        writer.writerow(header)
    cell = (str, list, dict)
    writer.writerows([_csv_cell(v) if isinstance(v, cell) else v for v in row] for row in rows)
    return buf.getvalue()


def _whole(inputs: Any, make: Callable[[], str]) -> str:
    return make()


def data_files(
    summary: dict[str, Any], part: Callable[[Any, Callable[[], str]], str] = _whole
) -> dict[str, str]:
    """``data/*.json|csv``: the same numbers as the pages, for people and scripts.

    ``part(inputs, make)`` returns ``make()``, or what it returned before for the same inputs: the two
    long CSV files are assembled from one part per model.
    """
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

    def ds_rows(m: dict[str, Any]) -> list[list[Any]]:
        rows = []
        for track, subsets in m["datasets"].items():
            scopes = list(subsets.items()) + [("pooled", m["pooled"][track])]
            for subset, metrics in scopes:
                for metric, est in metrics.items():
                    rows.append(
                        [m["model"], m["base"], m["variant"], track, subset, metric]
                        + [est.get(k) for k in ("value", "lo", "hi", "n", "k")]
                    )
        return rows

    ds_parts = [
        part(
            ["datasets.csv", [m[k] for k in ("model", "base", "variant", "datasets", "pooled")]],
            lambda m=m: _csv(None, ds_rows(m)),
        )
        for m in summary["models"]
    ]

    cmp_header = [
        "base", "model", "variant", "reference_model", "reference_variant", "track", "subset", "metric",
        "test", "n", "b", "c", "p_value", "difference", "difference_lo", "difference_hi",
    ]  # fmt: skip

    def cmp_rows(group: list[dict[str, Any]]) -> list[list[Any]]:
        rows = []
        for c in group:
            diff = c.get("difference") or {}
            rows.append(
                [c.get(k) for k in cmp_header[:13]] + [diff.get("value"), diff.get("lo"), diff.get("hi")]
            )
        return rows

    groups: list[list[dict[str, Any]]] = []
    for c in summary["comparisons"]:  # consecutive rows of one variant
        if not groups or groups[-1][0]["model"] != c["model"]:
            groups.append([])
        groups[-1].append(c)
    cmp_parts = [part(["comparisons.csv", g], lambda g=g: _csv(None, cmp_rows(g))) for g in groups]

    run_keys = [
        "model", "task", "task_version", "timestamp", "date", "lm_eval_version", "model_sha",
        "model_revision", "chat_template_sha", "system_instruction_sha", "protocol", "grader",
        "data_source", "data_file", "data_sha256", "data_pinned_sha256_match", "n_questions", "limit",
        "results_file", "samples_file",
    ]  # fmt: skip
    run_rows = [[r.get(k) for k in run_keys] + ["current"] for m in summary["models"] for r in m["runs"]] + [
        [r.get(k) for k in run_keys] + ["superseded"] for m in summary["models"] for r in m["history"]
    ]

    # One line: json's indenting encoder is pure Python, ten times slower on a large leaderboard.
    return {
        "data/leaderboard.json": json.dumps(summary, ensure_ascii=False, allow_nan=False) + "\n",
        "data/main.csv": _csv(main_header, main_rows),
        "data/datasets.csv": _csv(ds_header, []) + "".join(ds_parts),
        "data/comparisons.csv": _csv(cmp_header, []) + "".join(cmp_parts),
        "data/runs.csv": _csv(run_keys + ["status"], run_rows),
    }


# ------------------------------------------------------------------------------------- pages
class _Reuse:
    """Rendered pages and plots by the digest of their inputs (in the store); renders what is not there."""

    def __init__(self, store: stores.Store | None) -> None:
        self.store = store
        self.rendered = 0

    def get(self, inputs: Any, render: Callable[[], str]) -> str:
        key = stores.value_digest([_CODE, inputs]) if self.store is not None else ""
        found = self.store.derived(key) if self.store is not None else None
        if found is not None:
            return found.decode("utf-8")
        self.rendered += 1
        text = render()
        if self.store is not None:
            self.store.put_derived(key, text.encode("utf-8"))
        return text


def _panels_inputs(panels: Sequence[plots.Panel]) -> list[Any]:
    return [
        [p.title, p.ylabel, list(p.groups), list(p.series), [[list(k), list(v)] for k, v in p.values.items()]]
        for p in panels
    ]


def _dataset_rows(summary: dict[str, Any], ds: dict[str, Any]) -> list[dict[str, Any]]:
    """The model rows a dataset page shows, with only that dataset's numbers."""
    rows = []
    for m in summary["models"]:
        mine = {t: {ds["subset"]: by[ds["subset"]]} for t, by in m["datasets"].items() if ds["subset"] in by}
        if mine:
            rows.append({k: m[k] for k in ("model", "slug", "label", "base", "variant")} | {"datasets": mine})
    return rows


def render_site(
    summary: dict[str, Any], writer: SiteWriter, title: str, store: stores.Store | None = None
) -> int:
    """Every page, plot and data file of the site, through ``writer``; returns how many pages and plots
    were rendered (the rest came from ``store``)."""
    env = _environment()
    reuse = _Reuse(store)
    css = (HERE / "static" / "leaderboard.css").read_text(encoding="utf-8")
    js = (HERE / "static" / "leaderboard.js").read_text(encoding="utf-8")
    common = {
        "title": title,
        "css": css,
        "js": js,
        "csp": (
            "default-src 'none'; img-src 'self'; "
            f"style-src {_csp_hash(css)}; script-src {_csp_hash(js)}; base-uri 'none'; form-action 'none'"
        ),
    }
    rows: dict[int, tuple[dict[str, Any], str]] = {}
    row_macro = env.get_template("macros.html").module.comparison_row  # type: ignore[attr-defined]

    def comparison_row(c: dict[str, Any]) -> str:
        """A comparison's row, rendered once: it is on the variant's page and on the reference's."""
        if id(c) not in rows:
            rows[id(c)] = (c, row_macro(c))  # c is kept, so its id is not reused during the build
        return rows[id(c)][1]

    env.globals["comparison_row"] = comparison_row
    frame = {k: summary[k] for k in _FRAME}
    shown = frame | {"tracks": summary["tracks"], "metrics": summary["metrics"]}

    def page(template: str, **context: Any) -> str:
        return reuse.get(
            [template, title, context],
            lambda: env.get_template(template).render(common, built=None, **context),
        )

    def plot(panels: Sequence[plots.Panel]) -> str:
        return reuse.get(["svg", _panels_inputs(panels)], lambda: plots.render_svg(panels))

    figures = []
    for name, track, panels in plots.figure_specs(summary):
        rel = f"plots/{name}.svg"
        writer.write(rel, plot(panels))
        figures.append({"src": rel, "title": f"{tasks.track_label(track)}: {panels[0].title}"})

    built = {"generated": summary["generated"], "results_files": summary["results_files"]}
    index = env.get_template("index.html").render(
        common, summary=summary, built=built, root="", figures=figures
    )
    writer.write("index.html", index)

    for ds in summary["datasets"]:
        specs = plots.figure_specs(summary, subset=ds["subset"], family=ds["family"])
        ds_figures = []
        for name, track, panels in specs:
            rel = f"plots/{ds['slug']}.{name}.svg"
            writer.write(rel, plot(panels))
            ds_figures.append({"src": "../" + rel, "title": tasks.track_label(track)})
        ds_summary = shown | {"models": _dataset_rows(summary, ds)}
        html = page("dataset.html", summary=ds_summary, root="../", dataset=ds, figures=ds_figures)
        writer.write(f"datasets/{ds['slug']}.html", html)

    by_model: dict[str, list[dict[str, Any]]] = {}
    for c in summary["comparisons"]:
        for who in dict.fromkeys((c["model"], c["reference_model"])):
            by_model.setdefault(who, []).append(c)
    for model in summary["models"]:
        mine = by_model.get(model["model"], [])
        html = page("model.html", summary=shown, root="../", model=model, comparisons=mine)
        writer.write(f"models/{model['slug']}.html", html)

    # The page lists each comparison once (pooled, or the only sub-dataset); per sub-dataset rows are on
    # the model pages and in data/comparisons.csv, which keeps this page small for large leaderboards.
    single = {t["id"] for t in summary["tracks"] if len(t["subsets"]) == 1}
    headline = [c for c in summary["comparisons"] if c["subset"] == "pooled" or c["track"] in single]
    html = page("comparisons.html", summary=frame | {"metrics": summary["metrics"]}, root="", rows=headline)
    writer.write("comparisons.html", html)
    for rel, text in data_files(summary, reuse.get).items():
        writer.write(rel, text)
    return reuse.rendered


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
    out_abs = out.resolve()
    for src in inputs:
        src_abs = Path(src).resolve()
        if src_abs == out_abs or src_abs.is_relative_to(out_abs):
            raise SiteError(f"{flag} {out} would replace {what} {src}; choose another folder")
    try:
        files.check_replaceable(out, TOOL, flag)
    except files.RefusedFolder as err:
        raise SiteError(str(err)) from None


def write_site(
    summary: dict[str, Any],
    out: Path,
    title: str,
    inputs: Sequence[Path] = (),
    store: stores.Store | None = None,
) -> list[str]:
    """Build the whole site in a temporary folder beside ``out``, then swap it in; returns the files."""
    out = Path(out)
    check_destination(out, inputs)
    with writing_dir(out) as tmp:
        writer = SiteWriter(tmp)
        render_site(summary, writer, title, store)
        writer.write(MANIFEST, _manifest(writer))
        files.mark_built(tmp, TOOL)
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
