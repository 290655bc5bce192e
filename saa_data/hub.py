"""Publishing a built set to the Hugging Face Hub as a dataset repository (``--push_to_hub REPO``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import CommitOperationAdd, HfApi

from sycophancy_eval_kit.saa_data.builder import OUTPUT_FILES


def upload_operations(folder: str | Path) -> list[CommitOperationAdd]:
    """What a push uploads: every output file of the build, at the repository root."""
    root = Path(folder)
    missing = [name for name in OUTPUT_FILES if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{root}: not a complete SAA build (missing {', '.join(missing)})")
    return [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(root / name)) for name in OUTPUT_FILES]


def push_to_hub(
    folder: str | Path, repo_id: str, private: bool = False, token: str | None = None, api: Any = None
) -> str:
    """Create (if needed) the dataset repo ``repo_id`` and commit the build to it; returns the commit URL."""
    api = api if api is not None else HfApi(token=token)
    operations = upload_operations(folder)
    api.create_repo(repo_id=repo_id, repo_type="dataset", private=private, exist_ok=True)
    info = api.create_commit(
        repo_id=repo_id,
        repo_type="dataset",
        operations=operations,
        commit_message="Upload SAA preference set (built with saa_data)",
    )
    return str(getattr(info, "commit_url", info))
