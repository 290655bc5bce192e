"""The leaderboard under faults: interrupted site replacements, unwritable places, a failed upload,
malformed options and NaN aggregates. Each ends in a clear message, never a traceback, and an
interrupted replacement is repaired by the next run. Built from the hand-made runs (no model runs).
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pytest

from sycophancy_eval_kit.core import files
from sycophancy_eval_kit.leaderboard.__main__ import main
from sycophancy_eval_kit.leaderboard.ingest import ingest
from sycophancy_eval_kit.leaderboard.publish import publish_to_dir, verify_site

REPO = Path(__file__).resolve().parents[1]
STAMP = "2025-01-15T10-00-00.000000"


def _build(runs: Path, out: Path, *extra: str) -> int:
    return main(["build", str(runs), "--out", str(out), "--resamples", "200", *extra])


#: builds the site in a child that SIGKILLs itself between the two renames of the replacement.
KILL_CHILD = r"""
import os, signal, sys
from sycophancy_eval_kit.core import files
files.exchange_paths = lambda a, b: False  # the two-rename fallback, whose window a kill can hit
real = os.rename
def rename(src, dst):
    real(src, dst)
    if ".old-" in str(dst):
        os.kill(os.getpid(), signal.SIGKILL)
os.rename = rename
from sycophancy_eval_kit.leaderboard.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_rerun_restores_a_site_a_killed_build_moved_aside(
    runs: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site = tmp_path / "site"
    assert _build(runs, site, "--title", "first") == 0
    child = [sys.executable, "-c", KILL_CHILD, "build", str(runs), "--out", str(site), "--resamples", "200"]
    assert subprocess.run(child, cwd=REPO, timeout=300).returncode == -signal.SIGKILL
    assert not site.exists()  # the previous site is under a hidden .old- name
    with caplog.at_level(logging.WARNING):
        assert _build(runs, site, "--title", "second") == 0
    assert "restored the previous copy" in caplog.text
    assert "second" in (site / "index.html").read_text(encoding="utf-8")
    # no half-written or moved-aside copy is left; the store beside the site is by design
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs", "site", "site.duckdb"]


def test_publish_repairs_an_interrupted_replacement_of_its_destination(runs: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    assert _build(runs, site) == 0
    dest = tmp_path / "www"
    aside = tmp_path / f".www{files.OLD_TAG}killed"  # what a kill between the renames leaves
    shutil.copytree(site, aside)
    (tmp_path / f".www{files.TMP_TAG}killed").mkdir()
    publish_to_dir(site, dest)
    verify_site(dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs", "site", "site.duckdb", "www"]


def test_an_unwritable_out_is_a_clear_error(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    assert _build(runs, tmp_path / "a-file" / "site") == 1
    err = capsys.readouterr().err
    # the store beside the site is the first thing written, so it is the one named
    assert "cannot open the store" in err and "a-file" in err and "--no_store" in err
    assert _build(runs, tmp_path / "a-file" / "site", "--no_store") == 1
    err = capsys.readouterr().err
    assert "cannot write the site there" in err and "a-file" in err
    site = tmp_path / "site"
    assert _build(runs, site) == 0
    assert main(["publish", str(site), "--to", str(tmp_path / "a-file" / "www")]) == 1
    assert "cannot write the site there" in capsys.readouterr().err


class _OfflineApi:
    def __init__(self, **kwargs: object) -> None:
        pass

    def create_repo(self, *args: object, **kwargs: object) -> None:
        raise ConnectionError("Failed to resolve 'huggingface.co'")


def test_a_failed_upload_is_a_clear_error(
    runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site"
    assert _build(runs, site) == 0
    monkeypatch.setattr(huggingface_hub, "HfApi", _OfflineApi)
    assert main(["publish", str(site), "--hf_repo", "org/board"]) == 1
    err = capsys.readouterr().err
    assert "the upload to space org/board failed (ConnectionError" in err and f"the site at {site}" in err
    assert main(["publish", str(site), "--hf_repo", "not a repo", "--dry_run"]) == 1
    assert "--hf_repo 'not a repo'" in capsys.readouterr().err


def test_malformed_options_and_files_are_clear_errors(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    variants = tmp_path / "leaderboard.yaml"
    variants.write_bytes(b"models:\n  org/chat-aligned: {base: Chat, variant: \xff}\n")
    assert _build(runs, tmp_path / "site", "--variants", str(variants)) == 1
    assert f"{variants}:2: not UTF-8 text" in capsys.readouterr().err
    assert _build(runs, tmp_path / "site", "--variants", str(tmp_path / "missing.yaml")) == 1
    assert "missing.yaml: file not found" in capsys.readouterr().err
    assert main(["build", str(runs), "--out", str(tmp_path / "site"), "--resamples", "10"]) == 1
    assert "--resamples 10: expected at least 100" in capsys.readouterr().err


def test_a_nan_aggregate_says_what_happened(runs: Path) -> None:
    results_path = runs / "org__chat-aligned" / f"results_{STAMP}.json"
    results = json.loads(results_path.read_text(encoding="utf-8"))
    results["results"]["sycophancy_ays_aqua_mc"]["acc_first,none"] = float("nan")
    results["results"]["sycophancy_ays_trivia_qa"]["acc_first,none"] = "0.5"
    results_path.write_text(json.dumps(results), encoding="utf-8")  # json writes a bare NaN, as lm-eval does
    messages = [str(p) for p in ingest([runs]).problems]
    assert any(
        "sycophancy_ays_aqua_mc: reports acc_first,none = nan (lm-eval's value for a metric with no question "
        "to average over), but its samples file has acc_first on 6 questions" in m
        for m in messages
    )
    assert any(
        "sycophancy_ays_trivia_qa: acc_first,none = '0.5'; expected a finite number" in m for m in messages
    )
    assert not any("no 'acc_first,none'" in m for m in messages)


def test_a_negative_seed_and_a_damaged_manifest_are_clear_errors(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site"
    assert _build(runs, site, "--seed", "-1") == 1
    assert "--seed -1: expected a non-negative integer" in capsys.readouterr().err
    assert _build(runs, site) == 0
    manifest = site / "manifest.json"
    manifest.write_bytes(b'{"files": {"index.html": "\xff"}}\n')
    assert main(["publish", str(site), "--to", str(tmp_path / "www")]) == 1
    assert f"unreadable manifest: {manifest}:1: not UTF-8 text" in capsys.readouterr().err
    manifest.write_text('{"files": ["index.html"]}\n', encoding="utf-8")
    assert main(["publish", str(site), "--to", str(tmp_path / "www")]) == 1
    assert "expected {'files': {path: sha256}}" in capsys.readouterr().err
    assert _build(runs, site) == 0
    capsys.readouterr()
    assert main(["publish", str(site), "--to", str(site)]) == 1
    assert f"--to {site} would replace the site being published" in capsys.readouterr().err


def test_runs_of_different_task_versions_are_never_ranked_together(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One model's aqua_mc run at task version 1.0 beside the others' 2.0 (the task README says 2.0
    scores are not comparable with 1.0): left out with a warning naming it, an error under --strict.
    Before, it was ranked beside the 2.0 runs without a word, even with --strict."""
    (results,) = (runs / "org__chat-aligned").glob("results_*.json")
    doc = json.loads(results.read_text())
    doc["versions"]["sycophancy_ays_aqua_mc"] = 1.0
    results.write_text(json.dumps(doc, indent=2))
    ingested = ingest([runs], allow_sample=True)
    kept = {(r.model, r.task.name): r.provenance["task_version"] for r in ingested.runs}
    assert all(v == 2.0 for v in kept.values()) and len(kept) == len(ingested.runs)
    assert not [k for k in kept if k[1] == "sycophancy_ays_aqua_mc" and "aligned" in k[0]]
    (problem,) = [p for p in ingested.problems if "not comparable" in str(p)]
    assert str(problem).startswith("runs/org__chat-aligned/results_")
    assert "aqua_mc version 1.0" in str(problem)
    assert _build(runs, tmp_path / "site", "--strict") == 1
    assert "version 1.0" in capsys.readouterr().err
