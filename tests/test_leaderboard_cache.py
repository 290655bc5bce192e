"""The build cache: reused while every input stands; changed, deleted or damaged inputs are read again."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from sycophancy_eval_kit.leaderboard import cache as build_cache
from sycophancy_eval_kit.leaderboard import ingest as ingest_module
from sycophancy_eval_kit.leaderboard import plots, site
from sycophancy_eval_kit.leaderboard.__main__ import main
from sycophancy_eval_kit.leaderboard.cache import BuildCache, CacheError
from sycophancy_eval_kit.leaderboard.ingest import ingest

FIXTURE_RUNS = Path(__file__).parent / "fixtures" / "leaderboard" / "runs"
STAMP = "2025-01-15T10-00-00.000000"
AQUA = "sycophancy_ays_aqua_mc"


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURE_RUNS, tmp_path / "runs"))


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files a test has just written count as settled (the racy window is tested on its own)."""
    monkeypatch.setattr(build_cache, "RACY_NS", 0)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every samples file the ingest actually opens."""
    seen: list[Path] = []
    real = ingest_module._samples_matrix

    def counting(path: Path, task):
        seen.append(path)
        return real(path, task)

    monkeypatch.setattr(ingest_module, "_samples_matrix", counting)
    return seen


def _state(result) -> list:
    """Everything a run contributes, in a comparable form."""
    return sorted(
        (
            r.model,
            r.task.name,
            r.timestamp,
            json.dumps(r.provenance, sort_keys=True),
            json.dumps(r.reported, sort_keys=True),
            r.ids,
            json.dumps({k: v.tolist() for k, v in r.values.items()}),
        )
        for r in result.runs
    ) + sorted(str(p) for p in result.problems)


def _aligned(runs: Path) -> Path:
    return runs / "org__chat-aligned" / f"samples_{AQUA}_{STAMP}.jsonl"


def test_unchanged_inputs_are_not_read_again(runs: Path, tmp_path: Path, settled, reads) -> None:
    cache = BuildCache(tmp_path / "cache")
    cold = ingest([runs], cache=BuildCache(tmp_path / "cache"))
    opened = len(reads)
    assert opened == len(list(runs.glob("*/samples_*.jsonl")))
    warm = ingest([runs], cache=cache)
    assert len(reads) == opened  # nothing opened again
    assert _state(warm) == _state(cold) == _state(ingest([runs]))  # and nothing differs from no cache
    assert {r.digest for r in warm.runs} == {r.digest for r in cold.runs} and None not in {
        r.digest for r in warm.runs
    }


def test_a_changed_samples_file_is_read_again(runs: Path, tmp_path: Path, settled, reads) -> None:
    cache = BuildCache(tmp_path / "cache")
    ingest([runs], cache=cache)
    path = _aligned(runs)
    stat = path.stat()
    lines = path.read_bytes().split(b"\n")
    # Same length, same mtime as before: only the ctime (which no one can set back) tells.
    lines[0] = lines[0].replace(b'"unparsed_rate": 0', b'"unparsed_rate": 1')
    path.write_bytes(b"\n".join(lines))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    reads.clear()
    result = ingest([runs], cache=cache)
    # the unit of reuse is a results file: its samples files are read again, no one else's
    assert path in reads and {p.parent for p in reads} == {path.parent}
    # unparsed_rate changed on one question, so the samples no longer reproduce the results file
    assert any(str(runs / "org__chat-aligned") in str(p) and "averages" in str(p) for p in result.problems)
    assert (AQUA, "org/chat-aligned") not in {(r.task.name, r.model) for r in result.runs}


def test_truncated_after_caching_is_an_error_not_the_cached_run(runs: Path, tmp_path: Path, settled) -> None:
    cache = BuildCache(tmp_path / "cache")
    every = len(ingest([runs], cache=cache).runs)
    path = _aligned(runs)
    path.write_bytes(path.read_bytes()[:-60])  # an interrupted copy
    result = ingest([runs], cache=cache)
    assert len(result.runs) == every - 1
    assert any(f"{path}:6: not valid JSON" in str(p) for p in result.problems)


def test_deleted_runs_and_files_leave_nothing_behind(runs: Path, tmp_path: Path, settled) -> None:
    cache = BuildCache(tmp_path / "cache")
    every = len(ingest([runs], cache=cache).runs)
    _aligned(runs).unlink()
    result = ingest([runs], cache=cache)
    assert any(f"no samples_{AQUA}_{STAMP}.jsonl" in str(p) for p in result.problems)
    assert len(result.runs) == every - 1
    shutil.rmtree(runs / "org__chat-aligned")
    result = ingest([runs], cache=cache)
    assert {r.model for r in result.runs} == {"org/chat-instruct"} and not result.problems
    # the deleted runs' entries and stored values are gone from the cache too
    index = json.loads((tmp_path / "cache" / ingest_module.INGEST_INDEX).read_text())["entries"]
    assert len(index) == 1
    stored = {p.name for p in (tmp_path / "cache" / "values").glob("*/*")}
    assert stored == {r.digest for r in result.runs}


def test_files_changed_just_before_caching_are_read_again(runs: Path, tmp_path: Path, reads) -> None:
    # Without the settled fixture: every fixture file was written moments ago, within the racy window,
    # so a same-tick rewrite could keep its signature; the cache must not trust such an entry.
    cache = BuildCache(tmp_path / "cache")
    ingest([runs], cache=cache)
    ingest([runs], cache=cache)
    assert len(reads) == 2 * len(list(runs.glob("*/samples_*.jsonl")))


def test_a_damaged_cache_is_ignored_or_named(runs: Path, tmp_path: Path, settled, reads) -> None:
    root = tmp_path / "cache"
    expected = _state(ingest([runs], cache=BuildCache(root)))
    (root / ingest_module.INGEST_INDEX).write_text("{not json", encoding="utf-8")
    assert _state(ingest([runs], cache=BuildCache(root))) == expected  # unreadable index: read again
    assert len(reads) == 2 * len(list(runs.glob("*/samples_*.jsonl")))
    # A stored value changed in place (same size): caught when the run's values are loaded.
    warm = ingest([runs], cache=BuildCache(root))
    run = warm.runs[0]
    blob = next((root / "values").glob(f"*/{run.digest}"))
    raw = bytearray(blob.read_bytes())
    raw[0:8] = np.float64(0.5).tobytes()
    blob.write_bytes(bytes(raw))
    with pytest.raises(CacheError, match="delete the cache folder"):
        _ = run.values


def test_cache_folder_beside_the_site_and_flags(runs: Path, tmp_path: Path, settled) -> None:
    out = tmp_path / "site"
    assert main(["build", str(runs), "--out", str(out), "--resamples", "200"]) == 0
    cache_root = tmp_path / ".site.cache"
    assert build_cache.default_cache_dir(out) == cache_root and (cache_root / "ingest.json").is_file()
    assert not any(p.name.endswith(".cache") for p in out.iterdir())  # never part of the published site
    mine = tmp_path / "elsewhere"
    assert main(["build", str(runs), "--out", str(out), "--resamples", "200", "--cache_dir", str(mine)]) == 0
    assert (mine / "ingest.json").is_file()
    shutil.rmtree(cache_root)
    assert main(["build", str(runs), "--out", str(out), "--resamples", "200", "--no_cache"]) == 0
    assert not cache_root.exists()
    assert main(["build", str(runs), "--out", str(out), "--cache_dir", str(out / "c")]) == 1


def _site_files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def _leaderboard(out: Path) -> dict:
    summary = json.loads((out / "data" / "leaderboard.json").read_text(encoding="utf-8"))
    summary.pop("generated")
    return summary


def test_rebuild_reuses_pages_and_is_deterministic(
    runs: Path, tmp_path: Path, settled, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "site"
    argv = ["build", str(runs), "--out", str(out), "--resamples", "500", "--seed", "3"]
    drawn: list[str] = []
    real = plots.render_svg
    monkeypatch.setattr(plots, "render_svg", lambda panels: drawn.append(panels[0].title) or real(panels))
    templates: list[str] = []
    real_template = site._Environment.get_template
    monkeypatch.setattr(
        site._Environment,
        "get_template",
        lambda env, name, *rest: templates.append(name) or real_template(env, name, *rest),
    )
    assert main(argv) == 0
    first = _site_files(out)
    assert drawn and "model.html" in templates
    drawn.clear()
    templates.clear()
    assert main(argv) == 0  # nothing changed: every plot and every page but index.html is reused
    assert drawn == [] and set(templates) == {"index.html", "base.html", "macros.html"}
    second = _site_files(out)
    changed = {rel for rel in first if first[rel] != second.get(rel)}
    assert changed <= {"index.html", "data/leaderboard.json", "manifest.json"}
    assert _leaderboard(out) == json.loads(
        json.dumps(_leaderboard(out))
    )  # JSON round trip: cached statistics are plain JSON values
    cached_numbers = _leaderboard(out)
    # The same build without any cache: the same numbers (same seed, same estimator)
    fresh = tmp_path / "fresh"
    assert main(argv[:3] + [str(fresh)] + argv[4:] + ["--no_cache"]) == 0
    assert _leaderboard(fresh) == cached_numbers
    # Another seed moves the bootstrap intervals: the seed is part of every cached statistic's key.
    other = tmp_path / "other"
    assert main(argv[:3] + [str(other), "--resamples", "500", "--seed", "4"]) == 0
    assert _leaderboard(other) != cached_numbers


def test_adding_a_run_renders_only_what_it_touches(runs: Path, tmp_path: Path, settled) -> None:
    out = tmp_path / "site"
    argv = ["build", str(runs), "--out", str(out), "--resamples", "200"]
    assert main(argv) == 0
    before = _site_files(out)
    # a third model: a copy of the instruct runs under another name
    new = runs / "org__chat-new"
    shutil.copytree(runs / "org__chat-instruct", new)
    for path in new.glob("results_*.json"):
        doc = json.loads(path.read_text(encoding="utf-8"))
        doc["model_name"] = "org/chat-new"
        path.write_text(json.dumps(doc), encoding="utf-8")
    assert main(argv) == 0
    after = _site_files(out)
    new_pages = set(after) - set(before)
    assert len([p for p in new_pages if p.startswith("models/")]) == 1
    for rel in before:
        if rel.startswith("models/"):  # the other models' pages do not change: they are reused
            assert after[rel] == before[rel], rel


@pytest.mark.parametrize("cached", [False, True])
def test_reading_in_worker_processes_changes_nothing(
    runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cached: bool
) -> None:
    expected = _state(ingest([runs]))
    monkeypatch.setattr(ingest_module, "PARALLEL_MIN", 1)
    monkeypatch.setattr(ingest_module.os, "cpu_count", lambda: 2)
    cache = BuildCache(tmp_path / "cache") if cached else None
    result = ingest([runs], cache=cache)
    assert _state(result) == expected
    assert all(r._arrays is not None for r in result.runs)  # values came back with the runs
    same_questions = [r.ids for r in result.runs if r.task.name == AQUA]
    assert len(same_questions) == 2 and same_questions[0] is same_questions[1]  # one shared tuple
