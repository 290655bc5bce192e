"""Fresh virtual environments for the install tests: the kit as a user gets it, nothing else of ours.

A fresh venv borrows this one's dependencies (lm-eval, torch, pip) through a plain path line, so the
borrowed folder's own ``.pth`` files (this checkout's editable install, the start-up hook) do not run
there: the kit exists in the new venv only as the test installs it. The wheel is built once per
session from a copy of the checkout (``kit_wheel`` in ``conftest.py``), so the checkout gets no
``build/`` leftovers that could reach a wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from sycophancy_eval_kit.core.procs import run_group

REPO = Path(__file__).resolve().parents[1]
BASE_SITE = Path(sysconfig.get_paths()["purelib"])
#: the variables a test's own environment must not pass on: a path of ours, the hook's switch
_DROPPED_ENV = ("PYTHONPATH", "SYCOPHANCY_AUTO_INCLUDE")


def site_of(python: Path) -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return python.parents[1] / "lib" / version / "site-packages"


def fresh_venv(path: Path) -> Path:
    """A venv without the kit that borrows this one's dependencies; its Python."""
    if (BASE_SITE / "sycophancy_eval_kit").exists():
        pytest.skip(f"{BASE_SITE} holds a non-editable copy of the kit; reinstall it with `make install`")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    (site_of(python) / "_borrowed_dependencies.pth").write_text(f"{BASE_SITE}\n")
    return python


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    return {**env, "PIP_NO_INDEX": "1", **extra}


def run_ok(
    cmd: list[str | Path], cwd: Path, timeout: float = 240, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` (its whole process tree bounded by ``timeout``); on failure, fail with its output."""
    result = run_group([str(c) for c in cmd], timeout=timeout, cwd=cwd, env=clean_env(**env))
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def pip_install(python: Path, *args: str | Path) -> None:
    pip = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    run_ok([*pip, *args], cwd=python.parent)


def build_wheel(out: Path) -> Path:
    """The kit's wheel, built without network from a copy of this checkout (no build/ left here)."""
    src = out / "src"
    ignore = shutil.ignore_patterns(
        ".venv*", ".git", "build", "dist", "*.egg-info", "__pycache__", "*_cache", "outputs", "demo_output"
    )
    shutil.copytree(REPO, src, ignore=ignore)
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    run_ok([*pip, "-w", out, src], cwd=out)
    (wheel,) = out.glob("sycophancy_eval_kit-*.whl")
    return wheel
