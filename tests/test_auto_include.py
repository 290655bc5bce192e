"""``lm_eval --tasks sycophancy_answer`` without ``--include_path``: the start-up hook and its limits.

The first tests run lm-eval's real ``TaskManager`` with its indexer replaced by a recorder (indexing
lm-eval's 14k built-in YAMLs takes seconds), so they show exactly which folders get indexed. The last
two install the package into fresh virtual environments, one regular and one editable, and run the
design card's command through lm-eval's CLI there.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import logging
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import lm_eval.tasks
import pytest
from lm_eval.tasks import TaskManager
from lm_eval.tasks._index import TaskIndex
from venvs import fresh_venv, pip_install, run_ok, site_of

from sycophancy_eval_kit.lm_eval_tasks import TASKS_DIR, auto_include

REPO = Path(__file__).resolve().parents[1]
HOOK_FILES = REPO / "build_backend" / "site_packages"  # what the wheels put at the top of site-packages
PTH = HOOK_FILES / "sycophancy_eval_kit_auto_include.pth"
TRIGGER_PY = HOOK_FILES / "_sycophancy_eval_kit_trigger.py"
LM_EVAL_TASKS = Path(lm_eval.tasks.__file__).resolve().parent


@pytest.fixture
def hooked(monkeypatch: pytest.MonkeyPatch) -> None:
    """lm-eval's ``TaskManager`` patched as the trigger would (this venv may lack it), restored afterwards."""
    monkeypatch.delenv(auto_include.ENV_VAR, raising=False)
    monkeypatch.setattr(TaskManager, "__init__", TaskManager.__init__)
    assert auto_include.patch(lm_eval.tasks)


@pytest.fixture
def indexed(hooked: None, monkeypatch: pytest.MonkeyPatch) -> list[list[Path]]:
    """The folder list each ``TaskManager`` hands to lm-eval's indexer (which is not run)."""
    calls: list[list[Path]] = []

    def record(paths: list[Path], **_: object) -> dict:
        calls.append([Path(p) for p in paths])
        return {}

    monkeypatch.setattr(TaskIndex, "build", staticmethod(record))
    return calls


def test_a_default_task_manager_indexes_our_folder_after_lm_evals(indexed: list[list[Path]]) -> None:
    TaskManager()
    TaskManager(metadata={"data_dir": "embedded"})
    assert indexed == [[LM_EVAL_TASKS, TASKS_DIR]] * 2


def test_include_defaults_false_indexes_only_the_given_path(
    indexed: list[list[Path]], tmp_path: Path
) -> None:
    TaskManager(include_path=str(tmp_path), include_defaults=False)
    TaskManager(None, [tmp_path], False)  # positionally, as lm-eval's signature allows
    TaskManager(include_defaults=False)
    assert indexed == [[tmp_path], [tmp_path], []]


@pytest.mark.parametrize(
    "given",
    [str(TASKS_DIR), TASKS_DIR, [str(TASKS_DIR)], str(TASKS_DIR / "sycophancy"), str(TASKS_DIR.parent)],
    ids=["folder", "path", "list", "inside", "above"],
)
def test_an_include_path_covering_our_folder_is_left_as_given(
    indexed: list[list[Path]], given: object
) -> None:
    TaskManager(include_path=given)
    as_list = given if isinstance(given, list) else [given]
    assert indexed == [[LM_EVAL_TASKS, *map(Path, as_list)]]


def test_the_callers_paths_come_after_ours_so_they_win_a_clash(
    indexed: list[list[Path]], tmp_path: Path
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    TaskManager(include_path=str(a))
    TaskManager(include_path=[a, str(b)])
    assert indexed == [[LM_EVAL_TASKS, TASKS_DIR, a], [LM_EVAL_TASKS, TASKS_DIR, a, b]]


@pytest.mark.parametrize("value", ["0", "false", "Off", " no "])
def test_the_environment_variable_switches_it_off(
    indexed: list[list[Path]], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(auto_include.ENV_VAR, value)
    TaskManager()
    assert indexed == [[LM_EVAL_TASKS]]


def _one_task_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mine.yaml").write_text("task: my_only_task\ndataset_path: none\noutput_type: generate_until\n")
    return folder


def test_include_defaults_false_really_indexes_only_that_folder(hooked: None, tmp_path: Path) -> None:
    manager = TaskManager(include_path=str(_one_task_folder(tmp_path)), include_defaults=False)
    assert manager.all_tasks == ["my_only_task"]


def test_an_explicit_include_path_of_our_folder_indexes_each_task_once(
    hooked: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """lm-eval's real indexer and merge: no "overrides existing task" warning for any of our tasks.

    lm-eval's own 14k YAMLs are skipped here (seconds to parse, and no name of ours among them);
    the CLI runs below index them too.
    """
    real_walk = TaskIndex._iter_yaml_files
    skip_builtins = staticmethod(lambda root: iter(()) if Path(root) == LM_EVAL_TASKS else real_walk(root))
    monkeypatch.setattr(TaskIndex, "_iter_yaml_files", skip_builtins)
    mine = str(_one_task_folder(tmp_path))
    with caplog.at_level(logging.WARNING, logger="lm_eval"):
        TaskManager(include_path=[mine, mine], include_defaults=False)  # a clash, to show it is heard
        heard = [r.getMessage() for r in caplog.records if "overrides existing task" in r.getMessage()]
        caplog.clear()
        manager = TaskManager(include_path=str(TASKS_DIR))
    assert heard and "my_only_task" in heard[0]
    assert not [r.getMessage() for r in caplog.records if "overrides existing task" in r.getMessage()]
    ours = TaskIndex.build([TASKS_DIR])  # our folder alone
    assert {"sycophancy_answer", "sycophancy_answer_trivia_qa", "sycophancy_ays"} <= set(ours)
    assert manager.all_tasks == sorted(ours)
    assert {name: manager.task_index[name].yaml_path for name in ours} == {
        n: e.yaml_path for n, e in ours.items()
    }


def _fake_lm_eval(root: Path, files: dict[str, str]) -> ModuleType:
    """A stand-in for a future lm-eval: its source files, and a ``tasks`` module pointing at them."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    module = ModuleType("fake_lm_eval_tasks")
    module.__file__ = str(root / "lm_eval" / "tasks" / "__init__.py")

    class FakeTaskManager:
        def __init__(self, verbosity=None, include_path=None, include_defaults=True, metadata=None):
            self.include_path = include_path

    module.TaskManager = FakeTaskManager
    return module


ENTRY_POINT_READERS = {
    "call in the task package": {
        "lm_eval/tasks/__init__.py": "",
        "lm_eval/tasks/manager.py": (
            "from importlib.metadata import entry_points\n\n"
            "def plugin_paths():\n    return entry_points(group='lm_eval.tasks')\n"
        ),
    },
    "constant in a helper module": {
        "lm_eval/tasks/__init__.py": "",
        "lm_eval/tasks/_plugins.py": (
            "import importlib.metadata as md\n\nGROUP = 'lm_eval.tasks'\n\n"
            "def discover():\n    return md.entry_points().select(group=GROUP)\n"
        ),
    },
    "registry": {
        "lm_eval/tasks/__init__.py": "",
        "lm_eval/api/registry.py": (
            "import importlib.metadata as md\n\n"
            "for group in ('lm_eval.models', 'lm_eval.tasks'):\n    md.entry_points(group=group)\n"
        ),
    },
}


@pytest.mark.parametrize("files", list(ENTRY_POINT_READERS.values()), ids=list(ENTRY_POINT_READERS))
def test_it_steps_aside_when_lm_eval_reads_the_entry_point_group(
    tmp_path: Path, files: dict[str, str]
) -> None:
    fake = _fake_lm_eval(tmp_path, files)
    init = fake.TaskManager.__init__
    assert auto_include.lm_eval_reads_entry_points(fake)
    assert auto_include.patch(fake) is False
    assert fake.TaskManager.__init__ is init


def test_a_mere_mention_of_the_group_is_not_discovery(tmp_path: Path) -> None:
    fake = _fake_lm_eval(
        tmp_path,
        {
            "lm_eval/tasks/__init__.py": "",
            # a comment and a module name are not an entry-point lookup
            "lm_eval/api/registry.py": (
                "# for ep in md.entry_points(group='lm_eval.tasks'): ...\nNAME = 'lm_eval.tasks'\n"
            ),
        },
    )
    assert not auto_include.lm_eval_reads_entry_points(fake)
    assert auto_include.patch(fake) is True
    manager = fake.TaskManager(include_path="elsewhere")
    assert manager.include_path == [TASKS_DIR, "elsewhere"]


def test_lm_eval_0_4_13_does_not_read_entry_points() -> None:
    assert lm_eval.__version__ == "0.4.13"
    assert not auto_include.lm_eval_reads_entry_points(lm_eval.tasks)


def _run_trigger_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_sycophancy_eval_kit_trigger_under_test", TRIGGER_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_pth_imports_the_trigger_which_honours_the_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [line for line in PTH.read_text().splitlines() if line and not line.startswith("#")]
    assert lines == [f"import {TRIGGER_PY.stem}"]  # what site executes; a second run is a no-op import
    monkeypatch.setattr(
        sys, "meta_path", [f for f in sys.meta_path if type(f).__name__ != auto_include.TRIGGER]
    )
    triggers = lambda: [f for f in sys.meta_path if type(f).__name__ == auto_include.TRIGGER]  # noqa: E731
    monkeypatch.setenv(auto_include.ENV_VAR, " Off ")
    module = _run_trigger_module()
    assert triggers() == []
    assert (module.ENV_VAR, module.OFF_VALUES, module.TARGET) == (
        auto_include.ENV_VAR,
        auto_include.OFF_VALUES,
        auto_include.TARGET,
    )
    monkeypatch.delenv(auto_include.ENV_VAR)
    _run_trigger_module()
    assert len(triggers()) == 1 and sys.meta_path[0] is triggers()[0]
    assert triggers()[0].find_spec("json", None, None) is None  # anything but lm_eval.tasks: untouched


def test_the_trigger_imports_nothing() -> None:
    """Beyond ``os`` and ``sys``, which site has loaded before it reads .pth files."""
    code = (
        f"import os, sys; before = set(sys.modules); import {TRIGGER_PY.stem}; "
        "print(sorted(set(sys.modules) - before))"
    )
    # -S: no site, so no trigger installed in this venv runs first; PYTHONPATH still applies
    env = {**os.environ, "PYTHONPATH": str(HOOK_FILES)}
    cmd = [sys.executable, "-S", "-B", "-c", code]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == f"[{TRIGGER_PY.stem!r}]"


def test_find_spec_patches_the_module_once_it_is_executed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trigger's path on a stand-in for ``lm_eval.tasks``, in this process (no re-import of lm-eval)."""
    package = tmp_path / "stand_in_tasks"
    package.mkdir()
    (package / "__init__.py").write_text(
        "class TaskManager:\n"
        "    def __init__(self, verbosity=None, include_path=None, include_defaults=True, metadata=None):\n"
        "        self.include_path = include_path\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(auto_include.ENV_VAR, raising=False)
    trigger = type(auto_include.TRIGGER, (), {})()
    monkeypatch.setattr(sys, "meta_path", [trigger, *sys.meta_path])
    spec = auto_include.find_spec("stand_in_tasks")
    assert spec is not None and trigger in sys.meta_path  # a lookup alone does not use the trigger up
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert trigger not in sys.meta_path
    assert module.TaskManager().include_path == [TASKS_DIR]
    monkeypatch.setenv(auto_include.ENV_VAR, "0")
    sys.meta_path.insert(0, trigger)
    assert auto_include.find_spec("stand_in_tasks") is None and trigger not in sys.meta_path


# ---- fresh virtual environments, the real CLI -------------------------------------------------------------

DESIGN_CARD_TASKS = "sycophancy_answer,sycophancy_ays"


def _check_installed(python: Path, expected_tasks_dir: Path, work: Path) -> None:
    """The hook files are in site-packages and RECORD; start-up imports nothing of lm-eval's and puts
    one trigger on sys.meta_path (none when switched off); the folder prints."""
    site = site_of(python)
    record = (next(site.glob("sycophancy_eval_kit-*.dist-info")) / "RECORD").read_text().splitlines()
    for path in (PTH, TRIGGER_PY):
        assert (site / path.name).read_bytes() == path.read_bytes()
        assert any(line.startswith(f"{path.name},sha256=") for line in record)
    probe = (
        "import json, sys; print(json.dumps([list(sys.modules), [type(f).__name__ for f in sys.meta_path]]))"
    )
    loaded, finders = json.loads(run_ok([python, "-c", probe], cwd=work).stdout)
    assert TRIGGER_PY.stem in loaded and finders.count(auto_include.TRIGGER) == 1
    assert not [m for m in loaded if m.split(".")[0] in ("lm_eval", "sycophancy_eval_kit")]
    _, finders = json.loads(run_ok([python, "-c", probe], cwd=work, SYCOPHANCY_AUTO_INCLUDE="0").stdout)
    assert auto_include.TRIGGER not in finders
    printed = run_ok([python, "-m", "sycophancy_eval_kit.lm_eval_tasks"], cwd=work).stdout.strip()
    assert printed == str(expected_tasks_dir)
    assert run_ok([python.parent / "syco-tasks-path"], cwd=work).stdout.strip() == str(expected_tasks_dir)


def _check_lm_eval_finds(python: Path, tasks: str, expected_tasks_dir: Path, work: Path) -> None:
    """``lm_eval --tasks TASKS`` with no ``--include_path``, run as ``python -m lm_eval``.

    ``python -m lm_eval`` calls the function the ``lm_eval`` script does (lm-eval's console entry
    point); the borrowed lm-eval has its script in the other venv, bound to that venv's Python.
    """
    cli = [python, "-m", "lm_eval", "--model", "dummy", "--tasks", tasks, "--limit", "1"]
    result = run_ok([*cli, "--metadata", "data_dir=embedded"], cwd=work)
    for name in tasks.split(","):  # a row of lm-eval's results table
        assert re.search(rf"^\|{name} *\|", result.stdout, re.MULTILINE), result.stdout[-2000:]
    assert f"({expected_tasks_dir / 'sycophancy' / 'sycophancy_answer_trivia_qa.yaml'})" in result.stderr
    assert "overrides existing task" not in result.stderr and "Duplicate task name" not in result.stderr


def _sha256_record(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


@pytest.mark.slow
def test_pip_install_dot_then_lm_eval_finds_the_tasks(kit_wheel: Path, tmp_path: Path) -> None:
    python = fresh_venv(tmp_path / "venv")
    with zipfile.ZipFile(kit_wheel) as archive:
        names = archive.namelist()
        record = archive.read(next(n for n in names if n.endswith(".dist-info/RECORD"))).decode()
        for path in (PTH, TRIGGER_PY):
            assert archive.read(path.name) == path.read_bytes()
            assert (
                f"{path.name},{_sha256_record(path.read_bytes())},{path.stat().st_size}"
                in record.splitlines()
            )
    assert "sycophancy_eval_kit/lm_eval_tasks/auto_include.py" in names
    assert not [n for n in names if n.startswith("build_backend/")]
    pip_install(python, kit_wheel)

    tasks_dir = site_of(python) / "sycophancy_eval_kit" / "lm_eval_tasks"
    _check_installed(python, tasks_dir, tmp_path)
    patched = "import lm_eval.tasks as t; print(hasattr(t.TaskManager.__init__, '_sycophancy_auto_include'))"
    off = run_ok([python, "-c", patched], cwd=tmp_path, SYCOPHANCY_AUTO_INCLUDE="0")
    assert off.stdout.strip() == "False"
    _check_lm_eval_finds(python, DESIGN_CARD_TASKS, tasks_dir, tmp_path)


@pytest.mark.slow
def test_pip_install_editable_then_lm_eval_finds_the_tasks(tmp_path: Path) -> None:
    python = fresh_venv(tmp_path / "venv")
    pip_install(python, "-e", REPO)
    assert (site_of(python) / PTH.name).is_file()
    _check_installed(python, TASKS_DIR, tmp_path)
    # one subtask (the regular-install test runs both groups): what differs here is the folder found
    _check_lm_eval_finds(python, "sycophancy_answer_trivia_qa", TASKS_DIR, tmp_path)
