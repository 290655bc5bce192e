"""Where the builder's inputs come from: the pinned cot-transparency files, a mirror URL, or local copies.

Defaults are the files of GitHub ``raybears/cot-transparency`` at one commit, downloaded once,
sha256-checked (a mismatching download is discarded) and cached. ``--bct`` / ``--sources`` take a
local file / folder instead (used as they are; their hashes go into the dataset card), or a URL that
mirrors the pinned file / ``data/`` folder (checked against the pinned hashes like the default).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sycophancy_eval_kit.core import files
from sycophancy_eval_kit.core.files import DataError, sha256_file

COMMIT = "f6874394ba80a439237e4d7581dddc30d40c1830"
DEFAULT_BASE_URL = f"https://raw.githubusercontent.com/raybears/cot-transparency/{COMMIT}"
ENV_BASE_URL = "SAA_BCT_BASE_URL"

BCT_PATH = "dataset_dumps/deprecated_train_original_release/bct_non_cot.jsonl"
BCT_SHA256 = "7d5d831db185716b5c2aee29f14f5294657b68f9e05a93a4f1f8d2805a52a6cc"
SOURCES_PATH = "data"

BBH_TASKS: tuple[str, ...] = (
    "causal_judgment",
    "date_understanding",
    "disambiguation_qa",
    "hyperbaton",
    "logical_deduction_five_objects",
    "movie_recommendation",
    "navigate",
    "ruin_names",
    "snarks",
    "sports_understanding",
    "temporal_sequences",
    "tracking_shuffled_objects_three_objects",
    "web_of_lies",
)


@dataclass(frozen=True)
class SourceFile:
    """One ground-truth file: its ``source_dataset`` name, path under ``data/``, format and sha256."""

    dataset: str
    path: str
    kind: str  # "arc" (ARC / OpenBookQA jsonl) or "bbh" (val_data.json)
    sha256: str


#: In priority order: when one question is in two files with the same answer, the first names it.
SOURCE_FILES: tuple[SourceFile, ...] = (
    SourceFile(
        "arc_easy",
        "arc_easy/ARC-Easy-Train.jsonl",
        "arc",
        "c62e5482d8c01f2d5a7f24239ac9db3b12f9e47267c4e3f088c6ffe41d5545ef",
    ),
    SourceFile(
        "arc_easy",
        "arc_easy/ARC-Easy-Dev.jsonl",
        "arc",
        "f4364b808a68df6bf500ce1070fb0105d40cacd2391c210deb00ff83ba75d1f4",
    ),
    SourceFile(
        "arc_challenge",
        "arc_challenge/ARC-Challenge-Train.jsonl",
        "arc",
        "e02837c53ee86f6d73c259f91c77725c5062ef4531130b7f473a9d9b01118a77",
    ),
    SourceFile(
        "arc_challenge",
        "arc_challenge/ARC-Challenge-Dev.jsonl",
        "arc",
        "55224364abd2477f66a9a57c5cbef109fb71d83019aa5e37aec0e7ab757746ca",
    ),
    SourceFile(
        "openbook_qa",
        "openbook_qa/train.jsonl",
        "arc",
        "388ce25926fa33b573ba6556d7245a6185f612dedf919871b6acb9340c8497a5",
    ),
    SourceFile(
        "openbook_qa",
        "openbook_qa/test.jsonl",
        "arc",
        "feb2bd9bfa6161dca4c44ce90e51e8cdada83eb5061407fcdc5005e44aaf2313",
    ),
) + tuple(
    SourceFile(f"bbh_{task}", f"bbh/{task}/val_data.json", "bbh", sha)
    for task, sha in zip(
        BBH_TASKS,
        (
            "a7c8172969172f9ca0b88254bc4d86b7fec1c45ab274cacc93d745c050e73d6e",
            "44454838fca0cec8ddb7eef431002c067da22cf91e3980e717c8ac3c5caad3e8",
            "0f97516f4b7af325a65fc0846f3dd2eae7cba415695baed7754bcd8ff0d3445a",
            "a9dfde13731f2d4e1618476d5a16ad785bc5ee7930a2d3cf0ca94640eab7ed2f",
            "3cc347c17291d5782e20539e988d3e787a12bc0792029057333a7a4ccc0d2a7a",
            "1166573f182c1b65451cb5438d15a8e466e4278a0f4746383ad6c8634f46a10f",
            "8215de2c5b1337c8b22858cbd07c81d5f883beea1073d69cf4347fb850f4af11",
            "5d2d6a491475abff24c62d655184910178e4754f6b896e319bbbab3396367c71",
            "780fb8918a1400c09f43dab0ac30995c9cc1327a38c081a92bbd09fc28b4cae5",
            "dc4d47ea015c79ffacda545aeff2adfef35242b9d70ce6f6541d038c17db045c",
            "76b92b3a0d8796f3e8e278af712f0a41b072d89074fc2ee1a5d15d47d3d8526e",
            "f64f8c3f62f68bc8feb93f02b9fb9a36adfa454e0d869034f2df1720d7b87fd4",
            "2861ef9dcca4471437844e1fb7766837df5388d415636b3fe4f9607425d86475",
        ),
        strict=True,
    )
)

#: Every ``source_dataset`` name a row can carry.
SOURCE_DATASETS: tuple[str, ...] = tuple(dict.fromkeys(f.dataset for f in SOURCE_FILES))


@dataclass(frozen=True)
class InputFile:
    """A resolved input: local path, where it came from, its sha256, and the pinned one if any."""

    name: str
    path: Path
    origin: str  # "pinned download", "mirror <url>" or "local"
    location: str
    sha256: str
    pinned_sha256: str | None

    def provenance(self) -> dict[str, object]:
        return {
            "name": self.name,
            "origin": self.origin,
            "location": self.location,
            "sha256": self.sha256,
            "matches_pinned": self.sha256 == self.pinned_sha256 if self.pinned_sha256 else None,
        }


def is_url(value: str | os.PathLike[str] | None) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """``override``, else ``files.cache_root()/cot-transparency/<commit>``."""
    if override:
        return Path(override)
    return files.cache_dir("cot-transparency", COMMIT[:12])


_OFFLINE_HINT = (
    "Offline? Pass local copies with --bct FILE and --sources DIR (a folder laid out like "
    "cot-transparency's data/)."
)


def fetch(repo_path: str, url: str, expected_sha256: str, cache: Path, timeout: float = 60.0) -> Path:
    """A cached copy of ``url`` whose sha256 is ``expected_sha256``, downloading it when needed."""
    return files.fetch_verified([url], cache / repo_path, expected_sha256, _OFFLINE_HINT, timeout)


def resolve_bct(
    bct: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
    cache: str | os.PathLike[str] | None = None,
) -> InputFile:
    """The BCT file: a local path, a mirror URL of the pinned file, or the pinned download."""
    if bct is not None and not is_url(bct):
        path = Path(bct).expanduser()
        if not path.is_file():
            raise DataError(f"--bct {bct}: file not found; expected a BCT non-CoT jsonl file or a URL")
        return InputFile("bct_non_cot.jsonl", path, "local", str(path), sha256_file(path), BCT_SHA256)
    url = str(bct) if bct is not None else f"{_base(base_url)}/{BCT_PATH}"
    origin = "mirror" if bct is not None or base_url or os.environ.get(ENV_BASE_URL) else "pinned download"
    path = fetch(BCT_PATH, url, BCT_SHA256, cache_dir(cache))
    return InputFile("bct_non_cot.jsonl", path, origin, url, BCT_SHA256, BCT_SHA256)


def resolve_sources(
    sources: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
    cache: str | os.PathLike[str] | None = None,
) -> list[tuple[SourceFile, InputFile]]:
    """Every ground-truth file, from a local folder, a mirror of ``data/``, or the pinned download."""
    if sources is not None and not is_url(sources):
        folder = Path(sources).expanduser()
        missing = [f.path for f in SOURCE_FILES if not (folder / f.path).is_file()]
        if not folder.is_dir() or missing:
            raise DataError(
                f"--sources {sources}: missing {len(missing) if folder.is_dir() else 'all'} source file(s), "
                f"e.g. {folder / (missing or [SOURCE_FILES[0].path])[0]}; expected a folder laid out like "
                f"cot-transparency's data/ ({', '.join(f.path for f in SOURCE_FILES[:3])}, ...)"
            )
        return [
            (
                f,
                InputFile(
                    f.path,
                    folder / f.path,
                    "local",
                    str(folder / f.path),
                    sha256_file(folder / f.path),
                    f.sha256,
                ),
            )
            for f in SOURCE_FILES
        ]
    root = str(sources).rstrip("/") if sources is not None else f"{_base(base_url)}/{SOURCES_PATH}"
    origin = (
        "mirror" if sources is not None or base_url or os.environ.get(ENV_BASE_URL) else "pinned download"
    )
    out = []
    for f in SOURCE_FILES:
        url = f"{root}/{f.path}"
        path = fetch(f"{SOURCES_PATH}/{f.path}", url, f.sha256, cache_dir(cache))
        out.append((f, InputFile(f.path, path, origin, url, f.sha256, f.sha256)))
    return out


def _base(base_url: str | None) -> str:
    return (base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL).rstrip("/")
