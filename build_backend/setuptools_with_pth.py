"""setuptools' build backend, plus lm-eval's start-up hook at the top of every wheel it builds.

The hook (``lm_eval_tasks/lm_eval_tasks_auto_include.pth``, see ``lm_eval_tasks/auto_include.py``)
works only at the top of site-packages. Package data cannot go there, and setuptools' editable
wheels carry no data files (pypa/setuptools#3399), so this backend adds the file to each wheel
setuptools builds, regular and editable, with its RECORD line: pip installs and uninstalls it like any
other file. Every other PEP 517 hook is setuptools' own.
"""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from pathlib import Path

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403  (the hooks not wrapped here)

PTH = Path(__file__).resolve().parents[1] / "lm_eval_tasks" / "lm_eval_tasks_auto_include.pth"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):  # noqa: F811
    name = _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)
    add_to_wheel(Path(wheel_directory) / name, PTH)
    return name


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):  # noqa: F811
    name = _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
    add_to_wheel(Path(wheel_directory) / name, PTH)
    return name


def add_to_wheel(wheel: Path, path: Path) -> None:
    """Put ``path`` at the top of ``wheel`` and list it in the wheel's RECORD (rewrites the archive)."""
    data = path.read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    with zipfile.ZipFile(wheel) as old:
        members = [(info, old.read(info)) for info in old.infolist()]
    record = next(info for info, _ in members if info.filename.endswith(".dist-info/RECORD"))
    entry = zipfile.ZipInfo(path.name, date_time=record.date_time)
    entry.compress_type = zipfile.ZIP_DEFLATED
    entry.external_attr = 0o644 << 16
    partial = wheel.with_name(wheel.name + ".part")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as new:
        new.writestr(entry, data)  # before the .dist-info folder, which a wheel keeps last
        for info, content in members:
            if info is record:
                content = content.rstrip(b"\n") + f"\n{path.name},sha256={digest},{len(data)}\n".encode()
            new.writestr(info, content)
    os.replace(partial, wheel)
