"""setuptools' build backend, plus lm-eval's start-up hook at the top of every wheel it builds.

The hook (the files in ``site_packages/``: a ``.pth`` line that imports a tiny trigger module, see
``lm_eval_tasks/auto_include.py``) works only at the top of site-packages. Package data cannot go
there, and setuptools' editable wheels carry no data files (pypa/setuptools#3399), so this backend
adds the files to each wheel setuptools builds, regular and editable, with their RECORD lines: pip
installs, byte-compiles and uninstalls them like any other file. Every other PEP 517 hook is
setuptools' own.
"""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from pathlib import Path

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403  (the hooks not wrapped here)

SITE_PACKAGES = Path(__file__).resolve().parent / "site_packages"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):  # noqa: F811
    name = _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)
    add_to_wheel(Path(wheel_directory) / name, sorted(SITE_PACKAGES.iterdir()))
    return name


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):  # noqa: F811
    name = _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
    add_to_wheel(Path(wheel_directory) / name, sorted(SITE_PACKAGES.iterdir()))
    return name


def add_to_wheel(wheel: Path, files: list[Path]) -> None:
    """Put ``files`` at the top of ``wheel`` and list them in its RECORD (rewrites the archive)."""
    files = [path for path in files if path.is_file()]  # not a __pycache__ left by a test
    with zipfile.ZipFile(wheel) as old:
        members = [(info, old.read(info)) for info in old.infolist()]
    record = next(info for info, _ in members if info.filename.endswith(".dist-info/RECORD"))
    lines = []
    partial = wheel.with_name(wheel.name + ".part")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as new:
        for path in files:  # before the .dist-info folder, which a wheel keeps last
            data = path.read_bytes()
            entry = zipfile.ZipInfo(path.name, date_time=record.date_time)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            new.writestr(entry, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            lines.append(f"{path.name},sha256={digest},{len(data)}\n")
        for info, content in members:
            if info is record:
                content = content.rstrip(b"\n") + b"\n" + "".join(lines).encode()
            new.writestr(info, content)
    os.replace(partial, wheel)
