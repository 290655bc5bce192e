"""Publish a built site: to a local folder (any static host) or to the Hugging Face Hub.

Only the files the build's ``manifest.json`` lists are published, and only if their checksums still
match: a file added to or changed in the site folder after the build is never uploaded by accident.
The Hub upload is one commit through ``huggingface_hub`` (a static Space by default, or a dataset repo);
``dry_run`` returns the exact operations without touching the network.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sycophancy_eval_kit.core.cli_flags import hub_repo_problem
from sycophancy_eval_kit.core.files import DataError, load_json
from sycophancy_eval_kit.leaderboard.site import (
    _SAFE_REL,
    MANIFEST,
    MARKER,
    SiteError,
    SiteWriter,
    check_destination,
    writing_dir,
)

#: folders a build owns on the Hub; files there that the new build lacks are deleted in the same commit.
MANAGED_PREFIXES = ("plots/", "models/", "datasets/", "data/")
REPO_TYPES = ("space", "dataset")


@dataclass(frozen=True)
class SiteFiles:
    root: Path
    files: tuple[str, ...]  # relative paths, manifest and marker included
    unlisted: tuple[str, ...]  # files in the folder the manifest does not list (not published)


def verify_site(site: str | Path) -> SiteFiles:
    """The publishable files of a built site, checked against its manifest."""
    root = Path(site)
    if not (root / MARKER).is_file() or not (root / MANIFEST).is_file():
        raise SiteError(
            f"{root}: not a site built by syco-leaderboard (no {MARKER} / {MANIFEST}); run build first"
        )
    try:
        manifest = load_json(root / MANIFEST, "the build's manifest")
    except DataError as err:  # bad bytes or bad JSON: the message names the line
        raise SiteError(f"unreadable manifest: {err}; rebuild the site") from err
    listed = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(listed, dict) or not all(isinstance(v, str) for v in listed.values()):
        raise SiteError(
            f"{root / MANIFEST}: expected {{'files': {{path: sha256}}}} (what a build writes); rebuild it"
        )
    problems = []
    for rel, digest in sorted(listed.items()):
        path = root / rel
        if not isinstance(rel, str) or not _SAFE_REL.match(rel) or ".." in Path(rel).parts:
            problems.append(f"{rel!r}: not a plain relative path")
        elif path.is_symlink() or not path.is_file():
            problems.append(f"{rel}: missing or not a regular file")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"{rel}: changed since the build (sha256 differs)")
    if problems:
        raise SiteError(
            f"{root}: the site does not match its manifest; rebuild it:\n  " + "\n  ".join(problems)
        )
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}
    files = tuple(sorted(listed)) + (MANIFEST, MARKER)
    return SiteFiles(root, files, tuple(sorted(on_disk - set(files))))


def publish_to_dir(site: str | Path, dest: str | Path) -> SiteFiles:
    """Copy the site to ``dest`` atomically (a folder a web server or GitHub Pages serves)."""
    checked = verify_site(site)
    dest = Path(dest)
    check_destination(dest, inputs=[checked.root], flag="--to", what="the site being published")
    if dest.resolve().is_relative_to(checked.root.resolve()):
        raise SiteError(f"--to {dest} is inside the site {checked.root}; choose a folder outside it")
    with writing_dir(dest) as tmp:
        writer = SiteWriter(tmp)
        for rel in checked.files:
            writer.write(rel, (checked.root / rel).read_bytes())
    return checked


def _card(repo_id: str, repo_type: str) -> str:
    """README.md the Hub needs: a static Space's config, or a dataset card."""
    title = json.dumps(repo_id.split("/", 1)[1])  # a JSON string is a valid YAML scalar
    if repo_type == "space":
        front = f"title: {title}\nsdk: static\napp_file: index.html\npinned: false\n"
    else:
        front = "tags:\n- sycophancy\n- leaderboard\n- lm-evaluation-harness\n"
    body = (
        "Sycophancy leaderboard built by syco-leaderboard from lm-evaluation-harness results. "
        "Open index.html; the numbers are in data/ (JSON and CSV).\n"
    )
    return f"---\n{front}---\n\n{body}"


def hub_operations(site: str | Path, repo_id: str, repo_type: str = "space") -> list[Any]:
    """The ``CommitOperationAdd`` list that ``publish_to_hub`` would commit (README.md first)."""
    from huggingface_hub import CommitOperationAdd

    if repo_type not in REPO_TYPES:
        raise SiteError(f"repo type {repo_type!r}; expected one of {REPO_TYPES}")
    if problem := hub_repo_problem(repo_id):
        raise SiteError(f"--hf_repo {repo_id!r}: {problem}")
    checked = verify_site(site)
    ops = [CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=_card(repo_id, repo_type).encode())]
    ops += [
        CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str((checked.root / rel).resolve()))
        for rel in checked.files
    ]
    return ops


def publish_to_hub(
    site: str | Path,
    repo_id: str,
    repo_type: str = "space",
    token: str | None = None,
    dry_run: bool = False,
    api: Any = None,
) -> list[Any]:
    """Upload the site in one commit; stale pages of an earlier build are deleted in the same commit."""
    from huggingface_hub import CommitOperationDelete, HfApi

    ops = hub_operations(site, repo_id, repo_type)
    if dry_run:
        return ops
    api = api or HfApi(token=token)
    api.create_repo(
        repo_id, repo_type=repo_type, exist_ok=True, space_sdk="static" if repo_type == "space" else None
    )
    new = {op.path_in_repo for op in ops}
    existing = api.list_repo_files(repo_id, repo_type=repo_type)
    ops += [
        CommitOperationDelete(path_in_repo=path)
        for path in existing
        if path.startswith(MANAGED_PREFIXES) and path not in new
    ]
    api.create_commit(
        repo_id=repo_id,
        repo_type=repo_type,
        operations=ops,
        commit_message="Update the sycophancy leaderboard (syco-leaderboard)",
    )
    return ops
