"""The file layer: every reader names the file and the line of a bad byte or bad JSON, never a raw
``UnicodeDecodeError ... position N``; the leaderboard skips such a run instead of aborting."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sycophancy_eval_kit.core import data, files
from sycophancy_eval_kit.core.files import DataError
from sycophancy_eval_kit.saa_data import ground_truth, inputs, parse

SAMPLE = Path(data.EMBEDDED_DIR)
FIXTURES = Path(__file__).parent / "fixtures"


def _with_bad_byte(source: Path, target: Path, line: int, column: int = 5) -> Path:
    """A copy of ``source`` whose ``line`` (1-based) has the byte 0xff at ``column`` (1-based)."""
    lines = source.read_bytes().splitlines(keepends=True)
    raw = lines[line - 1]
    lines[line - 1] = raw[: column - 1] + b"\xff" + raw[column - 1 :]
    target.write_bytes(b"".join(lines))
    return target


def test_json_lines_report_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"b": "caf\xe9"}\n{"c": NaN}\n')
    with pytest.raises(DataError, match=rf"^{path}:3: not UTF-8 text \(byte 0xe9 at column 11\)") as err:
        list(files.iter_json_lines(path))
    assert err.value.where == f"{path}:3"
    lenient = list(files.iter_json_lines(path, strict=False))
    assert [line for line, _ in lenient] == [1, 3, 4]
    assert isinstance(lenient[1][1], DataError) and lenient[2][1]["c"] != lenient[2][1]["c"]  # NaN kept

    path.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(DataError, match=rf"^{path}:2: not valid JSON .*; expected one row"):
        list(files.iter_json_lines(path, "one row"))


def test_whole_file_json_and_text_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(b'{\n  "a": 1,\n  "b": \xff\n}\n')
    with pytest.raises(DataError, match=rf"^{path}:3: not UTF-8 text \(byte 0xff at column 8\)"):
        files.load_json(path)
    path.write_text('{\n  "a": 1,\n  "b": \n}\n')
    with pytest.raises(DataError, match=rf"^{path}:4: not valid JSON"):
        files.load_json(path)
    path.write_bytes("\ufeff[1, 2]".encode())
    assert files.load_json(path) == [1, 2]  # a BOM is not an error
    with pytest.raises(DataError, match="file not found"):
        files.read_text(tmp_path / "missing.txt")


def test_sharma_loader_names_the_bad_line(tmp_path: Path) -> None:
    bad = _with_bad_byte(SAMPLE / data.ARE_YOU_SURE_FILE, tmp_path / data.ARE_YOU_SURE_FILE, line=4)
    with pytest.raises(DataError, match=rf"{bad}:4: not UTF-8 text"):
        data.read_sharma_file(bad)


def test_saa_inputs_name_the_bad_line(tmp_path: Path) -> None:
    bct = _with_bad_byte(FIXTURES / "saa" / "bct_sample.jsonl", tmp_path / "bct.jsonl", line=3, column=20)
    with pytest.raises(parse.BctFormatError) as err:
        parse.read_bct_file(bct)
    assert f"{bct}:3 (bct_index 2): not UTF-8 text (byte 0xff at column 20)" in str(err.value)

    sources = Path(shutil.copytree(FIXTURES / "saa" / "sources", tmp_path / "sources"))
    arc = next(sources.rglob("ARC-Easy-Train.jsonl"))
    _with_bad_byte(arc, arc, line=2)
    source = next(s for s in inputs.SOURCE_FILES if s.path.endswith("ARC-Easy-Train.jsonl"))
    with pytest.raises(DataError, match=rf"{arc}:2: not UTF-8 text"):
        ground_truth.build_index([(source, arc)])


def test_leaderboard_skips_a_run_with_bad_bytes_and_keeps_the_rest(tmp_path: Path) -> None:
    from sycophancy_eval_kit.leaderboard.ingest import ingest

    runs = Path(shutil.copytree(FIXTURES / "leaderboard" / "runs", tmp_path / "runs"))
    samples = sorted(runs.rglob("samples_sycophancy_ays_aqua_mc_*.jsonl"))[0]
    _with_bad_byte(samples, samples, line=2)
    result = ingest([runs])
    problems = [str(p) for p in result.problems]
    assert any(f"{samples}:2: not UTF-8 text" in p and p.endswith("skipped") for p in problems), problems
    assert len(result.runs) == 7  # the other runs are kept
    results = sorted(runs.rglob("results_*.json"))[0]
    text = json.loads(results.read_text())
    results.write_bytes(json.dumps(text).encode()[:-2] + b"\xff}")
    assert any(str(results) in str(p) for p in ingest([runs]).problems)
