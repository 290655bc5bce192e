"""Replacing an output folder: a process killed at each step of the swap leaves nothing the next run
cannot repair. Each kill is placed deterministically, by a hook in a child process that SIGKILLs (or
SIGTERMs) itself at one step, never by racing a timer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sycophancy_eval_kit.core import files

REPO = Path(__file__).resolve().parents[1]

#: replaces ``target`` (holding ``version`` = "old") with a copy holding "new", dying at ``mode``.
CHILD = r"""
import os, shutil, signal, sys
from pathlib import Path
from sycophancy_eval_kit.core import files

target, mode = Path(sys.argv[1]), sys.argv[2]
die = lambda sig=signal.SIGKILL: os.kill(os.getpid(), sig)
if mode in ("between_renames", "sigterm_during_swap"):
    files.exchange_paths = lambda a, b: False  # the two-rename fallback
    real_rename = os.rename
    def rename(src, dst):
        real_rename(src, dst)
        if files.OLD_TAG in Path(dst).name:  # the old copy is aside, the new one not yet in place
            die(signal.SIGKILL if mode == "between_renames" else signal.SIGTERM)
    os.rename = rename
if mode == "after_exchange":
    real_rmtree = shutil.rmtree
    def rmtree(path, *args, **kwargs):
        if files.TMP_TAG in Path(path).name and target.joinpath("version").read_text() == "new":
            die()  # swapped, the replaced copy not yet removed
        real_rmtree(path, *args, **kwargs)
    shutil.rmtree = rmtree
with files.replacing_dir(target) as new:
    (new / "version").write_text("half")
    if mode in ("sigkill_while_writing", "sigterm_while_writing"):
        die(signal.SIGKILL if mode == "sigkill_while_writing" else signal.SIGTERM)
    (new / "version").write_text("new")
"""


def _old_copy(tmp_path: Path) -> Path:
    target = tmp_path / "site"
    target.mkdir()
    (target / "version").write_text("old")
    return target


def _run(target: Path, mode: str) -> int:
    return subprocess.run([sys.executable, "-c", CHILD, str(target), mode], cwd=REPO, timeout=120).returncode


def _beside(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir())


def test_a_swap_replaces_the_folder_and_leaves_nothing_beside_it(tmp_path: Path) -> None:
    target = _old_copy(tmp_path)
    assert _run(target, "none") == 0
    assert (target / "version").read_text() == "new" and _beside(target) == ["site"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o777 & ~_umask())  # not mkdtemp's 0700


def test_kill_between_the_two_renames_restores_the_old_copy(tmp_path: Path) -> None:
    target = _old_copy(tmp_path)
    assert _run(target, "between_renames") == -signal.SIGKILL
    assert not target.exists()  # the window the fallback cannot close: target is missing
    assert any(files.OLD_TAG in n for n in _beside(target)) and any(
        files.TMP_TAG in n for n in _beside(target)
    )
    notes = files.recover_dir(target)
    assert (target / "version").read_text() == "old" and _beside(target) == ["site"]
    assert len(notes) == 2 and "restored the previous copy" in notes[0] and "unfinished copy" in notes[1]
    assert files.recover_dir(target) == []  # nothing left to do


def test_sigterm_cannot_split_the_two_renames(tmp_path: Path) -> None:
    target = _old_copy(tmp_path)
    assert _run(target, "sigterm_during_swap") == -signal.SIGTERM
    assert (target / "version").read_text() == "new"  # the signal waited until both renames were done
    assert any("replaced copy" in note for note in files.recover_dir(target))
    assert _beside(target) == ["site"]


@pytest.mark.parametrize("mode", ["sigkill_while_writing", "sigterm_while_writing"])
def test_killed_while_writing_leaves_the_old_copy_and_a_leftover_the_next_run_removes(
    tmp_path: Path, mode: str
) -> None:
    target = _old_copy(tmp_path)
    assert _run(target, mode) < 0
    assert (target / "version").read_text() == "old" and len(_beside(target)) == 2
    assert "unfinished copy" in files.recover_dir(target)[0]
    assert _beside(target) == ["site"]


def test_kill_after_an_atomic_exchange_leaves_the_new_copy(tmp_path: Path) -> None:
    probe_a, probe_b = tmp_path / "a", tmp_path / "b"
    probe_a.mkdir(), probe_b.mkdir()
    if not files.exchange_paths(probe_a, probe_b):
        pytest.skip("this file system has no atomic exchange (renameat2 RENAME_EXCHANGE)")
    probe_a.rmdir(), probe_b.rmdir()
    target = _old_copy(tmp_path)
    assert _run(target, "after_exchange") == -signal.SIGKILL
    assert (target / "version").read_text() == "new"  # never missing, not even for an instant
    assert "unfinished copy" in files.recover_dir(target)[0]  # the replaced copy, under the temp name
    assert _beside(target) == ["site"]


def test_a_live_process_s_folder_is_left_alone(tmp_path: Path) -> None:
    target = _old_copy(tmp_path)
    with files.replacing_dir(target) as new:
        assert files.recover_dir(target) == [] and new.is_dir()  # our own work in progress (locked)
    stale = tmp_path / f".site{files.TMP_TAG}dead"
    stale.mkdir()
    assert files.recover_dir(target) == [
        f"removed {stale}, an unfinished copy an interrupted run left behind"
    ]


def test_an_error_in_the_block_removes_the_new_copy(tmp_path: Path) -> None:
    target = _old_copy(tmp_path)
    with pytest.raises(RuntimeError), files.replacing_dir(target) as new:
        (new / "version").write_text("new")
        raise RuntimeError("disk full")
    assert (target / "version").read_text() == "old" and _beside(target) == ["site"]


def test_first_build_creates_the_folder(tmp_path: Path) -> None:
    target = tmp_path / "deeper" / "site"
    with files.replacing_dir(target) as new:
        (new / "version").write_text("new")
    assert (target / "version").read_text() == "new" and _beside(target) == ["site"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
