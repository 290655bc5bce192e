"""Shared fixtures: tiny models built once per session, the task folder, and paths to shared data."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from tiny_models import build_tiny_model  # noqa: E402

TASKS_DIR = REPO / "lm_eval_tasks"
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama whose tokenizer has no chat template."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny_plain"), chat_template=False)


@pytest.fixture(scope="session")
def tiny_chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same kind of model with a chat template."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny_chat"), chat_template=True)


@pytest.fixture(scope="session")
def sharma_sample_dir() -> Path:
    """``../shared/data/sharma-format-sample`` (skips when the shared folder is not beside the clone)."""
    path = SHARED_DATA / "sharma-format-sample"
    if not (path / "answer.jsonl").is_file():
        pytest.skip(f"shared data not found at {path} (only present in the project's workspace)")
    return path


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """No test reads a developer's data dir or cache, or reaches the network through HF hubs."""
    monkeypatch.delenv("SYCOPHANCY_DATA_DIR", raising=False)
    if request.path.name.startswith("test_saa_"):
        # the SAA contamination check defaults to the pinned Sharma files; offline, the sample stands in
        monkeypatch.setenv("SYCOPHANCY_DATA_DIR", "embedded")
    monkeypatch.delenv("SYCOPHANCY_DATA_BASE_URL", raising=False)
    monkeypatch.setenv("SYCOPHANCY_CACHE_DIR", str(tmp_path / "syco-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
