"""The download path: a mirror on a loopback HTTP server, sha256 checks, the cache, and failures."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SHARED_DATA

from sycophancy_eval_kit.core.data import DataError
from sycophancy_eval_kit.saa_data import BuildConfig, build, inputs

FIXTURES = Path(__file__).parent / "fixtures" / "saa"
REAL = SHARED_DATA / "bct"


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[Path, str, list[str]]]:
    """An empty folder served on 127.0.0.1; yields (folder, base URL, request log)."""
    root = tmp_path / "mirror"
    root.mkdir()
    log: list[str] = []
    handler = type("Handler", (_Handler,), {"requests": log})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}", log
    finally:
        server.shutdown()
        server.server_close()


def _lay_out(root: Path, bct: Path, sources: Path) -> None:
    """cot-transparency's layout: dataset_dumps/.../bct_non_cot.jsonl and data/..."""
    (root / inputs.BCT_PATH).parent.mkdir(parents=True)
    shutil.copy(bct, root / inputs.BCT_PATH)
    shutil.copytree(sources, root / inputs.SOURCES_PATH)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def pin_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin the fixture files' hashes, as if they were the upstream files."""
    monkeypatch.setattr(inputs, "BCT_SHA256", _sha(FIXTURES / "bct_sample.jsonl"))
    pinned = tuple(
        inputs.SourceFile(f.dataset, f.path, f.kind, _sha(FIXTURES / "sources" / f.path))
        for f in inputs.SOURCE_FILES
    )
    monkeypatch.setattr(inputs, "SOURCE_FILES", pinned)


def test_download_check_and_cache(
    mirror: tuple[Path, str, list[str]], pin_fixtures: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, base, log = mirror
    _lay_out(root, FIXTURES / "bct_sample.jsonl", FIXTURES / "sources")
    monkeypatch.setenv(inputs.ENV_BASE_URL, base)
    config = BuildConfig(out=str(tmp_path / "saa"), n_correct=4, n_incorrect=3)
    result = build(config)
    assert len(result.records) == 7
    assert len(log) == 1 + len(inputs.SOURCE_FILES)
    assert f"/{inputs.BCT_PATH}" in log and "/data/bbh/navigate/val_data.json" in log
    cached = inputs.cache_dir() / inputs.BCT_PATH
    assert cached.read_bytes() == (FIXTURES / "bct_sample.jsonl").read_bytes()
    assert str(tmp_path / "syco-cache") in str(cached)  # the test's cache, from $SYCOPHANCY_CACHE_DIR
    assert (
        result.report["inputs"][0]["origin"] == "mirror"
        and result.report["inputs"][0]["matches_pinned"] is True
    )

    # a second build is served from the cache: no request reaches the server
    log.clear()
    again = build(BuildConfig(out=str(tmp_path / "saa2"), n_correct=4, n_incorrect=3))
    assert log == [] and again.records == result.records

    # --bct URL and --sources URL take a mirror of one file / of data/
    log.clear()
    bct = inputs.resolve_bct(f"{base}/{inputs.BCT_PATH}", cache=tmp_path / "other-cache")
    srcs = inputs.resolve_sources(f"{base}/data/", cache=tmp_path / "other-cache")
    assert bct.path.read_bytes() == (FIXTURES / "bct_sample.jsonl").read_bytes() and len(srcs) == len(log) - 1


def test_bad_download_is_not_cached(
    mirror: tuple[Path, str, list[str]], pin_fixtures: None, tmp_path: Path
) -> None:
    root, base, _ = mirror
    _lay_out(root, FIXTURES / "bct_sample.jsonl", FIXTURES / "sources")
    (root / inputs.BCT_PATH).write_text("tampered\n")
    with pytest.raises(DataError, match=rf"{inputs.BCT_PATH}: sha256 .*, expected {inputs.BCT_SHA256}"):
        inputs.resolve_bct(base_url=base, cache=tmp_path / "c")
    assert not (tmp_path / "c" / inputs.BCT_PATH).exists()
    with pytest.raises(
        DataError,
        match=r"Could not download .*/missing/arc_easy/ARC-Easy-Train.jsonl: HTTP Error 404.*\n"
        r".*--bct FILE and --sources DIR",
    ):
        inputs.resolve_sources(f"{base}/missing", cache=tmp_path / "c")
    # a corrupted cache entry is replaced by a fresh, verified download
    (root / inputs.BCT_PATH).write_bytes((FIXTURES / "bct_sample.jsonl").read_bytes())
    (tmp_path / "c" / inputs.BCT_PATH).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "c" / inputs.BCT_PATH).write_text("stale\n")
    got = inputs.resolve_bct(base_url=base, cache=tmp_path / "c")
    assert got.path.read_bytes() == (FIXTURES / "bct_sample.jsonl").read_bytes()


@pytest.mark.skipif(not (REAL / "sources").is_dir(), reason=f"shared BCT data not found at {REAL}")
def test_real_files_match_the_pinned_hashes(mirror: tuple[Path, str, list[str]], tmp_path: Path) -> None:
    root, base, _ = mirror
    _lay_out(root, REAL / "deprecated_train_original_release" / "bct_non_cot.jsonl", REAL / "sources")
    bct = inputs.resolve_bct(base_url=base, cache=tmp_path / "c")
    sources = inputs.resolve_sources(base_url=base, cache=tmp_path / "c")
    assert bct.sha256 == inputs.BCT_SHA256 and all(f.provenance()["matches_pinned"] for _, f in sources)
