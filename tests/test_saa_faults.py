"""``saa_data build`` under faults: an --out that holds its inputs, repeated BCT rows, interrupted
replacements, unwritable places, a failed upload and out-of-range options. Each ends in a clear message
(never a traceback), and nothing already built or given as input is lost.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sycophancy_eval_kit.saa_data import cli, hub

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "saa"
SMALL = ["--n_correct", "4", "--n_incorrect", "3"]


def _inputs_in(folder: Path) -> list[str]:
    """A writable copy of the fixture inputs in ``folder``; the flags that name them."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / "bct_sample.jsonl", folder / "bct.jsonl")
    shutil.copytree(FIXTURES / "sources", folder / "sources")
    return ["--bct", str(folder / "bct.jsonl"), "--sources", str(folder / "sources")]


def _build(out: Path, *extra: str, inputs: list[str] | None = None) -> int:
    flags = inputs or ["--bct", str(FIXTURES / "bct_sample.jsonl"), "--sources", str(FIXTURES / "sources")]
    return cli.main(["build", "--out", str(out), *flags, *SMALL, *extra])


# ------------------------------------------------------------------------------ --out vs inputs
@pytest.mark.parametrize(
    ("out", "option"),
    [
        ("data", "holds --bct"),  # the folder holding both inputs
        ("data/sources", "holds --sources"),  # the input folder itself
        ("data/sources/saa", "is inside --sources"),
        ("link", "holds --bct"),  # the same folder through a symbolic link
    ],
)
def test_an_out_that_holds_or_is_inside_an_input_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], out: str, option: str
) -> None:
    inputs = _inputs_in(tmp_path / "data")
    (tmp_path / "link").symlink_to(tmp_path / "data")
    before = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "data").rglob("*"))
    assert _build(tmp_path / out, "--overwrite", inputs=inputs) == 2
    err = capsys.readouterr().err
    assert option in err and "choose an output folder outside the inputs" in err and "Traceback" not in err
    assert sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "data").rglob("*")) == before


def test_the_download_cache_is_an_input_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "work" / "cache"
    cache.mkdir(parents=True)
    assert _build(tmp_path / "work", "--overwrite", "--cache_dir", str(cache)) == 2
    assert "holds --cache_dir" in capsys.readouterr().err and cache.is_dir()


# ------------------------------------------------------------------------------ repeated rows
def test_repeated_prompts_become_one_pair_and_are_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = (FIXTURES / "bct_sample.jsonl").read_text(encoding="utf-8").splitlines()
    other_answer = json.loads(lines[0])
    other_answer["messages"][1]["content"] = "something else entirely"
    bct = tmp_path / "bct.jsonl"  # 18 rows, then 17 of them again, then row 0 with another answer
    bct.write_text("\n".join(lines + lines[1:] + [json.dumps(other_answer)]) + "\n", encoding="utf-8")
    out = tmp_path / "saa"
    with caplog.at_level(logging.WARNING):
        code = cli.main(
            ["build", "--out", str(out), "--bct", str(bct), "--sources", str(FIXTURES / "sources")]
            + ["--n_correct", "9", "--n_incorrect", "6"]  # every eligible row: a repeat would show
        )
    assert code == 0
    assert "dropped 18 row(s) repeating an earlier prompt" in caplog.text
    assert "18 repeated prompt(s) dropped" in capsys.readouterr().out
    records = [json.loads(line) for line in (out / "saa.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == 15 and len({r["instruction"] for r in records}) == 15
    assert max(r["bct_index"] for r in records) < len(lines)  # the first copy is the one kept
    counts = json.loads((out / "build_report.json").read_text())["counts"]
    assert (counts["parsed"], counts["duplicate_prompts_dropped"], counts["labelled"]) == (36, 18, 15)
    assert "| repeats of an earlier prompt dropped (first kept) | 18 |" in (out / "README.md").read_text()


# ------------------------------------------------------------------------ interrupted writes
#: runs the CLI in a child that dies at one step of the --overwrite swap (the two-rename fallback).
KILL_CHILD = r"""
import os, signal, sys
from pathlib import Path
from sycophancy_eval_kit.core import files
import sycophancy_eval_kit.saa_data.builder as builder

mode, argv = sys.argv[1], sys.argv[2:]
files.exchange_paths = lambda a, b: False
for name in ("rename", "replace"):
    real = getattr(os, name)
    def hooked(src, dst, *args, _real=real, **kwargs):
        _real(src, dst, *args, **kwargs)
        if mode == "between_renames" and ".old-" in str(dst):
            os.kill(os.getpid(), signal.SIGKILL)
    setattr(os, name, hooked)
real_write = builder.write_outputs
def write_outputs(folder, *args):
    real_write(folder, *args)
    if mode == "sigterm_while_writing":
        os.kill(os.getpid(), signal.SIGTERM)
builder.write_outputs = write_outputs
from sycophancy_eval_kit.saa_data import cli
sys.exit(cli.main(argv))
"""


def _argv(out: Path, *extra: str) -> list[str]:
    fixture = ["--bct", str(FIXTURES / "bct_sample.jsonl"), "--sources", str(FIXTURES / "sources")]
    return ["build", "--out", str(out), *fixture, *SMALL, *extra]


def test_a_rerun_restores_the_build_a_killed_overwrite_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "saa"
    assert cli.main(_argv(out)) == 0
    previous = (out / "saa.jsonl").read_bytes()
    env = {**os.environ, "SYCOPHANCY_DATA_DIR": "embedded"}
    child = [sys.executable, "-c", KILL_CHILD, "between_renames", *_argv(out, "--seed", "3", "--overwrite")]
    assert subprocess.run(child, cwd=REPO, env=env, timeout=300).returncode == -signal.SIGKILL
    assert not out.exists()  # killed between the renames: the old build sits under a hidden name
    with caplog.at_level(logging.WARNING):
        assert cli.main(_argv(out, "--seed", "3")) == 2  # no --overwrite: the restored build stays
    assert "restored the previous copy" in caplog.text
    assert "already exists and is not empty" in capsys.readouterr().err
    assert (out / "saa.jsonl").read_bytes() == previous
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "syco-cache") == ["saa"]


def test_a_rerun_removes_what_a_sigterm_left(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "saa"
    env = {**os.environ, "SYCOPHANCY_DATA_DIR": "embedded"}
    child = [sys.executable, "-c", KILL_CHILD, "sigterm_while_writing", *_argv(out)]
    assert subprocess.run(child, cwd=REPO, env=env, timeout=300).returncode == -signal.SIGTERM
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]  # the half-written copy
    with caplog.at_level(logging.WARNING):
        assert cli.main(_argv(out)) == 0
    assert "an unfinished copy an interrupted run left behind" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "syco-cache") == ["saa"]


def test_overwrite_never_deletes_a_folder_saa_did_not_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out . inside a project with --overwrite: refused, naming the folder and what is in it, and
    nothing of the project is touched (before, the project was left holding only the six SAA files)."""
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / "main.py").write_text("print('mine')\n")
    assert cli.main(_argv(project, "--overwrite")) == 2
    err = capsys.readouterr().err
    assert f"--out {project} is a non-empty folder that syco-saa did not build" in err
    assert ".git, main.py" in err
    assert sorted(p.name for p in project.iterdir()) == [".git", "main.py"]
    # a folder it built is replaced as before
    out = tmp_path / "saa"
    assert cli.main(_argv(out)) == 0 and (out / ".syco-saa").is_file()
    assert cli.main(_argv(out, "--seed", "5", "--overwrite")) == 0


# ----------------------------------------------------------------------------- clear messages
def test_an_unwritable_out_parent_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    assert _build(tmp_path / "a-file" / "saa") == 2
    err = capsys.readouterr().err
    assert "cannot write the build" in err and "a-file" in err and "Traceback" not in err
    if os.geteuid() != 0:  # root writes anywhere: only the file-as-parent case applies there
        (tmp_path / "ro").mkdir(mode=0o555)
        assert _build(tmp_path / "ro" / "saa") == 2
        assert "cannot write the build (Permission denied" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["2", "-0.1", "nan"])
def test_offensive_threshold_outside_0_1_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    assert _build(tmp_path / "saa", "--offensive_threshold", value) == 2
    assert "--offensive_threshold must be in [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "saa").exists()


def test_offline_eval_data_names_saa_data_s_own_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SYCOPHANCY_DATA_DIR")
    monkeypatch.setenv("SYCOPHANCY_DATA_BASE_URL", "http://127.0.0.1:9")  # nothing listens: offline
    assert _build(tmp_path / "saa") == 2
    err = capsys.readouterr().err
    assert "Offline? Pass a local copy with --eval_data_dir PATH" in err and "--metadata" not in err
    assert _build(tmp_path / "saa", "--eval_data_dir", str(tmp_path / "nowhere")) == 2
    err = capsys.readouterr().err
    assert f"--eval_data_dir {tmp_path / 'nowhere'}: not a folder" in err and "data_dir=" not in err


class _OfflineHub:
    def __init__(self, **kwargs: object) -> None:
        pass

    def create_repo(self, **kwargs: object) -> None:
        raise ConnectionError("Failed to resolve 'huggingface.co'")


def test_a_failed_upload_keeps_the_build_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(hub, "HfApi", _OfflineHub)
    out = tmp_path / "saa"
    assert _build(out, "--push_to_hub", "someone/saa") == 1
    err = capsys.readouterr().err
    assert "the upload to someone/saa failed (ConnectionError" in err and "Traceback" not in err
    assert f"The build is kept at {out}; only the upload failed" in err
    assert (out / "saa.jsonl").is_file()
    hub.upload_operations(out)  # complete: ready to upload later


def test_a_malformed_hub_repo_is_refused_before_building(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _build(tmp_path / "saa", "--push_to_hub", "not a repo") == 2
    assert "--push_to_hub 'not a repo'" in capsys.readouterr().err
    assert not (tmp_path / "saa").exists()
