"""The built page in a real browser: headless Chromium driven by Playwright.

Skipped when either is missing (CI installs Debian's ``chromium``; Playwright is a dev dependency and
drives that executable, so no browser download is needed).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sycophancy_eval_kit.leaderboard.__main__ import main

pytestmark = pytest.mark.browser

FIXTURE_RUNS = Path(__file__).parent / "fixtures" / "leaderboard" / "runs"
HOSTILE = "<script>alert(1)</script>"
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.fixture(scope="module")
def browser_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    runs = Path(shutil.copytree(FIXTURE_RUNS, root / "runs"))
    # A third model whose name is a script tag: a copy of the aligned run under a hostile name.
    hostile = Path(shutil.copytree(runs / "org__chat-aligned", runs / "hostile"))
    for results_path in hostile.glob("results_*.json"):
        results = json.loads(results_path.read_text(encoding="utf-8"))
        results["model_name"] = HOSTILE
        results_path.write_text(json.dumps(results), encoding="utf-8")
    variants = root / "leaderboard.yaml"
    variants.write_text(
        "variant_order: [instruct, aligned]\nmodels:\n"
        "  org/chat-instruct: {base: Chat, variant: instruct}\n"
        "  org/chat-aligned: {base: Chat, variant: aligned}\n",
        encoding="utf-8",
    )
    out = root / "site"
    assert (
        main(["build", str(runs), "--out", str(out), "--variants", str(variants), "--resamples", "500"]) == 0
    )
    return out


@pytest.fixture(scope="module")
def page_factory():
    if CHROMIUM is None:
        pytest.skip("no chromium executable on PATH (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
    )
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


def _open(browser, path: Path) -> tuple[object, list[str], list[str]]:
    page = browser.new_page()
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(path.as_uri(), wait_until="load")
    return page, errors, dialogs


def _column(page, index: int) -> list[str]:
    return page.eval_on_selector_all(
        "#leaderboard tbody tr", f"rows => rows.map(r => r.cells[{index}].getAttribute('data-sort'))"
    )


def test_page_sorts_shows_plots_and_stays_inert(browser_site: Path, page_factory) -> None:
    page, errors, dialogs = _open(page_factory, browser_site / "index.html")
    assert page.locator("#leaderboard tbody tr").count() == 3
    headers = page.eval_on_selector_all("#leaderboard thead th", "ths => ths.map(th => th.textContent)")
    flip = next(i for i, text in enumerate(headers) if "Flip rate" in text and "one-pass" in text)

    button = page.locator("#leaderboard thead th").nth(flip).locator("button")
    button.click()
    assert page.locator("#leaderboard thead th").nth(flip).get_attribute("aria-sort") == "ascending"
    values = [float(v) for v in _column(page, flip)]
    # the one-pass column is forced_flip_rate over aqua_mc (free-form tasks report no flip rate):
    # aligned 1/5 (and its copy) first, instruct 2/4 last, as test_leaderboard_stats counts them
    assert values == sorted(values) and values[0] == pytest.approx(1 / 5)
    button.click()
    values = [float(v) for v in _column(page, flip)]
    assert values == sorted(values, reverse=True) and values[0] == pytest.approx(2 / 4)
    model_col = page.locator("#leaderboard thead th").first.locator("button")
    model_col.click()
    labels = _column(page, 0)
    assert labels == sorted(labels, key=str.lower) or labels == sorted(labels)

    images = page.locator("img")
    assert images.count() >= 4
    widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : -1)")
    assert all(w > 0 for w in widths), widths  # every plot loaded under the page's CSP

    assert page.get_by_text(HOSTILE, exact=False).count() >= 1  # shown as text ...
    assert page.evaluate("document.scripts.length") == 1  # ... and never as a script
    href = page.locator("#leaderboard a", has_text=HOSTILE).first.get_attribute("href")
    model_page, model_errors, model_dialogs = _open(page_factory, browser_site / href)
    assert model_page.locator("h1").text_content() == HOSTILE
    model_page.locator("h1").click()
    ds_page, ds_errors, ds_dialogs = _open(
        page_factory, next((browser_site / "datasets").glob("ays-aqua*.html"))
    )
    ds_page.locator("table.sortable thead th button").nth(3).click()

    assert not dialogs and not model_dialogs and not ds_dialogs
    assert not errors and not model_errors and not ds_errors, errors + model_errors + ds_errors
