"""`accelerate launch training/orpo.py` end to end: smoke config, two CPU processes, merge, lm-eval, and
SIGTERM to the launcher (or to `scripts/reproduce.py`) leaving no training process behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, TASKS_DIR

from sycophancy_eval_kit.core.procs import run_group

pytestmark = pytest.mark.multiprocess

ACCELERATE = str(Path(sys.executable).with_name("accelerate"))
LM_EVAL = str(Path(sys.executable).with_name("lm_eval"))
SMOKE = "training/configs/smoke.yaml"
EVAL_METADATA = {"data_dir": "embedded"}


def _env() -> dict[str, str]:
    # module-scoped fixtures run before conftest's per-test environment, so set offline mode here too
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("SYCOPHANCY_DATA_DIR", None)
    return env


def _run(cmd: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    proc = run_group(cmd, timeout, cwd=REPO, env=_env())
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


LAUNCHER_BASE = ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]


def _launch_cmd(launcher_args: list[str], model: Path, out: Path, *script_args: str) -> list[str]:
    return [ACCELERATE, "launch", *LAUNCHER_BASE, *launcher_args, "training/orpo.py", "--config", SMOKE] + [
        "--model_name_or_path",
        str(model),
        "--output_dir",
        str(out),
        *script_args,
    ]


def _launch(launcher_args: list[str], model: Path, out: Path, *script_args: str):
    return _run(_launch_cmd(launcher_args, model, out, *script_args))


@pytest.fixture(scope="module")
def smoke_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One full smoke-config training run, shared by the tests below."""
    out = tmp_path_factory.mktemp("smoke") / "aligned-saa"
    _launch(["--cpu", "--num_processes", "1"], tiny_model, out)
    return out


@pytest.fixture(scope="module")
def merged(smoke_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sycophancy_eval_kit.training.merge import MergeArguments, merge

    return merge(MergeArguments(adapter=str(smoke_run), output_dir=str(tmp_path_factory.mktemp("merged"))))


def test_smoke_run_writes_adapter_tokenizer_config_and_manifest(smoke_run: Path, tiny_model: Path) -> None:
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    for name in (
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
        "resolved_config.yaml",
    ):
        assert (smoke_run / name).is_file(), name
    manifest = json.loads((smoke_run / "data_manifest.json").read_text())
    assert manifest["rows_per_source"] == {"dpo_mix_en": 13, "saa": 12}
    assert manifest["sources"]["dpo_mix_en"]["dropped"] == {
        "chosen_equals_rejected": 1,
        "empty_response": 1,
        "empty_prompt": 0,
        "too_long": 1,
    }
    assert len(manifest["sources"]["saa"]["sha256"]) == 64
    resolved = yaml.safe_load((smoke_run / "resolved_config.yaml").read_text())
    assert resolved["derived"] == resolved["derived"] | {
        "world_size": 1,
        "gradient_accumulation_steps": 2,
        "effective_batch_size": 4,
    }
    assert resolved["derived"]["chat_template"]["policy"] == "fallback"
    assert resolved["training"]["learning_rate"] == 1e-3 and resolved["model"]["lora_r"] == 8

    # the tokenizer carries the chat template the model was trained with
    assert AutoTokenizer.from_pretrained(smoke_run).chat_template
    assert not AutoTokenizer.from_pretrained(tiny_model).chat_template

    # parameters changed: LoRA's B matrices start at zero, so any non-zero B was trained
    weights = load_file(smoke_run / "adapter_model.safetensors")
    lora_b = {k: v for k, v in weights.items() if "lora_B" in k}
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b.values())

    summary = json.loads((smoke_run / "train_summary.json").read_text())
    assert summary["global_step"] == 7  # ceil(25 pairs / effective batch 4)
    logged = {key for entry in summary["log_history"] for key in entry}
    for source in ("dpo_mix_en", "saa"):
        assert {
            f"{source}/rewards/accuracies",
            f"{source}/rewards/chosen",
            f"{source}/log_odds_ratio",
        } <= logged


def test_two_cpu_processes_halve_gradient_accumulation(
    smoke_run: Path, tiny_model: Path, tmp_path: Path
) -> None:
    # `--cpu --num_processes 2` would start ONE process; the multi-GPU launcher starts two, and
    # --use_cpu makes them join one gloo process group.
    out = tmp_path / "ddp"
    proc = _launch(
        ["--multi_gpu", "--num_processes", "2", "--main_process_port", "0"],
        tiny_model,
        out,
        "--use_cpu",
        "true",
        "--max_steps",
        "2",
    )
    single = yaml.safe_load((smoke_run / "resolved_config.yaml").read_text())["derived"]
    double = yaml.safe_load((out / "resolved_config.yaml").read_text())["derived"]
    assert double["world_size"] == 2 and single["world_size"] == 1
    assert double["gradient_accumulation_steps"] * 2 == single["gradient_accumulation_steps"]
    assert double["effective_batch_size"] == single["effective_batch_size"] == 4
    assert json.loads((out / "train_summary.json").read_text())["global_step"] == 2
    assert "2 process(es), gradient accumulation 1" in proc.stdout + proc.stderr


def _evaluate(lm) -> dict:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata=EVAL_METADATA)
    return simple_evaluate(
        model=lm,
        tasks=["sycophancy_answer"],
        task_manager=manager,
        limit=2,
        gen_kwargs="max_gen_toks=8",
        log_samples=True,
    )


def test_adapter_and_merged_model_evaluate_in_lm_eval(
    smoke_run: Path, merged: Path, tiny_model: Path
) -> None:
    from lm_eval.models.huggingface import HFLM
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    with_adapter = HFLM(pretrained=str(tiny_model), peft=str(smoke_run), dtype="float32", device="cpu")
    assert isinstance(with_adapter.model, PeftModel)
    peft_results = _evaluate(with_adapter)
    merged_results = _evaluate(HFLM(pretrained=str(merged), dtype="float32", device="cpu"))

    for results in (peft_results, merged_results):
        metrics = results["results"]["sycophancy_answer_trivia_qa"]
        assert {"acc_baseline,none", "answer_sycophancy,none"} <= set(metrics)
        assert len(results["samples"]["sycophancy_answer_trivia_qa"]) == 2
    # merging is exact up to float error, so greedy decoding gives the same text
    for task in ("sycophancy_answer_trivia_qa", "sycophancy_answer_truthful_qa"):
        assert [s["resps"] for s in peft_results["samples"][task]] == [
            s["resps"] for s in merged_results["samples"][task]
        ]
    base = AutoModelForCausalLM.from_pretrained(tiny_model).state_dict()
    after = AutoModelForCausalLM.from_pretrained(merged).state_dict()
    assert any(not torch.equal(base[k], after[k]) for k in base if "proj" in k)


def test_lm_eval_cli_loads_the_adapter(smoke_run: Path, tiny_model: Path, tmp_path: Path) -> None:
    _run(
        [LM_EVAL, "--model", "hf", "--model_args", f"pretrained={tiny_model},peft={smoke_run},dtype=float32"]
        + ["--device", "cpu", "--include_path", "lm_eval_tasks", "--tasks", "sycophancy_answer_trivia_qa"]
        + ["--metadata", json.dumps(EVAL_METADATA), "--limit", "1", "--gen_kwargs", "max_gen_toks=4"]
        + ["--output_path", str(tmp_path / "eval")]
    )
    (results_file,) = (tmp_path / "eval").rglob("results_*.json")
    results = json.loads(results_file.read_text())
    assert results["config"]["model_args"]["peft"] == str(smoke_run)
    assert "acc_baseline,none" in results["results"]["sycophancy_answer_trivia_qa"]


# ------------------------------------------------------------------------------------ SIGTERM
needs_proc = pytest.mark.skipif(
    not Path("/proc/self/stat").is_file(), reason="finds processes in /proc (Linux)"
)


def _alive_with(marker: str) -> list[int]:
    """Live (not zombie) processes whose command line contains ``marker``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


def _wait_for(path: Path, text: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            pytest.fail(f"{proc.args} exited {proc.returncode} before {text!r}:\n{path.read_text()[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"no {text!r} in {path} after {timeout}s")


def _survivors_after_signal(
    proc: subprocess.Popen, marker: str, log: Path, wait_for: tuple[Path, str], sig: int = signal.SIGTERM
) -> list[int]:
    """Signal ``proc`` (alone) once ``wait_for`` shows training runs; the processes left 20 s later."""
    try:
        _wait_for(*wait_for, proc)
        proc.send_signal(sig)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 20
        while _alive_with(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        return _alive_with(marker)
    finally:  # whatever happened, leave nothing running
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in _alive_with(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()


@needs_proc
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_no_training_outlives_a_launcher_signalled_alone(tiny_model: Path, tmp_path: Path, sig: int) -> None:
    """Whatever stops the launcher alone, its training process stops too and writes nothing after.

    How is the launcher's business and changes between releases: accelerate 1.16 forwards SIGTERM and
    pipes the script's stderr through itself (so a SIGKILLed launcher breaks that pipe), 1.15 did
    neither; the script's own guard (``procs.stop_when_parent_dies``, tested in test_procs.py) covers
    a launcher that does not. Only the outcome is asserted.
    """
    out, log = tmp_path / "killed", tmp_path / "launch.log"
    # enough steps that an orphan would still be training (and later write its adapter) 20 s on
    cmd = _launch_cmd(["--cpu", "--num_processes", "1"], tiny_model, out, "--max_steps", "400")
    with open(log, "w") as handle:
        launcher = subprocess.Popen(
            cmd, cwd=REPO, env=_env(), stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
    survivors = _survivors_after_signal(launcher, str(out), log, (log, "Training on"), sig)
    assert not survivors, f"training outlived its launcher: {survivors}\n{log.read_text()[-2000:]}"
    assert not (out / "adapter_model.safetensors").exists()


@needs_proc
def test_sigterm_to_reproduce_stops_its_training_step(tiny_model: Path, tmp_path: Path) -> None:
    """scripts/reproduce.py runs each step in its own process group and stops that group on SIGTERM."""
    grid = tmp_path / "grid"
    config = {
        "output_dir": str(grid),
        "env": {"HF_HUB_OFFLINE": 1},
        "models": {"tiny": {"base": str(tiny_model)}},
        "variants": {"aligned": {"train": {"max_steps": 400}}},
        "training": {
            "launch": [ACCELERATE, "launch", *LAUNCHER_BASE, "--cpu", "--num_processes", "1"],
            "config": str(REPO / SMOKE),
        },
        "eval": {"tasks": "sycophancy_answer_trivia_qa"},
    }
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(config))
    log = tmp_path / "reproduce.log"
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            [sys.executable, "scripts/reproduce.py", "--config", str(tmp_path / "grid.yaml")],
            cwd=REPO,
            env=_env(),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    step_log = grid / "logs" / "train__tiny__aligned.log"
    survivors = _survivors_after_signal(proc, str(grid / "models"), log, (step_log, "Training on"))
    assert not survivors, f"the training step outlived reproduce.py: {survivors}\n{log.read_text()[-2000:]}"
    assert proc.returncode != 0
    assert not (grid / "models" / "tiny" / "aligned" / "adapter_model.safetensors").exists()
    manifest = json.loads((grid / "manifest.json").read_text())
    assert manifest["train/tiny/aligned"]["status"] != "done"  # a rerun trains it again
