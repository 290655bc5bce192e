"""sycophancy_ays through lm-eval's HF backend on the tiny models: tokenization, logits cache, CLI, data.

The logits-cache checks guard the one-pass design: (a) every scored continuation is one token
through lm-eval's own pair encoding, (b) HFLM's cache gives the same log-likelihoods as no cache,
(c) it runs K+1 forward rows per K-option question. The last test shows the lm-eval 0.4.13 bug that
(a) keeps us clear of.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import ays_scripted as sc
import pytest
import torch
from conftest import REPO, TASKS_DIR
from lm_eval import simple_evaluate
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager

from sycophancy_eval_kit.core import data, prompts
from sycophancy_eval_kit.core.procs import run_group

MC_TASKS = [f"sycophancy_ays_{s}" for s in data.AYS_MC_SUBSETS]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models run fastest single-threaded, above all on a shared machine; restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _hflm(path: Path) -> HFLM:
    return HFLM(pretrained=str(path), dtype="float32", device="cpu", batch_size=1)


@pytest.fixture(scope="module")
def plain_lm(tiny_model: Path) -> HFLM:
    return _hflm(tiny_model)


@pytest.fixture(scope="module")
def chat_lm(tiny_chat_model: Path) -> HFLM:
    return _hflm(tiny_chat_model)


def _mc_instances(
    lm: HFLM, chat: bool, system_instruction: str | None = None, limit: int | None = None
) -> list[Instance]:
    manager = TaskManager(
        include_path=str(TASKS_DIR), include_defaults=False, metadata={"data_dir": "embedded"}
    )
    out: list[Instance] = []
    for task in manager.load(MC_TASKS)["tasks"].values():
        task.build_all_requests(
            limit=limit,
            apply_chat_template=chat,
            chat_template=lm.apply_chat_template if chat else None,
            system_instruction=system_instruction,
        )
        out += task.instances
    return out


@pytest.mark.parametrize(("which", "chat"), [("plain", False), ("chat", False), ("chat", True)])
def test_every_continuation_is_one_letter_token(
    which: str, chat: bool, request: pytest.FixtureRequest
) -> None:
    lm: HFLM = request.getfixturevalue(f"{which}_lm")
    instances = _mc_instances(lm, chat, system_instruction="Answer carefully." if chat else None)
    assert instances
    for inst in instances:
        context, letter = inst.args
        context_enc, continuation_enc = lm._encode_pair(context, letter)
        assert len(continuation_enc) == 1, (context[-40:], letter, continuation_enc)
        assert lm.tokenizer.decode(continuation_enc) == letter
        if chat:  # the model's own template, continuing the final assistant message
            assert context.startswith("<|system|>\nAnswer carefully.</s>\n<|user|>\n")
            assert context.endswith("<|assistant|>\n" + prompts.MC_ANSWER_PREFILL)


@pytest.mark.parametrize("which", ["plain", "chat"])
def test_logits_cache_is_exact_and_costs_k_plus_one_rows(which: str, request: pytest.FixtureRequest) -> None:
    lm: HFLM = request.getfixturevalue(f"{which}_lm")
    instances = _mc_instances(lm, chat=which == "chat")  # every MC sub-task in one call
    rows: list[int] = []
    model_call = lm._model_call

    def counting_call(inps, *args, **kwargs):
        rows.append(inps.shape[0])
        return model_call(inps, *args, **kwargs)

    lm._model_call = counting_call
    try:
        lm.logits_cache = True
        cached = lm.loglikelihood(instances, disable_tqdm=True)
        cached_rows = sum(rows)
        rows.clear()
        lm.logits_cache = False
        uncached = lm.loglikelihood(instances, disable_tqdm=True)
    finally:
        lm.logits_cache = True
        del lm._model_call
    assert [c[0] for c in cached] == [u[0] for u in uncached]  # identical, not just close
    docs = {(i.task_name, i.doc_id): len(i.doc["letters"]) for i in instances}
    assert cached_rows == sum(k + 1 for k in docs.values())
    assert sum(rows) == sum(k * (k + 1) for k in docs.values()) == len(instances)


def test_logits_cache_bug_with_split_multi_token_continuations(plain_lm: HFLM) -> None:
    """Why (a) matters: one token string split at two points shares a cache group and reads wrong logits."""
    context = "Human: What is 15% of 240?\n\nAssistant: The answer is"
    requests = [
        Instance("loglikelihood", {}, (context, " (A"), 0),
        Instance("loglikelihood", {}, (context + " (", "A"), 1),
    ]
    assert len(plain_lm._encode_pair(*requests[0].args)[1]) == 2
    plain_lm.logits_cache = False
    uncached = plain_lm.loglikelihood(requests, disable_tqdm=True)
    plain_lm.logits_cache = True
    cached = plain_lm.loglikelihood(requests, disable_tqdm=True)
    assert cached[0][0] == uncached[0][0]
    assert cached[1][0] != pytest.approx(
        uncached[1][0], abs=1e-4
    )  # lm-eval 0.4.13 gathers the wrong position


def test_cli_runs_the_group_and_samples_reproduce_it(tiny_model: Path, tmp_path: Path) -> None:
    """lm-eval's CLI (indexing only this plugin's tasks, see ays_scripted) on the HF backend."""
    out = tmp_path / "out"
    cmd = [
        sys.executable, str(REPO / "tests" / "ays_scripted.py"), "--model", "hf", "--device", "cpu",
        "--model_args", f"pretrained={tiny_model},dtype=float32",
        "--include_path", str(TASKS_DIR), "--tasks", "sycophancy_ays", "--metadata", "data_dir=embedded",
        "--gen_kwargs", "max_gen_toks=8", "--limit", "2", "--output_path", str(out), "--log_samples",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = run_group(cmd, 300, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (results_file,) = out.rglob("results_*.json")
    results = json.loads(results_file.read_text())
    date_id = results_file.stem.removeprefix("results_")
    samples = {}
    for subset in data.AYS_SUBSETS:
        task = f"sycophancy_ays_{subset}"
        path = results_file.parent / f"samples_{task}_{date_id}.jsonl"
        samples[task] = [json.loads(line) for line in path.read_text().splitlines()]
        assert results["configs"][task]["metadata"]["data_source"] == "embedded"
    sc.check_samples_against_results(samples, results)
    group = results["groups"]["sycophancy_ays"]
    # the group pools the forced flip rate over the first-correct questions of every sub-dataset
    flips = first_correct = 0
    for lines in samples.values():
        defined = [
            s["forced_flip_rate"] for s in lines if not math.isnan(s.get("forced_flip_rate", math.nan))
        ]
        flips, first_correct = flips + sum(defined), first_correct + len(defined)
    if first_correct:
        assert group["forced_flip_rate,none"] == pytest.approx(flips / first_correct)
    else:
        assert math.isnan(group.get("forced_flip_rate,none", math.nan))


def test_chat_template_and_system_instruction_run(chat_lm: HFLM) -> None:
    manager = TaskManager(
        include_path=str(TASKS_DIR), include_defaults=False, metadata={"data_dir": "embedded"}
    )
    res = simple_evaluate(
        model=chat_lm,
        tasks=["sycophancy_ays_aqua_mc", "sycophancy_ays_trivia_qa"],
        task_manager=manager,
        apply_chat_template=True,
        system_instruction="Be honest.",
        gen_kwargs="max_gen_toks=8",
        limit=2,
        log_samples=True,
        bootstrap_iters=100,
    )
    sc.check_samples_against_results(res["samples"], res)
    first = res["samples"]["sycophancy_ays_trivia_qa"][0]["arguments"][0][0]
    assert first.startswith("<|system|>\nBe honest.</s>\n<|user|>\n") and first.endswith("<|assistant|>\n")
    mc = res["samples"]["sycophancy_ays_aqua_mc"][0]
    branch = mc["arguments"][len(mc["doc"]["letters"])][0]  # the challenge after first answer A
    assert branch.startswith("<|system|>\nBe honest.</s>\n<|user|>\n")
    assert branch.endswith(
        f"<|user|>\n{prompts.AYS_CHALLENGE}</s>\n<|assistant|>\n{prompts.MC_ANSWER_PREFILL}"
    )


def test_shared_sample_runs_mc_and_names_what_it_lacks(plain_lm: HFLM, sharma_sample_dir: Path) -> None:
    manager = TaskManager(
        include_path=str(TASKS_DIR), include_defaults=False, metadata={"data_dir": str(sharma_sample_dir)}
    )
    tasks = ["sycophancy_ays_aqua_mc", "sycophancy_ays_mmlu_mc_cot"]
    res = simple_evaluate(model=plain_lm, tasks=tasks, task_manager=manager, limit=3, log_samples=True)
    sc.check_samples_against_results(res["samples"], res)
    assert res["configs"]["sycophancy_ays_mmlu_mc_cot"]["metadata"]["n_questions"] == 284
    with pytest.raises(
        data.DataError, match=r"no 'trivia_qa' questions.*--tasks sycophancy_ays_aqua_mc,sycophancy_ays_mmlu"
    ):
        manager.load(["sycophancy_ays_trivia_qa"])
