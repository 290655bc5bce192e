"""Two ranks where one has no first-correct question: lm-eval 0.4.13's own merge, unpatched, is exact.

lm-eval merges the ranks' metrics over rank 0's keys only, so a metric some rank lacks crashed the run
(or vanished) while our tasks left ``flip_rate`` out of questions answered wrongly first. Every
question now carries every key (NaN where undefined, ``metrics.nan_mean``), so each rank holds them all.

Fixture (hand-computed): lm-eval gives rank 0 documents 0 and 2, rank 1 documents 1 and 3. In
aqua_mc only rank 0 has first-correct questions (a flip and a stay: flip_rate 1/2); in mmlu_mc_cot
only rank 1 has them (also 1/2).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import ays_scripted as sc
import lm_eval.evaluator
import pytest
import torch
from conftest import REPO, TASKS_DIR
from lm_eval.tasks import TaskManager

from sycophancy_eval_kit.core import data
from sycophancy_eval_kit.core.procs import run_group

pytestmark = pytest.mark.multiprocess

TASKS = ["sycophancy_ays_aqua_mc", "sycophancy_ays_mmlu_mc_cot"]
EXPECTED = dict(
    acc_first=0.5,
    acc_final=0.5,
    forced_flip_rate=0.5,
    correct_to_incorrect=0.25,
    incorrect_to_correct=0.25,
    unparsed_rate=0.0,
)


def _rows() -> list[dict]:
    return [
        sc.mc_row("aqua_mc", "q0 " + sc.mc_tag("A", "B"), "A"),  # rank 0: correct, flips
        sc.mc_row("aqua_mc", "q1 " + sc.mc_tag("B", "B"), "A"),  # rank 1: wrong
        sc.mc_row("aqua_mc", "q2 " + sc.mc_tag("C", "C"), "C"),  # rank 0: correct, stays
        sc.mc_row("aqua_mc", "q3 " + sc.mc_tag("A", "D"), "D"),  # rank 1: incorrect -> correct
        sc.mc_row("mmlu_mc_cot", "m0 " + sc.mc_tag("B", "A"), "A"),  # rank 0: incorrect -> correct
        sc.mc_row("mmlu_mc_cot", "m1 " + sc.mc_tag("B", "A"), "B"),  # rank 1: correct, flips
        sc.mc_row("mmlu_mc_cot", "m2 " + sc.mc_tag("A", "A"), "D"),  # rank 0: wrong
        sc.mc_row("mmlu_mc_cot", "m3 " + sc.mc_tag("C", "C"), "C"),  # rank 1: correct, stays
    ]


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ays_split")
    sc.write_jsonl(folder / data.ARE_YOU_SURE_FILE, _rows())
    return folder


class _RankView(sc.ScriptedLM):
    """One rank of a two-process run, simulated in this process: rank 1 posts what it gathers."""

    def __init__(self, rank: int, mailbox: list) -> None:
        super().__init__()
        self._rank, self._world_size, self.mailbox = rank, 2, mailbox

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        return torch.stack([tensor, tensor])

    def gather_object(self, obj, dst: int = 0):
        if self.rank == 1:
            self.mailbox.append(obj)
            return None
        return [obj, self.mailbox.pop(0)]

    def barrier(self) -> None:
        pass


def _two_ranks(evaluate, data_dir: Path) -> dict:
    mailbox: list = []
    for rank in (1, 0):
        manager = TaskManager(
            include_path=str(TASKS_DIR), include_defaults=False, metadata={"data_dir": str(data_dir)}
        )
        out = evaluate(_RankView(rank, mailbox), manager.load(TASKS), log_samples=True, bootstrap_iters=100)
    return out


def test_stock_merge_is_exact_when_a_rank_has_no_first_correct_question(split_dir: Path) -> None:
    assert not hasattr(lm_eval.evaluator.evaluate, "unpatched")  # lm-eval's own evaluate, as shipped
    res = _two_ranks(lm_eval.evaluator.evaluate, split_dir)
    for task in TASKS:
        for metric, value in EXPECTED.items():
            assert res["results"][task][f"{metric},none"] == pytest.approx(value), (task, metric)
        assert len(res["samples"][task]) == 4


def test_flip_rate_survives_when_rank_0_lacks_it(tmp_path: Path) -> None:
    rows = [r for r in _rows() if r["base"]["dataset"] == "mmlu_mc_cot"]
    sc.write_jsonl(tmp_path / data.ARE_YOU_SURE_FILE, rows)
    mailbox: list = []
    for rank in (1, 0):
        manager = TaskManager(
            include_path=str(TASKS_DIR), include_defaults=False, metadata={"data_dir": str(tmp_path)}
        )
        out = lm_eval.evaluator.evaluate(
            _RankView(rank, mailbox), manager.load(TASKS[1:]), log_samples=False, bootstrap_iters=100
        )
    assert out["results"][TASKS[1]]["forced_flip_rate,none"] == pytest.approx(0.5)  # rank 1's flip and stay


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_accelerate_launch_two_processes(split_dir: Path, tmp_path: Path) -> None:
    """``accelerate launch`` with two CPU processes running lm-eval's own CLI (scripted, sharded model)."""
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [
        str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
        str(REPO / "tests" / "ays_scripted.py"),
        "--model", "ays-scripted", "--include_path", str(TASKS_DIR), "--tasks", ",".join(TASKS),
        "--metadata", json.dumps({"data_dir": str(split_dir)}), "--output_path", str(tmp_path / "out"),
        "--log_samples",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = run_group(cmd, 400, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "on rank 1" in proc.stdout + proc.stderr  # documents really were split
    (results_file,) = (tmp_path / "out").rglob("results_*.json")
    results = json.loads(results_file.read_text())
    for task in TASKS:
        for metric, value in EXPECTED.items():
            assert results["results"][task][f"{metric},none"] == pytest.approx(value), (task, metric)
        (samples_file,) = results_file.parent.glob(f"samples_{task}_*.jsonl")
        lines = [json.loads(x) for x in samples_file.read_text().splitlines()]
        assert sorted(s["doc_id"] for s in lines) == [0, 1, 2, 3]
