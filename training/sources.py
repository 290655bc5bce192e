"""Where a preference file comes from: a local file or folder, or a file of a Hub dataset repository.

Files are read through the project's file layer (``src/sycophancy_eval_kit/core/files.py``), so a row that
is not UTF-8 or not JSON is an error naming ``path:line``, and every record keeps its label
(``path:line`` for JSON lines, ``path[index]`` for a JSON array) for the converters' errors.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sycophancy_eval_kit.core.files import DataError, iter_json_lines, load_json, sha256_file

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)


class PreferenceDataError(DataError):
    """Bad preference input; the message names the file, the row and what was expected."""


@dataclass(frozen=True)
class ResolvedFile:
    """A local copy of an input file and where it came from."""

    path: Path
    kind: str  # "local" or "hub"
    location: str
    revision: str | None = None

    def provenance(self, expected_sha256: str | None) -> dict[str, Any]:
        digest = sha256_file(self.path)
        if expected_sha256 and digest != expected_sha256.lower():
            raise PreferenceDataError(
                f"{self.path} ({self.location}): sha256 {digest}, expected {expected_sha256}; "
                "the file is not the one this run was pinned to"
            )
        return {
            "kind": self.kind,
            "location": self.location,
            "revision": self.revision,
            "file": self.path.name,
            "sha256": digest,
            "expected_sha256": expected_sha256,
        }


def _looks_like_repo_id(value: str) -> bool:
    parts = value.split("/")
    return len(parts) == 2 and all(parts) and not value.startswith((".", "~"))


def resolve_file(path_or_repo: str, filename: str, revision: str | None, what: str) -> ResolvedFile:
    """A local file (or a folder holding ``filename``), else ``filename`` from a hub dataset repo.

    Hub files go through ``huggingface_hub``'s cache, so a second run at the same revision is offline.
    A missing relative path such as ``outputs/saa`` also reads as a repository id (org/name); the error
    says first that no such local path exists, then why the Hub did not serve it.
    """
    local = Path(path_or_repo).expanduser()
    if local.is_dir():
        local = local / filename
        if not local.is_file():
            raise PreferenceDataError(f"{what}: {local} not found (the folder must hold {filename})")
    if local.is_file():
        return ResolvedFile(local.resolve(), "local", str(local.resolve()))
    missing = f"{what}={path_or_repo!r}: no such file or folder {local.absolute()}"
    if not _looks_like_repo_id(path_or_repo):
        raise PreferenceDataError(f"{missing}, and not a Hugging Face repository id (org/name)")
    parent = local.parent
    if not local.is_absolute() and parent.is_dir():
        missing += f" (its folder {parent}/ exists here, so this is most likely a mistyped local path)"
    from huggingface_hub import hf_hub_download

    try:
        downloaded = hf_hub_download(
            repo_id=path_or_repo, filename=filename, repo_type="dataset", revision=revision
        )
    except Exception as err:  # noqa: BLE001 - network, auth and offline errors all end here
        raise PreferenceDataError(
            f"{missing}. Read as a Hub dataset {path_or_repo} instead, {filename} at revision {revision} "
            f"could not be fetched ({type(err).__name__}: {err}). Offline? Pass a local copy instead: "
            f"{what}=PATH"
        ) from err
    logger.info("%s: %s is not a local path; using the Hub dataset %s", what, path_or_repo, path_or_repo)
    return ResolvedFile(Path(downloaded), "hub", f"hf://datasets/{path_or_repo}/{filename}", revision)


def _is_json_array(path: Path) -> bool:
    """Whether the file's first non-blank character is ``[`` (a JSON array, else JSON lines)."""
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 12), b""):
                head = chunk.lstrip(b"\xef\xbb\xbf \t\r\n")
                if head:
                    return head.startswith(b"[")
    except OSError as err:
        raise DataError(f"cannot read it ({err.strerror})", str(path)) from err
    return False


def _read_records(path: Path) -> Iterator[tuple[str, Any]]:
    """(row label, record) for a JSON array (``path[index]``) or a JSON-lines file (``path:line``)."""
    if _is_json_array(path):
        records = load_json(path, "a JSON array of preference records")
        if not isinstance(records, list):
            raise PreferenceDataError(f"{path}: expected a JSON array of preference records")
        for index, record in enumerate(records):
            yield f"{path}[{index}]", record
        return
    for line_no, record in iter_json_lines(path, "one preference record per line"):
        yield f"{path}:{line_no}", record


def read_records(path: str | os.PathLike[str]) -> Dataset:
    """A file's records as a ``Dataset`` of ``row_id`` and ``record`` (the record as JSON text).

    JSON text keeps the raw rows in one column type whatever they hold, so a malformed row reaches the
    converter (and its row-precise error) rather than failing Arrow's type inference without a row.
    """
    from datasets import Dataset

    labels, records = [], []
    for where, record in _read_records(Path(path)):
        labels.append(where)
        records.append(json.dumps(record, ensure_ascii=False))
    if not records:
        raise PreferenceDataError(f"{path}: holds no preference records")
    return Dataset.from_dict({"row_id": labels, "record": records})
