"""End to end: the CLI builds, the output loads, reruns are byte-identical, failures write nothing."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
from conftest import SHARED_DATA
from test_saa_overlap import write_eval_folder

from sycophancy_eval_kit.saa_data import BuildConfig, build, cli, hub
from sycophancy_eval_kit.saa_data.builder import OUTPUT_FILES

FIXTURES = Path(__file__).parent / "fixtures" / "saa"
FIXTURE_ARGS = ["--bct", str(FIXTURES / "bct_sample.jsonl"), "--sources", str(FIXTURES / "sources")]
REAL = SHARED_DATA / "bct"


def run_cli(out: Path, *extra: str) -> int:
    return cli.main(
        ["build", "--out", str(out), *FIXTURE_ARGS, "--n_correct", "4", "--n_incorrect", "3", *extra]
    )


def test_cli_build_outputs_and_loading(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "saa"
    assert run_cli(out, "--seed", "5") == 0
    assert "Wrote 7 pairs" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUT_FILES, ".syco-saa"])  # + its marker
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left behind

    ds = datasets.load_dataset(
        "json", data_files=str(out / "saa.jsonl"), split="train", cache_dir=str(tmp_path / "hf")
    )
    assert ds.num_rows == 7 and sum(ds["suggestion_correct"]) == 4
    assert {
        "instruction",
        "chosen",
        "rejected",
        "id",
        "bct_index",
        "source_dataset",
        "suggestion_polarity",
        "suggested_letter",
        "correct_letter",
        "suggestion_correct",
    } <= set(ds.column_names)
    assert all(letter.isupper() for letter in list(ds["suggested_letter"]) + list(ds["correct_letter"]))

    info = json.loads((out / "dataset_info.json").read_text())
    assert info["saa"]["ranking"] is True and info["saa"]["file_name"] == "saa.jsonl"
    assert info["saa"]["columns"] == {"prompt": "instruction", "chosen": "chosen", "rejected": "rejected"}

    report = json.loads((out / "build_report.json").read_text())
    counts = report["counts"]
    assert (counts["parsed"], counts["labelled"], counts["selected"]) == (18, 15, 7)
    assert counts["excluded_no_ground_truth"] == {
        "no_source_match": 1,
        "option_set_mismatch": 1,
        "conflicting_answers": 1,
    }
    assert report["config"]["seed"] == 5 and report["inputs"][0]["matches_pinned"] is False

    card = (out / "README.md").read_text()
    assert card.startswith("---\nlicense: mit\n") and "path: saa.jsonl" in card
    assert "seed: 5" in card and "| **total** | 4 | 3 | 7 |" in card
    assert "no ground truth: sources disagree | 1 |" in card
    assert "--n_correct 4 --n_incorrect 3 --seed 5" in card


def test_same_inputs_and_seed_give_identical_bytes(tmp_path: Path) -> None:
    assert (
        run_cli(tmp_path / "a") == 0
        and run_cli(tmp_path / "b") == 0
        and run_cli(tmp_path / "c", "--seed", "1") == 0
    )
    for name in OUTPUT_FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "saa.jsonl").read_bytes() != (tmp_path / "c" / "saa.jsonl").read_bytes()


@pytest.mark.skipif(not (REAL / "sources").is_dir(), reason=f"shared BCT data not found at {REAL}")
def test_real_build_is_deterministic(tmp_path: Path) -> None:
    args = {
        "bct": str(REAL / "deprecated_train_original_release" / "bct_non_cot.jsonl"),
        "sources": str(REAL / "sources"),
    }
    first = build(BuildConfig(out=str(tmp_path / "one"), **args))
    second = build(BuildConfig(out=str(tmp_path / "two"), **args))
    assert len(first.records) == 1000
    assert (first.out / "saa.jsonl").read_bytes() == (second.out / "saa.jsonl").read_bytes()


def test_drop_flagged_and_exclude_overlap(tmp_path: Path) -> None:
    eval_dir = write_eval_folder(tmp_path / "eval", trivia=["How many legs does a spider have?"], mc=[])
    out = tmp_path / "clean"
    assert run_cli(out, "--drop_flagged", "--exclude_overlap", "--eval_data_dir", str(eval_dir)) == 0
    report = json.loads((out / "build_report.json").read_text())
    counts = report["counts"]
    assert (counts["dropped_flagged"], counts["dropped_overlap"]) == (2, 1)  # rows 16, 17; row 4
    assert (counts["eligible_correct"], counts["eligible_incorrect"]) == (8, 4)
    kept = {json.loads(line)["bct_index"] for line in (out / "saa.jsonl").read_text().splitlines()}
    assert not kept & {4, 16, 17}
    assert json.loads((out / "overlap.json").read_text())["matches"][0]["bct_index"] == 4
    assert "Flagged rows were dropped before sampling." in (out / "README.md").read_text()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--n_correct", "10"],
            "Too few eligible rows (default split; 15 labelled rows after exclusions): "
            "correct: asked for 10, 9 eligible",
        ),
        (["--polarity_aware", "--n_correct", "7"], "correct: asked for 7, 6 eligible"),
        (["--bct", "/nonexistent/bct.jsonl"], "--bct /nonexistent/bct.jsonl: file not found"),
        (["--sources", "/nonexistent"], "--sources /nonexistent: missing all source file(s)"),
        (["--overlap_ngram", "0"], "--overlap_ngram must be >= 1"),
    ],
)
def test_bad_input_fails_clearly_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "out"
    assert run_cli(out, *extra) == 2
    err = capsys.readouterr().err
    assert message in err and f"Nothing was written to {out}." in err
    assert list(tmp_path.iterdir()) == []


def test_bad_bct_row_and_existing_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = (FIXTURES / "bct_sample.jsonl").read_text().splitlines()
    lines[3] = lines[3].replace("Answer choices:", "Choices:")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert (
        cli.main(["build", "--out", str(out), "--bct", str(bad), "--sources", str(FIXTURES / "sources")]) == 2
    )
    assert f"{bad}:4 (bct_index 3): expected exactly one 'Answer choices:'" in capsys.readouterr().err
    assert not out.exists()

    assert run_cli(out) == 0
    before = (out / "saa.jsonl").read_bytes()
    assert run_cli(out, "--seed", "3") == 2
    assert "already exists and is not empty; pass --overwrite" in capsys.readouterr().err
    assert (out / "saa.jsonl").read_bytes() == before
    assert run_cli(out, "--seed", "3", "--overwrite") == 0
    assert (out / "saa.jsonl").read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "out"]


class FakeHub:
    """Stands in for huggingface_hub.HfApi: records what would be uploaded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def create_repo(self, **kwargs: object) -> None:
        self.calls.append(("create_repo", kwargs))

    def create_commit(self, **kwargs: object) -> str:
        self.calls.append(("create_commit", kwargs))
        return "https://hub.example/commit/1"


def test_push_to_hub_uploads_the_build(tmp_path: Path) -> None:
    assert run_cli(tmp_path / "saa") == 0
    api = FakeHub()
    assert (
        hub.push_to_hub(tmp_path / "saa", "someone/saa", private=True, api=api)
        == "https://hub.example/commit/1"
    )
    (name, repo), (name2, commit) = api.calls
    assert (name, repo) == (
        "create_repo",
        {"repo_id": "someone/saa", "repo_type": "dataset", "private": True, "exist_ok": True},
    )
    assert name2 == "create_commit" and commit["repo_type"] == "dataset"
    uploaded = {op.path_in_repo: Path(op.path_or_fileobj) for op in commit["operations"]}
    assert set(uploaded) == set(OUTPUT_FILES)
    assert uploaded["saa.jsonl"].read_bytes() == (tmp_path / "saa" / "saa.jsonl").read_bytes()
    (tmp_path / "saa" / "README.md").unlink()
    with pytest.raises(FileNotFoundError, match="missing README.md"):
        hub.upload_operations(tmp_path / "saa")
