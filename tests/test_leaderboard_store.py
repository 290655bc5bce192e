"""The store: unchanged results files are not read again; changed, deleted and damaged inputs are; a
killed build loses nothing; what a rebuild reuses is what it would compute; the store answers SQL."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sycophancy_eval_kit.leaderboard import ingest as ingest_module
from sycophancy_eval_kit.leaderboard import plots, site
from sycophancy_eval_kit.leaderboard import store as stores
from sycophancy_eval_kit.leaderboard.__main__ import OUTCOMES_SQL, main
from sycophancy_eval_kit.leaderboard.ingest import VERSION, ingest

REPO = Path(__file__).resolve().parents[1]
STAMP = "2025-01-15T10-00-00.000000"
AQUA = "sycophancy_ays_aqua_mc"


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every samples file the ingest scans."""
    seen: list[Path] = []
    real = ingest_module._scan

    def counting(db, paths, metrics):
        seen.extend(paths)
        return real(db, paths, metrics)

    monkeypatch.setattr(ingest_module, "_scan", counting)
    return seen


def _store(tmp_path: Path) -> stores.Store:
    return stores.Store(tmp_path / "store.duckdb", VERSION)


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


def _counts(store: stores.Store) -> tuple[int, int, int]:
    runs = store.db.execute("SELECT count(*) FROM runs").fetchone()[0]
    outcomes = store.db.execute("SELECT count(*) FROM outcomes").fetchone()[0]
    distinct = store.db.execute(
        "SELECT count(*) FROM (SELECT DISTINCT run_id, pos FROM outcomes)"
    ).fetchone()[0]
    return runs, outcomes, distinct


def test_unchanged_inputs_are_not_read_again(runs: Path, tmp_path: Path, reads) -> None:
    cold = ingest([runs], store=_store(tmp_path))
    assert len(reads) == len(list(runs.glob("*/samples_*.jsonl")))
    reads.clear()
    warm = ingest([runs], store=_store(tmp_path))
    assert reads == []  # nothing scanned again
    assert _state(warm) == _state(cold) == _state(ingest([runs]))  # nor different from no store
    assert {r.digest for r in warm.runs} == {r.digest for r in cold.runs}


def test_a_changed_samples_file_is_read_again(runs: Path, tmp_path: Path, reads) -> None:
    ingest([runs], store=_store(tmp_path))
    path = _aligned(runs)
    stat = path.stat()
    lines = path.read_bytes().split(b"\n")
    # Same length, same mtime as before: only the ctime (which no one can set back) tells.
    lines[0] = lines[0].replace(b'"unparsed_rate": 0', b'"unparsed_rate": 1')
    path.write_bytes(b"\n".join(lines))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    reads.clear()
    result = ingest([runs], store=_store(tmp_path))
    # the unit of reuse is a results file: its samples files are read again, no one else's
    assert path in reads and {p.parent for p in reads} == {path.parent}
    # unparsed_rate changed on one question, so the samples no longer reproduce the results file
    assert any(str(runs / "org__chat-aligned") in str(p) and "averages" in str(p) for p in result.problems)
    assert (AQUA, "org/chat-aligned") not in {(r.task.name, r.model) for r in result.runs}


def test_truncated_after_storing_is_an_error_not_the_stored_run(runs: Path, tmp_path: Path) -> None:
    every = len(ingest([runs], store=_store(tmp_path)).runs)
    path = _aligned(runs)
    path.write_bytes(path.read_bytes()[:-60])  # an interrupted copy
    result = ingest([runs], store=_store(tmp_path))
    assert len(result.runs) == every - 1
    assert any(f"{path}:6: not valid JSON" in str(p) for p in result.problems)


def test_deleted_runs_and_files_leave_nothing_behind(runs: Path, tmp_path: Path) -> None:
    every = len(ingest([runs], store=_store(tmp_path)).runs)
    _aligned(runs).unlink()
    result = ingest([runs], store=_store(tmp_path))
    assert any(f"no samples_{AQUA}_{STAMP}.jsonl" in str(p) for p in result.problems)
    assert len(result.runs) == every - 1
    shutil.rmtree(runs / "org__chat-aligned")
    store = _store(tmp_path)
    result = ingest([runs], store=store)
    assert {r.model for r in result.runs} == {"org/chat-instruct"} and not result.problems
    # the deleted runs' rows are gone from the store too
    assert store.db.execute("SELECT DISTINCT model FROM runs").fetchall() == [("org/chat-instruct",)]
    assert store.db.execute("SELECT count(*) FROM files").fetchone()[0] == 1
    orphans = "SELECT count(*) FROM outcomes WHERE run_id NOT IN (SELECT run_id FROM runs)"
    assert store.db.execute(orphans).fetchone()[0] == 0


def test_a_store_of_other_code_is_refilled_and_a_damaged_one_named(runs: Path, tmp_path: Path, reads) -> None:
    expected = _state(ingest([runs], store=_store(tmp_path)))
    reads.clear()
    older = stores.Store(tmp_path / "store.duckdb", "another version of the code")
    assert older.db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0  # emptied
    older.close()
    assert _state(ingest([runs], store=_store(tmp_path))) == expected and reads  # read again
    (tmp_path / "store.duckdb").write_bytes(b"not a database" * 300)
    with pytest.raises(stores.StoreError, match="store.duckdb.*delete it: it is rebuilt from the results"):
        _store(tmp_path)


#: a build that SIGKILLs itself once it has stored the runs and their questions, inside the ingest's
#: transaction (before the results files are recorded and the transaction committed)
KILL_CHILD = r"""
import os, signal, sys
from sycophancy_eval_kit.leaderboard import ingest
real = ingest._store_runs
ingest.FILES_PER_SCAN = int(os.environ.get("FILES_PER_SCAN", ingest.FILES_PER_SCAN))
calls = []
def store_runs(store, accepted):
    real(store, accepted)
    calls.append(1)
    if len(calls) == int(os.environ.get("KILL_AT", "1")):
        os.kill(os.getpid(), signal.SIGKILL)
ingest._store_runs = store_runs
from sycophancy_eval_kit.leaderboard.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_build_killed_mid_ingest_is_finished_by_the_next(runs: Path, tmp_path: Path) -> None:
    site_dir, store_path = tmp_path / "site", tmp_path / "site.duckdb"
    argv = ["build", str(runs), "--out", str(site_dir), "--resamples", "200"]
    child = subprocess.run([sys.executable, "-c", KILL_CHILD, *argv], cwd=REPO, timeout=300)
    assert child.returncode == -9 and not site_dir.exists()
    assert main(argv) == 0
    store = stores.Store(store_path, VERSION)
    clean = tmp_path / "clean"
    assert main(["build", str(runs), "--out", str(clean), "--resamples", "200"]) == 0
    assert _counts(store) == _counts(stores.Store(tmp_path / "clean.duckdb", VERSION))
    runs_, outcomes, distinct = _counts(store)
    assert runs_ == 8 and outcomes == distinct  # nothing stored twice
    assert _leaderboard(site_dir) == _leaderboard(clean)


def test_a_killed_build_keeps_the_batches_it_finished(runs: Path, tmp_path: Path, reads) -> None:
    site_dir, store_path = tmp_path / "site", tmp_path / "site.duckdb"
    argv = ["build", str(runs), "--out", str(site_dir), "--resamples", "200"]
    env = {**os.environ, "FILES_PER_SCAN": "1", "KILL_AT": "2"}  # one results file per batch
    child = subprocess.run([sys.executable, "-c", KILL_CHILD, *argv], cwd=REPO, timeout=300, env=env)
    assert child.returncode == -9
    store = stores.Store(store_path, VERSION)
    (kept,) = store.files()  # the first batch was committed, the second was not
    store.close()
    assert main(argv) == 0
    assert reads and all(p.parent != Path(kept).parent for p in reads)  # only the other file is read
    runs_, outcomes, distinct = _counts(stores.Store(store_path, VERSION))
    assert runs_ == 8 and outcomes == distinct


def test_the_store_beside_the_site_and_its_flags(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    assert main(["build", str(runs), "--out", str(out), "--resamples", "200"]) == 0
    assert stores.default_path(out) == tmp_path / "site.duckdb" and (tmp_path / "site.duckdb").is_file()
    assert not any(p.suffix == ".duckdb" for p in out.rglob("*"))  # never part of the published site
    mine = tmp_path / "elsewhere" / "lb.duckdb"
    assert main(["build", str(runs), "--out", str(out), "--resamples", "200", "--store", str(mine)]) == 0
    assert mine.is_file()
    (tmp_path / "site.duckdb").unlink()
    assert main(["build", str(runs), "--out", str(out), "--resamples", "200", "--no_store"]) == 0
    assert not (tmp_path / "site.duckdb").exists()
    assert main(["build", str(runs), "--out", str(out), "--store", str(out / "s.duckdb")]) == 1


def _site_files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def _leaderboard(out: Path) -> dict:
    summary = json.loads((out / "data" / "leaderboard.json").read_text(encoding="utf-8"))
    summary.pop("generated")
    return summary


def test_rebuild_reuses_pages_and_is_deterministic(
    runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
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
    stored_numbers = _leaderboard(out)
    # The same build without a store: the same numbers (same seed, same estimator)
    fresh = tmp_path / "fresh"
    assert main(argv[:3] + [str(fresh)] + argv[4:] + ["--no_store"]) == 0
    assert _leaderboard(fresh) == stored_numbers
    # Another seed moves the bootstrap intervals: the seed is part of every stored statistic's key.
    other = tmp_path / "other"
    assert main(argv[:3] + [str(other), "--resamples", "500", "--seed", "4"]) == 0
    assert _leaderboard(other) != stored_numbers


def test_adding_a_run_renders_only_what_it_touches(runs: Path, tmp_path: Path) -> None:
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


# ------------------------------------------------------------------------------ query, export
README = Path(__file__).resolve().parents[1] / "leaderboard" / "README.md"


def readme_queries() -> list[str]:
    """The SQL blocks of the leaderboard README, in order: the three questions it shows users."""
    text = README.read_text(encoding="utf-8")
    return [block.split("```", 1)[0] for block in text.split("```sql\n")[1:]]


def test_query_and_export(runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "site"
    assert main(["build", str(runs), "--out", str(out), "--resamples", "200"]) == 0
    db = tmp_path / "site.duckdb"
    capsys.readouterr()
    queries = readme_queries()
    assert len(queries) == 3
    for sql in queries:
        assert main(["query", str(db), sql]) == 0, sql
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) >= 2, (sql, lines)  # a header and some rows
    # by hand, from the samples files: which aqua_mc questions instruct flipped that aligned kept
    samples = {
        model: {
            s["doc"]["id"]: s.get("forced_flip_rate")
            for s in map(
                json.loads, (runs / folder / f"samples_{AQUA}_{STAMP}.jsonl").read_text().splitlines()
            )
        }
        for model, folder in (("aligned", "org__chat-aligned"), ("instruct", "org__chat-instruct"))
    }
    flipped = sorted(q for q, v in samples["instruct"].items() if v == 1 and samples["aligned"].get(q) == 0)
    assert flipped == ["q1"]
    assert main(["query", str(db), queries[0]]) == 0  # flipped by instruct, kept by aligned
    assert capsys.readouterr().out.split()[1:] == flipped
    for name in ("outcomes.parquet", "outcomes.csv"):
        assert main(["export", str(db), str(tmp_path / name)]) == 0
    with open(tmp_path / "outcomes.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    store = stores.Store(db, VERSION)
    assert len(rows) == store.db.execute("SELECT count(*) FROM outcomes").fetchone()[0]
    names, parquet_rows = store.query(f"SELECT count(*) FROM '{tmp_path / 'outcomes.parquet'}'")
    assert parquet_rows[0][0] == len(rows) and "question_id" in rows[0] and "model" in rows[0]
    assert main(["query", str(db), "SELECT nonsense FROM nowhere"]) == 1
    assert "the query failed" in capsys.readouterr().err
    assert main(["query", str(tmp_path / "missing.duckdb"), "SELECT 1"]) == 1
    assert "no such store" in capsys.readouterr().err
    assert main(["export", str(db), str(tmp_path / "x.txt")]) == 1
    assert "expected a .parquet or .csv" in capsys.readouterr().err
    assert OUTCOMES_SQL.startswith("SELECT")


def test_a_store_in_use_by_another_build_is_named(tmp_path: Path) -> None:
    db = tmp_path / "site.duckdb"
    hold = f"import duckdb, sys; c = duckdb.connect({str(db)!r}); print('held', flush=True); sys.stdin.read()"
    holder = subprocess.Popen(
        [sys.executable, "-c", hold], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(stores.StoreError, match="another build may be using it"):
            stores.Store(db, VERSION)
    finally:
        holder.communicate("")
    stores.Store(db, VERSION).close()  # free again once that build ends
