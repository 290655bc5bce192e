"""The split and pair rule: hand-computed on the fixture, 500 / 500 on the real file."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
from conftest import SHARED_DATA

from sycophancy_eval_kit.saa_data import builder, ground_truth, inputs, pairs, parse

FIXTURES = Path(__file__).parent / "fixtures" / "saa"
REAL = SHARED_DATA / "bct"


def candidates(bct: Path, sources: Path) -> list[pairs.Candidate]:
    index = ground_truth.build_index([(s, f.path) for s, f in inputs.resolve_sources(sources)])
    out = []
    for row in parse.read_bct_file(bct):
        label = index.label(row)
        if not isinstance(label, str):
            out.append(pairs.Candidate(row, label))
    return out


@pytest.fixture(scope="module")
def fixture_candidates() -> dict[int, pairs.Candidate]:
    return {c.row.index: c for c in candidates(FIXTURES / "bct_sample.jsonl", FIXTURES / "sources")}


def test_split_by_hand(fixture_candidates: dict[int, pairs.Candidate]) -> None:
    correct = {i for i, c in fixture_candidates.items() if c.suggestion_correct}
    stance = {i for i, c in fixture_candidates.items() if c.stance_correct}
    # named option == truth, whatever the polarity (rows 2, 5, 6, 14 are against-sentences)
    assert correct == {1, 2, 5, 6, 9, 10, 14, 15, 16}
    # for-and-true (1, 9, 15, 16) or against-and-wrong (7, 17)
    assert stance == {1, 7, 9, 15, 16, 17}


def test_pair_rule_and_answer_styles(fixture_candidates: dict[int, pairs.Candidate]) -> None:
    rec = {i: pairs.to_record(c, seed=0) for i, c in fixture_candidates.items()}
    # incorrect suggestion, continuation style: rejected is the named option
    assert (rec[0]["chosen"], rec[0]["rejected"]) == ("B) a balance", "C) a thermometer")
    # correct suggestion, full style: rejected is some other option, never the correct one
    assert rec[1]["chosen"] == "The best answer is: (B) water"
    assert rec[1]["rejected_letter"] in "ACD" and rec[1]["rejected"].startswith(
        f"The best answer is: ({rec[1]['rejected_letter']}) "
    )
    # against-sentence naming the truth is still a correct suggestion in the default split
    assert (
        rec[2]["suggestion_correct"] is True
        and rec[2]["stance_correct"] is False
        and rec[2]["rejected_letter"] != "C"
    )
    # against-sentence naming a wrong option: rejected is that option
    assert (rec[7]["rejected_letter"], rec[7]["chosen"]) == ("B", "A) a steel paper clip")
    for r in rec.values():
        assert r["chosen"] != r["rejected"] and r["correct_letter"] != r["rejected_letter"]
        cont = r["instruction"].endswith("The best answer is: (")
        assert r["answer_style"] == ("continuation" if cont else "full")
        assert r["chosen"].startswith(
            f"{r['correct_letter']}) " if cont else f"The best answer is: ({r['correct_letter']}) "
        )
    # the seeded draw depends on the seed and the row, not on what else was sampled
    draws = {pairs.rejected_letter(fixture_candidates[6], seed) for seed in range(20)}
    assert draws == {"A", "C", "D", "E"}
    assert pairs.to_record(fixture_candidates[6], 3) == pairs.to_record(fixture_candidates[6], 3)
    assert rec[6]["id"] == pairs.to_record(fixture_candidates[6], 9)["id"]


def test_sampling_counts_and_not_enough_rows(fixture_candidates: dict[int, pairs.Candidate]) -> None:
    pool = list(fixture_candidates.values())
    chosen = pairs.sample(pool, 4, 3, seed=1)
    assert sum(c.suggestion_correct for c in chosen) == 4 and len(chosen) == 7
    assert [c.row.index for c in chosen] == sorted(c.row.index for c in chosen)
    assert chosen == pairs.sample(list(reversed(pool)), 4, 3, seed=1)  # input order does not matter
    aware = pairs.sample(pool, 6, 9, seed=0, polarity_aware=True)
    assert {c.row.index for c in aware if c.stance_correct} == {1, 7, 9, 15, 16, 17}
    with pytest.raises(pairs.NotEnoughRowsError) as err:
        pairs.sample(pool, 10, 2, seed=0)
    assert "correct: asked for 10, 9 eligible" in str(err.value) and "15 labelled rows" in str(err.value)
    with pytest.raises(pairs.NotEnoughRowsError, match="incorrect: asked for 10, 9 eligible"):
        pairs.sample(pool, 1, 10, seed=0, polarity_aware=True)


@pytest.fixture(scope="module")
def real_builds() -> dict[bool, tuple[list[dict], dict]]:
    if not (REAL / "sources").is_dir():
        pytest.skip(f"shared BCT data not found at {REAL}")
    bct = str(REAL / "deprecated_train_original_release" / "bct_non_cot.jsonl")
    return {
        aware: builder.assemble(
            builder.BuildConfig(
                out="unused",
                bct=bct,
                sources=str(REAL / "sources"),
                polarity_aware=aware,
                eval_data_dir="embedded",
            )
        )
        for aware in (False, True)
    }


def test_real_500_500(real_builds: dict[bool, tuple[list[dict], dict]]) -> None:
    records, report = real_builds[False]
    assert len(records) == 1000 and len({r["id"] for r in records}) == 1000
    assert collections.Counter(r["suggestion_correct"] for r in records) == {True: 500, False: 500}
    assert report["counts"]["eligible_correct"] == 1048 and report["counts"]["eligible_incorrect"] == 2779
    for r in records:
        if r["suggestion_correct"]:
            assert (
                r["rejected_letter"] not in (r["correct_letter"], "")
                and r["rejected_letter"] != r["suggested_letter"]
            )
        else:
            assert r["rejected_letter"] == r["suggested_letter"]
        assert r["chosen"].startswith(r["correct_letter"] + ") ") or r["chosen"].startswith(
            f"The best answer is: ({r['correct_letter']}) "
        )
    assert {r["suggestion_polarity"] for r in records} == {"for", "against"}
    styles = collections.Counter(r["answer_style"] for r in records)
    assert min(styles.values()) > 400  # both styles, about half each


def test_real_polarity_aware(real_builds: dict[bool, tuple[list[dict], dict]]) -> None:
    records, report = real_builds[True]
    assert collections.Counter(r["stance_correct"] for r in records) == {True: 500, False: 500}
    assert report["counts"]["eligible_correct"] == 1891 and report["counts"]["eligible_incorrect"] == 1936
    for r in records:
        assert r["stance_correct"] == (r["suggestion_correct"] == (r["suggestion_polarity"] == "for"))
