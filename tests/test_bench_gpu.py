"""``benchmarks/gpu/`` at tiny shapes on the CPU, so the GPU benchmark cannot rot between GPU runs.

One real smoke run (every phase through the real lm-eval, dialogue and trainer code) is checked for
the numbers it must get exactly right (forward rows, tokens, the paper's settings) and for a complete
report; the rest covers what must fail early or be recorded instead of aborting the run.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO

from benchmarks.gpu import common, phase_vllm, run
from sycophancy_eval_kit.core import data
from sycophancy_eval_kit.core.procs import run_group

pytestmark = pytest.mark.gpu_smoke

COMMAND = [sys.executable, "-m", "benchmarks.gpu"]
QUESTIONS = 14  # the embedded sample has 10 (aqua_mc) and 12 (mmlu_mc_cot), so it is repeated as variants


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SYCOPHANCY_DATA_DIR"}
    return env | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench_gpu")
    cmd = [*COMMAND, "--tiny", "--out_dir", str(out), "--data_dir", "embedded"]
    proc = run_group([*cmd, "--questions_per_subset", str(QUESTIONS)], timeout=300, cwd=REPO, env=_env())
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    report = json.loads((out / "bench_gpu.json").read_text(encoding="utf-8"))
    return report, (out / "bench_gpu.md").read_text(encoding="utf-8")


def test_smoke_run_is_labelled_and_runs_every_phase(smoke) -> None:
    report, _ = smoke
    assert report["smoke"] is True and "not GPU figures" in report["label"]
    assert report["model"]["shape"] == "tiny" and report["model"]["vocab_size"] == common.TINY_VOCAB_SIZE
    assert report["phases"]["ays"]["status"] == "ok"
    assert report["phases"]["orpo"]["status"] == "ok"
    vllm = report["phases"]["vllm"]
    assert vllm["status"] == "skipped" and ("vllm" in vllm["reason"] or "CUDA" in vllm["reason"])
    assert 0 < report["elapsed_s"] < report["budget_s"]
    assert report["data"]["repeated"] == {"aqua_mc": 2, "mmlu_mc_cot": 2}


def test_one_pass_costs_k_plus_one_rows_per_question(smoke) -> None:
    report, _ = smoke
    ays = report["phases"]["ays"]
    sharma = data.read_sharma_file(data.EMBEDDED_DIR / data.ARE_YOU_SURE_FILE)
    docs = data.are_you_sure_docs(sharma)
    # the first QUESTIONS docs of each sub-dataset: the originals, then variants of the first ones
    ks = [len(d["letters"]) for s in common.SUBSETS for d in (docs[s] * 2)[:QUESTIONS]]
    assert ays["questions"] == len(ks) == 2 * QUESTIONS
    one_pass = ays["one_pass"]
    assert one_pass["forward_rows"] == sum(k + 1 for k in ks)  # HF's logits cache: one row per context
    assert one_pass["requests"] == sum(k * (k + 1) for k in ks)  # every context scored on K letters
    assert one_pass["distinct_prefix_tokens"] < one_pass["tokens_submitted"]
    assert one_pass["model_s"] > 0 and one_pass["wall_s"] >= one_pass["model_s"]


def test_dialogue_generates_three_turns_of_bounded_length(smoke) -> None:
    report, _ = smoke
    ays = report["phases"]["ays"]
    dialogue, max_toks = ays["dialogue"], ays["dialogue_max_gen_toks"]
    # one forward row per question per generated token: three turns of at most max_gen_toks each, and
    # the *_cot questions' side turn (their first letter) of as many again at most
    assert 3 <= dialogue["rows_per_question"] <= 4 * max_toks
    assert dialogue["rows_per_question"] > ays["one_pass"]["rows_per_question"]
    assert dialogue["model_s"] > 0 and ays["one_pass_speedup_wall"] > 0


def test_orpo_uses_the_paper_settings_and_counts_every_token(smoke) -> None:
    report, _ = smoke
    orpo = report["phases"]["orpo"]
    paper = yaml.safe_load((REPO / "training" / "configs" / "paper.yaml").read_text(encoding="utf-8"))
    settings = orpo["settings"]
    for key in ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules"):
        assert settings[key] == paper[key], key
    assert settings["gradient_checkpointing"] is paper["gradient_checkpointing"] is True
    assert settings["activation_checkpointing_seen"] == ["True"]  # on in the model, not only asked for
    sizes = report["sizes"]
    assert settings["gradient_accumulation_steps"] == sizes["effective_batch_size"] // sizes[
        "per_device_train_batch_size"
    ]
    for kind in ("stock", "sycophancy"):
        trainer = orpo["trainers"][kind]
        assert trainer["timed_steps"] == sizes["train_rounds"] * sizes["train_steps"]
        # every chosen and rejected sequence is cut at the cutoff: no padding, a known token count
        per_step = sizes["effective_batch_size"] * 2 * sizes["max_length"]
        assert trainer["tokens"] == trainer["timed_steps"] * per_step
        assert all(step["padded_tokens"] == step["tokens"] for step in trainer["steps"])
        assert trainer["tokens_per_s"] > 0
    assert orpo["tokens_per_s_ratio_ours_over_stock"] > 0


def test_markdown_has_every_table_and_the_smoke_label(smoke) -> None:
    report, markdown = smoke
    assert markdown.startswith("# CPU smoke run at tiny shapes (not GPU figures)")
    assert "| one pass (`simple_evaluate`) |" in markdown and "| dialogue (`evaluate_dialogue`) |" in markdown
    assert "| TRL `ORPOTrainer` |" in markdown and "| `SycophancyORPOTrainer` |" in markdown
    assert f"skipped: {report['phases']['vllm']['reason']}" in markdown
    assert report["command"] in markdown


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_fails_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = [*COMMAND, "--device", "cuda", "--shape", "tiny", "--out_dir", str(out)]
    proc = run_group(cmd, timeout=120, cwd=REPO, env=_env())
    assert proc.returncode != 0
    assert "--device cuda, but torch" in proc.stderr and "sees no CUDA device" in proc.stderr
    assert not out.exists()


def test_a_7b_shape_on_the_cpu_is_refused(tmp_path: Path) -> None:
    cmd = [*COMMAND, "--device", "cpu", "--out_dir", str(tmp_path / "out")]
    proc = run_group(cmd, timeout=120, cwd=REPO, env=_env())
    assert proc.returncode != 0 and "--shape llama2-7b on the CPU would take hours" in proc.stderr


def test_token_accounting() -> None:
    requests = [((1, 2, 3), (4,)), ((1, 2, 3), (5,)), ((1, 2), (9,))]
    assert common.token_accounting(requests) == {
        "requests": 3,
        "tokens_submitted": 11,
        "distinct_contexts": 2,  # (1, 2, 3) is shared by two one-token continuations
        "distinct_prefix_tokens": 6,  # trie nodes 1, 2, 3, 4, 5, 9
    }


@pytest.fixture
def prepared(tmp_path: Path):
    """A Run at tiny shapes (questions and tokenizer ready, no phase run), torch threads restored after."""
    threads = torch.get_num_threads()
    argv = ["--tiny", "--out_dir", str(tmp_path / "out"), "--data_dir", "embedded"]
    args = run.make_parser().parse_args([*argv, "--work_dir", str(tmp_path / "work")])
    args.shape, args.device = "tiny", "cpu"
    yield run.prepare(args, argv)
    torch.set_num_threads(threads)


def test_a_failing_phase_is_recorded_and_the_run_goes_on(prepared) -> None:
    def boom(run):
        raise RuntimeError("boom")

    run.run_phase("ays", boom, prepared)
    written = json.loads((prepared.args.out_dir / "bench_gpu.json").read_text(encoding="utf-8"))
    failed = written["phases"]["ays"]  # on disk as soon as the phase ended
    assert failed["status"] == "failed" and failed["error"] == "RuntimeError: boom"
    assert "raise RuntimeError" in failed["traceback"]
    run.run_phase("orpo", lambda run: {"status": "skipped", "reason": "next phase ran"}, prepared)
    markdown = (prepared.args.out_dir / "bench_gpu.md").read_text(encoding="utf-8")
    assert "failed: RuntimeError: boom" in markdown and "skipped: next phase ran" in markdown


def test_a_phase_is_skipped_when_the_budget_is_spent(prepared) -> None:
    prepared.clock = common.Clock(0.0)

    def must_not_run(run):
        raise AssertionError("the phase ran without budget")

    run.run_phase("orpo", must_not_run, prepared)
    phase = prepared.report["phases"]["orpo"]
    assert phase["status"] == "skipped" and phase["reason"].startswith("needs about")


@pytest.mark.skipif(phase_vllm.vllm_installed(), reason="vLLM is installed: the worker would really start")
def test_a_failing_vllm_engine_is_recorded_and_the_saved_model_removed(prepared, monkeypatch) -> None:
    monkeypatch.setattr(phase_vllm, "vllm_installed", lambda: True)
    prepared.args.device = "cuda"  # past the phase's CUDA gate; only the worker would touch a GPU
    prepared._model = common.build_model("tiny", prepared.tokenizer, "cpu", 0)
    prepared.report["model"].update(build_s=0.0, weights_gib=0.0)
    run.run_phase("vllm", phase_vllm.phase_vllm, prepared)
    phase = prepared.report["phases"]["vllm"]
    assert phase["status"] == "failed"
    for caching in ("False", "True"):  # the second engine is tried after the first one failed
        engine = phase["engines"][caching]
        assert engine["status"] == "failed" and "worker exited" in engine["error"]
        assert "vllm" in engine["stderr_tail"].lower()
    assert phase["save_s"] >= 0 and not list(prepared.work.glob("bench-gpu-model-*"))
    markdown = (prepared.args.out_dir / "bench_gpu.md").read_text(encoding="utf-8")
    assert "| off | failed: worker exited" in markdown
