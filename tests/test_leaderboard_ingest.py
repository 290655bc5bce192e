"""Reading lm-eval output folders: malformed, partial and duplicate results, provenance, variants."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from sycophancy_eval_kit.leaderboard.ingest import IngestError, ingest
from sycophancy_eval_kit.leaderboard.variants import VariantsError, load_variants

STAMP = "2025-01-15T10-00-00.000000"
NEWER = "2025-03-01T08-30-00.000000"


def _samples(runs: Path, model: str, task: str, stamp: str = STAMP) -> Path:
    return runs / model / f"samples_{task}_{stamp}.jsonl"


def _messages(result) -> list[str]:
    return [str(p) for p in result.problems]


def test_reads_every_task_with_provenance(runs: Path) -> None:
    result = ingest([runs], strict=True)
    assert result.results_files == 2 and not result.problems
    names = sorted((r.model, r.task.name) for r in result.runs)
    assert len(names) == 8 and ("org/chat-instruct", "sycophancy_ays_dialogue_trivia_qa") in names
    run = next(
        r for r in result.runs if r.task.name == "sycophancy_ays_aqua_mc" and r.model == "org/chat-aligned"
    )
    prov = run.provenance
    assert prov["lm_eval_version"] == "0.4.13" and prov["task_version"] == 2.0
    assert prov["model_sha"] and prov["chat_template_sha"] and prov["data_sha256"]
    assert prov["data_source"] == "local" and prov["protocol"] == "one-pass" and prov["grader"] == "rule"
    assert prov["date"] == "2025-01-15T10:00:00+00:00"
    # Shown paths are relative to the folder named on the command line, never absolute.
    assert prov["results_file"] == f"runs/org__chat-aligned/results_{STAMP}.json"
    assert run.ids == ("q1", "q2", "q3", "q4", "q5", "q6")


def test_malformed_results_file_is_skipped_with_its_name(runs: Path) -> None:
    bad = runs / "org__chat-aligned" / f"results_{NEWER}.json"
    bad.write_text("{not json", encoding="utf-8")
    result = ingest([runs])
    assert any(str(bad) in m and "JSON" in m for m in _messages(result))
    assert len(result.runs) == 8  # everything else is kept
    with pytest.raises(IngestError, match="not a readable JSON"):
        ingest([runs], strict=True)


def test_bad_samples_line_names_file_and_line_and_keeps_other_tasks(runs: Path) -> None:
    path = _samples(runs, "org__chat-instruct", "sycophancy_ays_aqua_mc")
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = "garbage"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = ingest([runs])
    assert any(f"{path}:3: not valid JSON" in m for m in _messages(result))
    tasks = {(r.model, r.task.name) for r in result.runs}
    assert ("org/chat-instruct", "sycophancy_ays_aqua_mc") not in tasks
    assert ("org/chat-instruct", "sycophancy_ays_trivia_qa") in tasks  # partial results are kept


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda row: row.update(acc_first=0.5), "expected 0 or 1"),
        (lambda row: row.pop("acc_first"), "no acc_first; expected it on every question"),
        (lambda row: row.pop("acc_final"), "no acc_final; expected it on every question"),
        (lambda row: row["doc"].pop("id"), "expected doc.id"),
        (lambda row: row["doc"].update(id="q1"), "question id q1 appears again"),
        (lambda row: row.pop("forced_flip_rate"), "forced_flip_rate is missing with acc_first = 1"),
        (lambda row: row.update(acc_first=0), "forced_flip_rate is present with acc_first = 0"),
    ],
)
def test_bad_per_question_values(runs: Path, edit, expected: str) -> None:
    path = _samples(runs, "org__chat-aligned", "sycophancy_ays_aqua_mc")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    edit(rows[3])
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    messages = _messages(ingest([runs]))
    assert any(f"{path}:4" in m and expected in m for m in messages), messages


def test_partial_samples_file_is_skipped(runs: Path) -> None:
    path = _samples(runs, "org__chat-aligned", "sycophancy_ays_aqua_mc")
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    result = ingest([runs])
    assert any(str(path) in m and "5 questions" in m and "says 6" in m for m in _messages(result))
    assert ("org/chat-aligned", "sycophancy_ays_aqua_mc") not in {(r.model, r.task.name) for r in result.runs}


def test_samples_that_do_not_reproduce_the_reported_numbers_are_skipped(runs: Path) -> None:
    results_path = runs / "org__chat-aligned" / f"results_{STAMP}.json"
    results = json.loads(results_path.read_text(encoding="utf-8"))
    results["results"]["sycophancy_ays_aqua_mc"]["acc_first,none"] = 0.25
    results_path.write_text(json.dumps(results), encoding="utf-8")
    messages = _messages(ingest([runs]))
    assert any("reports acc_first,none = 0.25 but its samples file averages 0.833333" in m for m in messages)


def test_missing_samples_and_orphan_samples(runs: Path) -> None:
    path = _samples(runs, "org__chat-aligned", "sycophancy_ays_trivia_qa")
    orphan = path.with_name(f"samples_sycophancy_ays_trivia_qa_{NEWER}.jsonl")
    path.rename(orphan)
    messages = _messages(ingest([runs]))
    assert any("no samples_sycophancy_ays_trivia_qa" in m and "--log_samples" in m for m in messages)
    assert any(str(orphan) in m and "no results_*.json with the same timestamp" in m for m in messages)


def _duplicate_run(runs: Path, model: str) -> Path:
    """The same run written again later (lm-eval names files by their date_id)."""
    folder = runs / model
    for path in list(folder.iterdir()):
        path_new = path.with_name(path.name.replace(STAMP, NEWER))
        shutil.copy(path, path_new)
    return folder / f"results_{NEWER}.json"


def test_duplicate_runs_newest_wins_or_history_is_kept(runs: Path) -> None:
    newer = _duplicate_run(runs, "org__chat-aligned")
    result = ingest([runs])
    aligned = [r for r in result.runs if r.model == "org/chat-aligned"]
    assert {r.timestamp for r in aligned} == {NEWER}
    superseded = [m for m in _messages(result) if "superseded" in m]
    assert len(superseded) == 3 and all(f"results_{STAMP}.json" in m and newer.name in m for m in superseded)
    with pytest.raises(IngestError, match="superseded"):
        ingest([runs], strict=True)
    kept = ingest([runs], keep="all", strict=True)
    assert {r.timestamp for r in kept.superseded} == {STAMP} and len(kept.superseded) == 3


def test_embedded_sample_data_is_refused_unless_allowed(runs: Path) -> None:
    for results_path in runs.glob("*/results_*.json"):
        results = json.loads(results_path.read_text(encoding="utf-8"))
        for cfg in results["configs"].values():
            cfg["metadata"]["data_source"] = "embedded"
        results_path.write_text(json.dumps(results), encoding="utf-8")
    refused = ingest([runs])
    assert not refused.runs and len(refused.refused_sample) == 8
    assert any("--allow_sample" in m for m in _messages(refused))
    assert len(ingest([runs], allow_sample=True, strict=True).runs) == 8


def test_results_without_data_provenance_are_skipped(runs: Path) -> None:
    results_path = runs / "org__chat-aligned" / f"results_{STAMP}.json"
    results = json.loads(results_path.read_text(encoding="utf-8"))
    del results["configs"]["sycophancy_ays_aqua_mc"]["metadata"]["data_source"]
    results_path.write_text(json.dumps(results), encoding="utf-8")
    assert any("metadata.data_source" in m for m in _messages(ingest([runs])))


def test_variants_file(tmp_path: Path) -> None:
    good = tmp_path / "leaderboard.yaml"
    good.write_text(
        "variant_order: [instruct, aligned-SAA]\n"
        "models:\n"
        "  org/chat-instruct: {base: Chat, variant: instruct}\n"
        "  org__chat-saa: {base: Chat, variant: aligned-SAA, label: Chat + SAA}\n",
        encoding="utf-8",
    )
    variants = load_variants(good)
    assert variants.place("org/chat-instruct").variant == "instruct"
    assert variants.place("org/chat-saa").label == "Chat + SAA"  # matched by lm-eval's folder name
    assert variants.place("other/model").base == "other/model"  # unlisted: its own base
    assert variants.unmatched(["org/chat-instruct"]) == ["org__chat-saa"]
    for text, expected in [
        ("models: {a: {base: B}}\n", "'base' and 'variant'"),
        ("models: {a: {base: B, variant: v, colour: red}}\n", "models\\['a'\\]"),
        ("models: {a: {base: B, variant: v}, b: {base: B, variant: v}}\n", "already has variant"),
        ("modles: {}\n", "unexpected"),
        ("models: [\n", "not valid YAML"),
    ]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(VariantsError, match=expected):
            load_variants(bad)


# ------------------------------------------------------------------------------- the reader
_AQUA = "sycophancy_ays_aqua_mc"
_IDS = ("q1", "q2", "q3", "q4", "q5", "q6")


def _rewrite(path: Path, edit) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[3] = edit(lines[3])
    path.write_bytes(b"\n".join(lines))


def _aqua_run(result, model: str = "org/chat-aligned") -> list:
    return [r for r in result.runs if r.task.name == _AQUA and r.model == model]


def sub(old: bytes, new: bytes) -> Callable[[bytes], bytes]:
    return lambda line: line.replace(old, new)


FIRST = b'"acc_first": 1,'


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (sub(FIRST, b'"acc_first": 0.5,'), "acc_first = 0.5; expected 0 or 1"),
        (sub(FIRST, b'"acc_first": Infinity,'), "acc_first = inf; expected 0 or 1"),
        (sub(FIRST, b'"acc_first": 01,'), "not valid JSON"),
        (sub(FIRST, b'"acc_first": NaN,'), "no acc_first; expected it"),
        (sub(FIRST, b'"acc_first": [1],'), "acc_first = [1]; expected 0 or 1"),
        (sub(b'"forced_flip_rate": 0,', b'"forced_flip_rate": NaN,'), "forced_flip_rate is missing"),
        (sub(b', "acc_final": 1', b""), "no acc_final; expected it on every question"),
        (sub(b'"id": "q4"', b'"id": "q1"'), "question id q1 appears again (first on line 1)"),
        (sub(b'"id": "q4"', b'"id": ""'), "expected doc.id"),
        (lambda line: line[: len(line) // 2], "not valid JSON"),
        (sub(b"q4", b"q\xff4"), "not UTF-8"),
        (sub(b'"doc": {', b'"doc": "q4", "x": {'), "expected an lm-eval sample object with a 'doc' object"),
    ],
)  # fmt: skip
def test_a_bad_line_is_named_by_file_and_line(runs: Path, edit, expected: str) -> None:
    path = _samples(runs, "org__chat-aligned", _AQUA)
    before = path.read_bytes()
    _rewrite(path, edit)
    assert path.read_bytes() != before
    result = ingest([runs])
    assert not _aqua_run(result)
    problems = [m for m in _messages(result) if m.startswith(f"{path}:4: ")]
    assert problems and expected in problems[0], _messages(result)
    assert len(_aqua_run(result, "org/chat-instruct")) == 1  # the other model's run of the task is kept


@pytest.mark.parametrize(
    "edit",
    [
        lambda line: line + b"\r",  # another writer's line ends
        lambda line: line.replace(b'"doc_id": 3, ', b""),  # another layout
        lambda line: line.replace(b'"acc_first": 1,', b'"acc_first": true,'),  # a JSON boolean is read as 1
    ],
)
def test_unusual_but_readable_lines_are_read(runs: Path, edit) -> None:
    path = _samples(runs, "org__chat-aligned", _AQUA)
    _rewrite(path, edit)
    (run,) = _aqua_run(ingest([runs], strict=True))
    assert run.ids == _IDS and run.values["acc_first"][3] == 1.0


@pytest.mark.parametrize(
    "edit", ["truncate", "no final newline", "byte order mark", "compact separators", "blank line"]
)
def test_whole_file_variants(runs: Path, edit: str) -> None:
    path = _samples(runs, "org__chat-aligned", _AQUA)
    data = path.read_bytes()
    rows = [json.loads(line) for line in data.splitlines()]
    changed = {
        "truncate": data[: len(data) - 40],
        "no final newline": data.rstrip(b"\n"),
        "byte order mark": b"\xef\xbb\xbf" + data,
        # another lm-eval version's writer: same content, other spelling
        "compact separators": b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in rows),
        "blank line": b"\n" + data,
    }[edit]
    path.write_bytes(changed)
    result = ingest([runs])
    read = _aqua_run(result)
    if edit == "truncate":
        assert not read and any(f"{path}:6: not valid JSON" in m for m in _messages(result))
    else:
        assert len(read) == 1 and read[0].ids == _IDS
        assert np.array_equal(read[0].values["acc_first"], [1, 1, 1, 1, 0, 1])


def test_a_value_check_names_the_line_past_blank_lines(runs: Path) -> None:
    path = _samples(runs, "org__chat-aligned", _AQUA)
    lines = path.read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[3])
    row["acc_first"] = 0.5
    lines[3] = json.dumps(row)
    path.write_text("\n\n" + "\n".join(lines) + "\n", encoding="utf-8")
    assert any(m.startswith(f"{path}:6: acc_first = 0.5") for m in _messages(ingest([runs])))
