"""Ground truth: matching stem + option set against ARC, OpenBookQA and BBH, and why rows go unlabelled."""

from __future__ import annotations

import collections
import json
import shutil
from pathlib import Path

import pytest
from conftest import SHARED_DATA

from sycophancy_eval_kit.core.data import DataError
from sycophancy_eval_kit.saa_data import ground_truth, inputs, parse

FIXTURES = Path(__file__).parent / "fixtures" / "saa"
REAL = SHARED_DATA / "bct"


def labels_for(bct: Path, sources: Path) -> list[ground_truth.Label | str]:
    rows = parse.read_bct_file(bct)
    files = [(src, f.path) for src, f in inputs.resolve_sources(sources)]
    index = ground_truth.build_index(files)
    return [index.label(r) for r in rows]


def test_fixture_labels_by_hand() -> None:
    got = labels_for(FIXTURES / "bct_sample.jsonl", FIXTURES / "sources")
    simple = [g if isinstance(g, str) else (g.correct_letter, g.dataset, g.source_id) for g in got]
    assert simple[0] == ("B", "arc_easy", "fx-easy-1")
    assert simple[3] == ground_truth.OPTION_SET_MISMATCH  # same stem, other options
    assert simple[4] == ("B", "arc_easy", "fx-easy-dev-1")  # ARC numeric labels "1".."4"
    assert simple[6] == ("B", "arc_challenge", "fx-ch-2")  # five options
    assert simple[8] == ground_truth.CONFLICTING_ANSWERS  # train says C, test says B
    assert simple[9] == ("B", "openbook_qa", "fx-ob-3")
    # BBH: options reordered in BCT (False, True), so the true answer "True" is B here, A in the source
    assert simple[10] == ("B", "bbh_navigate", "bbh/navigate/val_data.json#0")
    # BBH: the source stem starts with "Q: ", the BCT one does not; scores follow parsed_inputs order
    assert simple[11] == ("A", "bbh_snarks", "bbh/snarks/val_data.json#0")
    assert simple[12] == ("A", "bbh_date_understanding", "bbh/date_understanding/val_data.json#0")
    assert simple[13] == ground_truth.NO_SOURCE_MATCH
    assert collections.Counter(type(g).__name__ for g in got) == {"Label": 15, "str": 3}


def test_missing_and_malformed_source_files(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "sources", tmp_path / "sources")
    (tmp_path / "sources" / "bbh" / "snarks" / "val_data.json").unlink()
    with pytest.raises(DataError, match=r"missing 1 source file.*bbh/snarks/val_data.json"):
        inputs.resolve_sources(tmp_path / "sources")
    with pytest.raises(DataError, match="missing all source file"):
        inputs.resolve_sources(tmp_path / "nowhere")

    bad = tmp_path / "bad"
    shutil.copytree(FIXTURES / "sources", bad)
    arc = bad / "arc_easy" / "ARC-Easy-Dev.jsonl"
    arc.write_text(
        json.dumps(
            {"id": "x", "question": {"stem": "s", "choices": [{"text": "a", "label": "A"}]}, "answerKey": "Z"}
        )
        + "\n"
    )
    files = [(src, f.path) for src, f in inputs.resolve_sources(bad)]
    with pytest.raises(DataError, match=rf"{arc}:1: expected .*answerKey among the labels"):
        ground_truth.build_index(files)

    bbh = bad / "bbh" / "navigate" / "val_data.json"
    arc.write_text("")
    bbh.write_text(
        json.dumps(
            {
                "data": [
                    {
                        "parsed_inputs": "Q: x\n\nAnswer choices:\n(A) a\n(B) b",
                        "multiple_choice_scores": [0, 0],
                    }
                ]
            }
        )
    )
    with pytest.raises(DataError, match=r"data\[0\]: expected one score of 1"):
        ground_truth.build_index([(src, f.path) for src, f in inputs.resolve_sources(bad)])


@pytest.mark.skipif(not (REAL / "sources").is_dir(), reason=f"shared BCT data not found at {REAL}")
def test_real_labels_and_a_sanity_check_on_them() -> None:
    got = labels_for(REAL / "deprecated_train_original_release" / "bct_non_cot.jsonl", REAL / "sources")
    reasons = collections.Counter(g for g in got if isinstance(g, str))
    assert reasons == {"no_source_match": 1166, "option_set_mismatch": 6, "conflicting_answers": 1}
    labelled = [g for g in got if not isinstance(g, str)]
    assert len(labelled) == 3827
    by_source = collections.Counter(g.dataset for g in labelled)
    assert (
        by_source["openbook_qa"] == 1641
        and by_source["arc_easy"] == 751
        and by_source["arc_challenge"] == 391
    )
    assert set(by_source) == set(inputs.SOURCE_DATASETS)  # every source contributes
    # BCT's own answers come from a model that is right most of the time on ARC: if the letter mapping
    # were scrambled, agreement would sit near chance (about 1/4).
    rows = parse.read_bct_file(REAL / "deprecated_train_original_release" / "bct_non_cot.jsonl")
    arc = [
        (r, g)
        for r, g in zip(rows, got, strict=True)
        if not isinstance(g, str) and g.dataset.startswith("arc")
    ]
    agree = sum(r.response_letter == g.correct_letter for r, g in arc) / len(arc)
    assert agree > 0.85
