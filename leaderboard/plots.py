"""The paper-style comparison plots (grouped bars with error bars), rendered to SVG with matplotlib.

One group of bars per base model, one bar per variant (e.g. instruct / aligned / aligned-SAA), as in
the paper's Figures 2-5: one figure per answer-suggestion template (the change in accuracy against
the no-suggestion baseline) and one for Are You Sure (the flip rate). Error bars are the intervals of
``summary`` (bootstrap for deltas, Wilson for rates).

Model names reach the SVG only as glyph outlines and XML-escaped comments; maths parsing is off, so a
name with ``$`` is drawn as typed instead of failing the build.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # no display on build machines; set before any backend is chosen
from matplotlib.backends.backend_svg import FigureCanvasSVG  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from lm_eval_tasks.sycophancy import prompts  # noqa: E402

from . import tasks  # noqa: E402

#: Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
_RC = {"svg.hashsalt": "syco-leaderboard", "text.parse_math": False, "svg.fonttype": "path", "font.size": 9}


@dataclass(frozen=True)
class Panel:
    """One axes: groups (base models) on x, one bar per series (variant) with an error bar."""

    title: str
    ylabel: str
    groups: Sequence[str]
    series: Sequence[str]
    #: (group, series) -> (value, lo, hi, n), in the units to draw
    values: dict[tuple[str, str], tuple[float, float | None, float | None, int]]


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def render_svg(panels: Sequence[Panel], suptitle: str = "") -> str:
    """A figure of side-by-side panels as an SVG document (deterministic: no date, fixed ids)."""
    n_groups = max((len(p.groups) for p in panels), default=1)
    n_series = max((len(p.series) for p in panels), default=1)
    width_per = min(max(3.2, 0.35 * n_groups * max(n_series, 1) + 1.2), 40.0)
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width_per * len(panels), 3.6 if n_groups < 8 else 4.6), layout="constrained")
        FigureCanvasSVG(fig)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, panel in zip(axes, panels, strict=True):
            _draw(ax, panel)
        if suptitle:
            fig.suptitle(suptitle)
        handles, labels = axes[0].get_legend_handles_labels()
        if len(labels) > 1:
            fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), frameon=False)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": "syco-leaderboard"})
    return buf.getvalue()


def _draw(ax, panel: Panel) -> None:
    n_series = max(len(panel.series), 1)
    width = 0.8 / n_series
    for j, series in enumerate(panel.series):
        xs, heights, err_lo, err_hi = [], [], [], []
        for i, group in enumerate(panel.groups):
            cell = panel.values.get((group, series))
            if cell is None:
                continue
            value, lo, hi, _ = cell
            xs.append(i - 0.4 + width * (j + 0.5))
            heights.append(value)
            err_lo.append(value - lo if lo is not None else 0.0)
            err_hi.append(hi - value if hi is not None else 0.0)
        if not xs:
            continue
        ax.bar(
            xs,
            heights,
            width=width * 0.92,
            color=PALETTE[j % len(PALETTE)],
            label=_short(series),
            yerr=[err_lo, err_hi],
            capsize=3 if len(panel.groups) < 20 else 0,
            error_kw={"elinewidth": 1, "ecolor": "#333333"},
        )
    ax.axhline(0, color="#555555", linewidth=0.8)
    ax.set_xticks(range(len(panel.groups)), [_short(g) for g in panel.groups])
    if len(panel.groups) > 3 or any(len(g) > 12 for g in panel.groups):
        ax.tick_params(axis="x", labelrotation=35)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    ax.set_xlim(-0.6, len(panel.groups) - 0.4)
    ax.set_ylabel(panel.ylabel)
    ax.set_title(panel.title, fontsize=9, wrap=True)
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


# ------------------------------------------------------------------------------ figures of a site
def _cell(est: dict | None) -> tuple[float, float | None, float | None, int] | None:
    if not est or est.get("value") is None:
        return None
    scale = 100.0
    lo, hi = est.get("lo"), est.get("hi")
    return (
        est["value"] * scale,
        lo * scale if lo is not None else None,
        hi * scale if hi is not None else None,
        int(est.get("n") or 0),
    )


def _panel(summary: dict, track: str, metric: str, title: str, ylabel: str, subset: str | None) -> Panel:
    groups: list[str] = []
    values: dict[tuple[str, str], tuple[float, float | None, float | None, int]] = {}
    for model in summary["models"]:
        if subset is None:
            est = model["pooled"].get(track, {}).get(metric)
        else:
            est = model["datasets"].get(track, {}).get(subset, {}).get(metric)
        cell = _cell(est)
        if cell is None:
            continue
        if model["base"] not in groups:
            groups.append(model["base"])
        values[(model["base"], model["variant"])] = cell
    series = [v for v in summary["variants"] if any(key[1] == v for key in values)]
    return Panel(title, ylabel, groups, series, values)


def _template_title(label: str, template: str) -> str:
    wording = template.replace("{question} ", "").replace("{correct_answer}", "[correct]")
    return f"{label}\n\u201c{wording.replace('{incorrect_answer}', '[incorrect]')}\u201d"


def figure_specs(
    summary: dict, subset: str | None = None, family: str | None = None
) -> list[tuple[str, str, list[Panel]]]:
    """(name, track id, panels) of the figures to draw: the whole leaderboard, or one dataset when ``subset``.

    Names are built from the catalogue (track ids and metric names), never from input strings.
    """
    specs: list[tuple[str, str, list[Panel]]] = []
    for track in summary["tracks"]:
        if family is not None and track["family"] != family:
            continue
        if subset is not None and subset not in track["subsets"]:
            continue
        label = track["label"]
        if track["family"] == tasks.ANSWER:
            panels = [
                _panel(
                    summary,
                    track["id"],
                    f"delta_{cond}",
                    _template_title(
                        tasks.metric(tasks.ANSWER, f"delta_{cond}").label, prompts.ANSWER_TEMPLATES[cond]
                    ),
                    "\u0394 accuracy vs. no suggestion (pp)",
                    subset,
                )
                for cond in tasks.TEMPLATE_CONDITIONS
            ]
            if subset is None:  # the paper gives each template its own figure
                for cond, panel in zip(tasks.TEMPLATE_CONDITIONS, panels, strict=True):
                    specs.append((f"{track['id']}.delta_{cond}", track["id"], [panel]))
            else:
                specs.append((track["id"], track["id"], panels))
        else:
            flip = tasks.headline_flip(track["id"])
            ylabel = f"{tasks.metric(tasks.AYS, flip).label} (%)"
            panel = _panel(summary, track["id"], flip, f"Are you sure? ({label})", ylabel, subset)
            specs.append((f"{track['id']}.{flip}", track["id"], [panel]))
    return [spec for spec in specs if any(p.values for p in spec[2])]
