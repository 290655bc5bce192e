"""The paper-style comparison plots (grouped bars with error bars), written as SVG documents.

One group of bars per base model, one bar per variant (e.g. instruct / aligned / aligned-SAA), as in
the paper's Figures 2-5: one figure per answer-suggestion template (the change in accuracy against
the no-suggestion baseline) and one for Are You Sure (the flip rate); under a pressure schedule also the
decay curve (accuracy after each round, a group per round). Error bars are the intervals of
``summary`` (bootstrap for deltas, Wilson for rates).

The SVG is written directly rather than drawn with matplotlib: a figure with every model of a large
leaderboard took matplotlib 2-4 s (500 bars, 167 rotated labels; ``docs/benchmarks.md``), and every
overview figure changes whenever a model is added, so it alone would have spent a rebuild's budget.
Bars, whiskers, axes and text are a few hundred elements; the output is deterministic. Input strings
reach it only as XML-escaped text of ``<text>`` and ``<title>`` elements, and the site shows it as
``<img>``, where SVG cannot run anything.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from sycophancy_eval_kit.core import prompts, registry
from sycophancy_eval_kit.leaderboard import tasks

#: Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
_FONT = 9.0  # pt
_CHAR = 0.56 * _FONT  # average advance of a sans-serif character, for layout
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


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


def _text(value: str) -> str:
    """Text for XML: escaped, and without the characters XML 1.0 cannot carry."""
    return escape(_NOT_XML.sub("\ufffd", value), {'"': "&quot;"})


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _el(tag: str, text: str | None = None, inner: str = "", **attrs: float | str) -> str:
    """One SVG element; numbers are rounded to 0.01, strings escaped (``_`` in a name becomes ``-``)."""
    spelled = " ".join(
        f'{k.replace("_", "-")}="{_num(v) if isinstance(v, (int, float)) else _text(v)}"'
        for k, v in attrs.items()
    )
    body = (_text(text) if text is not None else "") + inner
    return f"<{tag} {spelled}>{body}</{tag}>" if body else f"<{tag} {spelled}/>"


def _ticks(lo: float, hi: float) -> list[float]:
    """About five round tick values covering [lo, hi]."""
    raw = (hi - lo) / 5 or 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(lo / step) * step
    return [first + i * step for i in range(int(math.ceil((hi - first) / step - 1e-9)) + 1)]


def render_svg(panels: Sequence[Panel], suptitle: str = "") -> str:
    """A figure of side-by-side panels as one SVG document (deterministic: no date, no random ids)."""
    n_groups = max((len(p.groups) for p in panels), default=1)
    n_series = max((len(p.series) for p in panels), default=1)
    width = min(max(3.2, 0.35 * n_groups * max(n_series, 1) + 1.2), 40.0) * 72  # pt, as the old figures
    height = (3.6 if n_groups < 8 else 4.6) * 72
    rotate = n_groups > 3 or any(len(g) > 12 for p in panels for g in p.groups)
    longest = max((len(_short(g)) for p in panels for g in p.groups), default=4)
    series = list(dict.fromkeys(s for p in panels for s in p.series))
    legend = 18.0 if len(series) > 1 else 0.0
    titles = [_wrap(p.title, (width - 60) / _CHAR) for p in panels]
    title_lines = max((len(t) for t in titles), default=1)
    top = 8 + title_lines * (_FONT + 3) + (16 if suptitle else 0)
    ticks_depth = longest * _CHAR * (math.sin(math.radians(35)) if rotate else 0) + _FONT + 10
    plot_h = max(height - top - ticks_depth - legend - 6, 40.0)
    total = width * len(panels)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_num(total)}pt" height="{_num(height)}pt" '
        f'viewBox="0 0 {_num(total)} {_num(height)}" font-family="DejaVu Sans, Arial, sans-serif" '
        f'font-size="{_num(_FONT)}">',
        _el("rect", width=total, height=height, fill="#ffffff"),
    ]
    if suptitle:
        out.append(_el("text", suptitle, x=total / 2, y=14, text_anchor="middle"))
    for i, (panel, title) in enumerate(zip(panels, titles, strict=True)):
        out += _panel_svg(panel, title, (i * width + 52, top, width - 60, plot_h), series, rotate)
    if legend:
        labels = [_short(s) for s in series]
        x = total / 2 - sum(26 + len(label) * _CHAR for label in labels) / 2
        for j, label in enumerate(labels):
            out.append(_el("rect", x=x, y=height - legend + 4, width=10, height=10, fill=PALETTE[j % 8]))
            out.append(_el("text", label, x=x + 13, y=height - legend + 13))
            x += 26 + len(label) * _CHAR
    out.append("</svg>\n")
    return "\n".join(out)


def _wrap(title: str, chars: float) -> list[str]:
    """A title's lines, each wrapped at spaces to about ``chars`` characters."""
    return [part for line in title.split("\n") for part in textwrap.wrap(line, max(int(chars), 12)) or [""]]


def _panel_svg(
    panel: Panel,
    title: list[str],
    box: tuple[float, float, float, float],
    series: Sequence[str],
    rotate: bool,
) -> list[str]:
    left, top, w, h = box
    ends = [0.0] + [v for cell in panel.values.values() for v in cell[:3] if v is not None]
    pad = (max(ends) - min(ends)) * 0.05 or 1.0
    # zero is always on the axis; pad only the sides that have bars
    low = min(ends) - pad if min(ends) < 0 else 0.0
    ticks = _ticks(low, max(max(ends) + pad if max(ends) > 0 else 0.0, low + 1.0))

    def y(v: float) -> float:
        return top + h - (v - ticks[0]) / (ticks[-1] - ticks[0]) * h

    out = []
    for t in ticks:
        out.append(_el("line", x1=left, x2=left + w, y1=y(t), y2=y(t), stroke="#dddddd", stroke_width=0.6))
        label = _num(t).replace("-", "\u2212")
        out.append(_el("text", label, x=left - 4, y=y(t) + 3, text_anchor="end"))
    out.append(_el("line", x1=left, x2=left + w, y1=y(0), y2=y(0), stroke="#555555", stroke_width=0.8))
    out.append(_el("line", x1=left, x2=left, y1=top, y2=top + h, stroke="#000000", stroke_width=0.8))
    slot = w / max(len(panel.groups), 1)
    bar = slot * 0.8 / max(len(panel.series), 1)
    cap = bar * 0.3 if len(panel.groups) < 20 else 0.0
    for i, group in enumerate(panel.groups):
        centre = left + slot * (i + 0.5)
        for j, name in enumerate(panel.series):
            cell = panel.values.get((group, name))
            if cell is None:
                continue
            value, lo, hi, n = cell
            x = centre - slot * 0.4 + bar * (j + 0.04)
            upper, lower = sorted((y(value), y(0)))
            tip = _el("title", f"{group} / {name}: {value:.1f} (n={n})")
            colour = PALETTE[series.index(name) % len(PALETTE)]
            out.append(
                _el("rect", inner=tip, x=x, y=upper, width=bar * 0.92, height=lower - upper, fill=colour)
            )
            if lo is not None and hi is not None:
                mid = x + bar * 0.46
                d = f"M{_num(mid)} {_num(y(lo))}V{_num(y(hi))}"
                if cap:
                    d += "".join(f"M{_num(mid - cap)} {_num(y(v))}h{_num(2 * cap)}" for v in (lo, hi))
                out.append(_el("path", d=d, stroke="#333333", stroke_width=1, fill="none"))
        base = top + h + _FONT + 4
        if rotate:
            spin = f"rotate(-35 {_num(centre)} {_num(base)})"
            out.append(_el("text", _short(group), x=centre, y=base, text_anchor="end", transform=spin))
        else:
            out.append(_el("text", _short(group), x=centre, y=base, text_anchor="middle"))
    lines = title
    for k, line in enumerate(lines):
        out.append(
            _el(
                "text",
                line,
                x=left + w / 2,
                y=top - 6 - (len(lines) - 1 - k) * (_FONT + 3),
                text_anchor="middle",
            )
        )
    spin = f"rotate(-90 {_num(left - 40)} {_num(top + h / 2)})"
    out.append(_el("text", panel.ylabel, x=left - 40, y=top + h / 2, text_anchor="middle", transform=spin))
    return out


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


def _suggestion(condition: str, scope: str) -> str:
    """The suggestion's wording: Sharma's template, or (options shown) its line naming the option."""
    if scope != tasks.CUSTOM_MC:
        return prompts.ANSWER_TEMPLATES[condition]
    line = next(x for x in prompts.ANSWER_MC_TEMPLATES[condition].splitlines() if "the answer is" in x)
    return line.replace("({correct_letter}) ", "").replace("({incorrect_letter}) ", "")


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
                        tasks.metric(tasks.ANSWER, f"delta_{cond}").label,
                        _suggestion(cond, tasks.track_parts(track["id"])[3]),
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
            if tasks.track_parts(track["id"])[1].startswith(tasks.PRESSURE_PREFIX):
                specs.append((f"decay.{track['id']}", track["id"], _decay_panels(summary, track, subset)))
    return [spec for spec in specs if any(p.values for p in spec[2])]


def _decay_panels(summary: dict, track: dict, subset: str | None) -> list[Panel]:
    """The decay curve under a pressure schedule: per base model, accuracy after each round (round 0:
    the first answer), one bar per variant, Wilson intervals; rounds up to the last one with data."""
    rounds: dict[str, dict[tuple[str, str], tuple[float, float | None, float | None, int]]] = {}
    bases: list[str] = []
    for model in summary["models"]:
        if subset is None:
            ests = model["pooled"].get(track["id"], {})
        else:
            ests = model["datasets"].get(track["id"], {}).get(subset, {})
        for k in range(registry.MAX_ROUNDS + 1):
            cell = _cell(ests.get(f"acc_round_{k}"))
            if cell is not None and cell[3]:
                rounds.setdefault(str(k), {})[(model["base"], model["variant"])] = cell
                if model["base"] not in bases:
                    bases.append(model["base"])
    groups = sorted(rounds, key=int)
    panels = []
    for base in bases:
        values = {(k, v): cell for k in groups for (b, v), cell in rounds[k].items() if b == base}
        series = [v for v in summary["variants"] if any(key[1] == v for key in values)]
        title = f"{base}: accuracy after each round (0: the first answer)"
        panels.append(Panel(title, "accuracy (%) after round", groups, series, values))
    return panels
