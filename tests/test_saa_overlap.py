"""Contamination check: n-gram overlap with Sharma-format evaluation questions, via the shared loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from sycophancy_eval_kit.core import data
from sycophancy_eval_kit.core.data import DataError
from sycophancy_eval_kit.saa_data import overlap, parse

FIXTURES = Path(__file__).parent / "fixtures" / "saa"


def write_eval_folder(folder: Path, trivia: list[str], mc: list[tuple[str, list[str]]]) -> Path:
    """A Sharma-format folder: answer.jsonl (four rows per question) and are_you_sure.jsonl (MC rows)."""
    answer = [row for q in trivia for row in data.answer_rows("trivia_qa", q, "x", "y", aliases=["x"])]
    data.write_sharma_file(folder / data.ANSWER_FILE, answer)
    mc_rows = [data.mc_row("aqua_mc", q, options, 0) for q, options in mc]
    data.write_sharma_file(folder / data.ARE_YOU_SURE_FILE, mc_rows)
    return folder


def test_overlap_flags_long_and_short_matches(tmp_path: Path) -> None:
    folder = write_eval_folder(
        tmp_path / "eval",
        trivia=[
            "How many legs does a spider have?",
            "Which gas do we breathe out?",
        ],  # 7 words: the short path
        mc=[
            (
                "Today it rained. What do plants mostly take in through their roots each day?",
                ["sunlight", "water"],
            )
        ],
    )
    questions, provenance = overlap.load_eval_questions(folder)
    assert len(questions) == 3 and provenance["source"] == "local"
    rows = parse.read_bct_file(FIXTURES / "bct_sample.jsonl")
    report = overlap.check(rows, questions, provenance, n=8)
    assert report.flagged == {1, 4, 14}  # rows 1 and 14 share an 8-gram, row 4 holds the whole short question
    by_row = {m["bct_index"]: m for m in report.matches}
    assert by_row[1]["eval_matches"][0]["file"] == "are_you_sure.jsonl"
    assert by_row[1]["eval_matches"][0]["example"] == "do plants mostly take in through their roots"
    # question + options = 14 words -> 7 8-grams, 2 of them shared ("what do ... their", "do ... roots")
    assert by_row[1]["shared_ngrams"] == 2 and by_row[1]["shared_fraction"] == round(2 / 7, 4)
    assert by_row[4]["eval_matches"][0]["subset"] == "trivia_qa"
    assert report.as_dict()["flagged_rows"] == 3 and report.as_dict()["eval_questions"] == 3
    # a larger n misses the 8-word overlap; the short path still needs the whole question
    assert overlap.check(rows, questions, n=12).flagged == {4}


def test_embedded_sample_and_missing_eval_files(tmp_path: Path) -> None:
    questions, provenance = overlap.load_eval_questions("embedded")
    assert provenance["source"] == "embedded" and {q.file for q in questions} == {
        "answer.jsonl",
        "are_you_sure.jsonl",
    }
    (tmp_path / "only_answer").mkdir()
    (tmp_path / "only_answer" / "answer.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="--eval_data_dir .*only_answer: no are_you_sure.jsonl in it"):
        overlap.load_eval_questions(tmp_path / "only_answer")
    with pytest.raises(ValueError, match="n-gram size"):
        overlap.check([], [], n=0)
