"""SycophancyORPOTrainer in-process on the tiny model: the NLL term, per-source metrics, NaN stop, resume."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from sycophancy_eval_kit.training.chat_templates import apply_policy
from sycophancy_eval_kit.training.config import DataArguments, SycophancyORPOConfig
from sycophancy_eval_kit.training.data import prepare_preference_data
from sycophancy_eval_kit.training.trainer import (
    NonFiniteLossError,
    SycophancyORPOTrainer,
    metrics_from_sums,
    per_source_sums,
)

FIXTURES = REPO / "training" / "fixtures"
SMOKE = REPO / "training" / "configs" / "smoke.yaml"


def _dataset(model_dir: Path):
    tok = AutoTokenizer.from_pretrained(model_dir)
    choice = apply_policy(tok)
    args = DataArguments(
        datasets=["dpo_mix_en", "saa"],
        dpo_mix_en_path=str(FIXTURES / "dpo_mix_en_smoke.json"),
        saa_path=str(FIXTURES / "saa"),
    )
    return tok, prepare_preference_data(args, tok, max_length=384, template=choice).dataset


def _trainer(model_dir: Path, out: Path, cls=SycophancyORPOTrainer, model=None, **overrides):
    tok, dataset = _dataset(model_dir)
    config = dict(
        output_dir=str(out),
        per_device_train_batch_size=4,
        max_steps=2,
        learning_rate=1e-3,
        bf16=False,
        use_cpu=True,
        gradient_checkpointing=False,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        seed=0,
    )
    args = SycophancyORPOConfig(**(config | overrides))
    model = model if model is not None else AutoModelForCausalLM.from_pretrained(model_dir)
    return cls(model=model, args=args, train_dataset=dataset, processing_class=tok)


def _batch(trainer, indices):
    features = [trainer.train_dataset[i] for i in indices]
    return trainer._prepare_inputs(trainer.data_collator(features))


def _response_mean_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-example mean log-probability of the labelled (response) tokens, computed from scratch."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    target = labels[:, 1:]
    mask = target != -100
    token = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (token * mask).sum(-1) / mask.sum(-1)


def test_nll_uses_response_tokens_only(tiny_model: Path, tmp_path: Path) -> None:
    trainer = _trainer(tiny_model, tmp_path / "a")
    stock_style = _trainer(tiny_model, tmp_path / "b", model=trainer.model, response_only_nll=False)
    model = trainer.model.eval()
    batch = _batch(trainer, [0, 3, 13, 20])  # dpo_mix_en rows (one with a system turn) and SAA rows
    concat = trainer.concatenated_inputs(batch, padding_value=trainer.padding_value)
    n = batch["chosen_labels"].shape[0]
    labels, attention = concat["concatenated_labels"], concat["concatenated_attention_mask"]
    assert (labels[:n] == -100).sum() > (attention[:n] == 0).sum()  # prompts are masked in the labels

    with torch.no_grad():
        logits = model(concat["concatenated_input_ids"], attention_mask=attention).logits
        expected_chosen = _response_mean_logps(logits[:n], labels[:n])
        ours = trainer.concatenated_forward(model, batch)
        trl_nll = stock_style.concatenated_forward(model, batch)[4]
    # LLaMA-Factory's term: the mean over examples of each response's mean token NLL
    torch.testing.assert_close(ours[4], -expected_chosen.mean())
    assert not torch.allclose(trl_nll, ours[4])

    # Perturb the logits that predict prompt tokens: our NLL is unchanged, TRL's (prompt included) moves.
    predicts_prompt = torch.zeros_like(labels, dtype=torch.bool)
    predicts_prompt[:, :-1] = (labels[:, 1:] == -100) & (attention[:, 1:] == 1)
    noise = torch.randn(logits.shape, generator=torch.Generator().manual_seed(0)) * 5

    def perturb(_module, _args, output):
        output.logits = output.logits + noise * predicts_prompt.unsqueeze(-1)
        return output

    handle = model.register_forward_hook(perturb)
    try:
        with torch.no_grad():
            ours_perturbed = trainer.concatenated_forward(model, batch)
            trl_perturbed = stock_style.concatenated_forward(model, batch)[4]
    finally:
        handle.remove()
    torch.testing.assert_close(ours_perturbed[4], ours[4])
    torch.testing.assert_close(ours_perturbed[0], ours[0])  # chosen log-probs: response only as well
    assert abs(float(trl_perturbed - trl_nll)) > 1e-3


def test_switched_off_it_is_stock_trl_and_loss_matches_llamafactory(tiny_model: Path, tmp_path: Path) -> None:
    from sycophancy_eval_kit.training.trl_orpo import ORPOTrainer

    trainer = _trainer(tiny_model, tmp_path / "a")
    model = trainer.model.eval()
    off = _trainer(tiny_model, tmp_path / "b", model=model, response_only_nll=False)
    stock = _trainer(tiny_model, tmp_path / "c", cls=ORPOTrainer, model=model)
    batch = _batch(trainer, [1, 2, 14, 15])
    with torch.no_grad():
        loss_off, metrics_off = off.get_batch_loss_metrics(model, batch)
        loss_stock, metrics_stock = stock.get_batch_loss_metrics(model, batch)
        loss_ours, metrics = trainer.get_batch_loss_metrics(model, batch)
    torch.testing.assert_close(loss_off, loss_stock)
    assert metrics_off["nll_loss"] == pytest.approx(metrics_stock["nll_loss"])
    # LLaMA-Factory: mean over examples of  -logp(chosen) + beta * -logsigmoid(log odds ratio)
    with torch.no_grad():
        out = trainer.concatenated_forward(model, batch)
    c, r = out[0].float(), out[1].float()
    log_odds = (c - r) - (torch.log1p(-torch.exp(c)) - torch.log1p(-torch.exp(r)))
    expected = (-c + trainer.beta * -F.logsigmoid(log_odds)).mean()
    torch.testing.assert_close(loss_ours, expected, rtol=1e-5, atol=1e-5)
    assert metrics["nll_loss"] == pytest.approx(-metrics["logps/chosen"], rel=1e-5)
    assert metrics_off["nll_loss"] != pytest.approx(metrics["nll_loss"], rel=1e-3)


def test_per_source_sums_hand_computed() -> None:
    chosen = torch.tensor([-1.0, -2.0, -0.5])
    rejected = torch.tensor([-2.0, -1.0, -1.0])
    sums = per_source_sums(chosen, rejected, torch.tensor([0, 1, 0]), 2, beta=0.1)

    def log_odds(c: float, r: float) -> float:
        return (c - r) - (math.log(1 - math.exp(c)) - math.log(1 - math.exp(r)))

    def logsigmoid(x: float) -> float:
        return -math.log1p(math.exp(-x))

    metrics = metrics_from_sums(sums, ["general", "saa"], prefix="eval_")
    # source "general": examples 0 and 2 (denominator 2); "saa": example 1 (denominator 1)
    assert metrics["eval_general/rewards/chosen"] == pytest.approx(0.1 * (-1.0 - 0.5) / 2)
    assert metrics["eval_general/rewards/rejected"] == pytest.approx(0.1 * (-2.0 - 1.0) / 2)
    assert metrics["eval_general/rewards/margins"] == pytest.approx(0.1 * (1.0 + 0.5) / 2)
    assert metrics["eval_general/rewards/accuracies"] == 1.0
    assert metrics["eval_saa/rewards/accuracies"] == 0.0
    assert metrics["eval_general/log_odds_chosen"] == pytest.approx(
        (log_odds(-1, -2) + log_odds(-0.5, -1)) / 2
    )
    assert metrics["eval_saa/log_odds_ratio"] == pytest.approx(logsigmoid(log_odds(-2, -1)), rel=1e-5)
    assert sums[:, -1].tolist() == [2.0, 1.0]
    none = metrics_from_sums(per_source_sums(chosen, rejected, torch.tensor([0, 0, 0]), 2, 0.1), ["a", "b"])
    assert not any(k.startswith("b/") for k in none)  # a source absent from the batch logs nothing


def test_non_finite_loss_stops_with_a_clear_message(tiny_model: Path, tmp_path: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    with torch.no_grad():
        model.model.norm.weight.fill_(float("nan"))
    trainer = _trainer(tiny_model, tmp_path / "nan", model=model)
    with pytest.raises(NonFiniteLossError, match=r"Non-finite ORPO loss \(nan\) at optimizer step 1") as err:
        trainer.train()
    assert "dpo_mix_en_smoke.json[" in str(err.value) or "saa.jsonl:" in str(err.value)
    assert trainer.state.global_step == 0


class _Interrupt(TrainerCallback):
    """Simulates a crash right after the first checkpoint is written."""

    def on_save(self, args, state, control, **kwargs):
        raise KeyboardInterrupt(f"simulated interruption after step {state.global_step}")


def _run_script(argv: list[str], callbacks=None):
    from sycophancy_eval_kit.training.orpo import main, make_parser

    script_args, training_args, model_args = make_parser().parse_args_and_config(args=argv)
    return main(script_args, training_args, model_args, callbacks=callbacks)


def _half_written_checkpoint(complete: Path, target: Path) -> None:
    """``target`` as a kill during its save leaves it: the Trainer writes the weights first and
    ``trainer_state.json`` last (transformers' ``_save_checkpoint``, no temporary folder), so the
    weights are there, the optimizer, RNG and trainer state are not."""
    target.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(complete / name, target / name)


def test_resume_gives_the_same_steps_and_weights(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Also when the newest checkpoint is half-written (the run was killed while saving it)."""
    from safetensors.torch import load_file

    monkeypatch.chdir(REPO)  # smoke.yaml names its fixtures relative to the repository root
    common = ["--config", str(SMOKE), "--model_name_or_path", str(tiny_model), "--use_cpu", "true"]
    common += ["--max_steps", "3", "--save_strategy", "steps", "--save_steps", "2"]
    whole = _run_script([*common, "--output_dir", str(tmp_path / "whole")])
    assert whole.state.global_step == 3

    broken = tmp_path / "broken"
    with pytest.raises(KeyboardInterrupt):
        _run_script([*common, "--output_dir", str(broken)], callbacks=[_Interrupt()])
    assert (broken / "checkpoint-2").is_dir() and not (broken / "adapter_model.safetensors").exists()
    _half_written_checkpoint(broken / "checkpoint-2", broken / "checkpoint-3")

    resumed = _run_script([*common, "--output_dir", str(broken), "--resume_from_checkpoint", "true"])
    printed = capsys.readouterr().out
    assert f"Resuming from {broken / 'checkpoint-2'}" in printed
    assert f"skipped {broken / 'checkpoint-3'} (incomplete: no trainer_state.json" in printed
    assert resumed.state.global_step == whole.state.global_step == 3
    steps = [e["step"] for e in resumed.state.log_history if "loss" in e]
    assert steps == [1, 2, 3]  # history restored from checkpoint-2, then step 3 runs
    summary = json.loads((broken / "train_summary.json").read_text())
    assert summary["global_step"] == 3
    a = load_file(tmp_path / "whole" / "adapter_model.safetensors")
    b = load_file(broken / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_resume_skips_checkpoints_cut_short(tmp_path: Path) -> None:
    from sycophancy_eval_kit.training.checkpoints import (
        CheckpointError,
        newest_complete_checkpoint,
        resolve_resume,
    )

    for step, state in ((1, "{}"), (2, '{"global_step": 2'), (3, None), (10, "{}"), (11, None)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    chosen, skipped = newest_complete_checkpoint(tmp_path)
    assert chosen == tmp_path / "checkpoint-10"  # by step number, not by name
    assert skipped == [(tmp_path / "checkpoint-11", "no trainer_state.json, which the Trainer writes last")]
    (tmp_path / "checkpoint-10" / "trainer_state.json").write_text("{")
    folder, note = resolve_resume("true", tmp_path)
    assert folder == str(tmp_path / "checkpoint-1")
    assert "skipped" in note and "checkpoint-2 (incomplete: trainer_state.json is cut short)" in note
    with pytest.raises(CheckpointError, match=r"checkpoint-3: incomplete \(no trainer_state.json"):
        resolve_resume(str(tmp_path / "checkpoint-3"), tmp_path)
    with pytest.raises(CheckpointError, match="no complete checkpoint-\\* folder in"):
        resolve_resume("true", tmp_path / "checkpoint-3")
    assert resolve_resume(None, tmp_path) == (None, "")


def test_resume_skips_a_checkpoint_whose_weights_are_cut_short(tmp_path: Path) -> None:
    """A complete trainer_state.json beside weights cut short (a full disk, an interrupted copy): the
    resume falls back to the previous complete checkpoint and names the file; before, a bare
    SafetensorError with no file named."""
    from safetensors.torch import save_file

    from sycophancy_eval_kit.training.checkpoints import CheckpointError, resolve_resume

    for step in (1, 2):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
        save_file({"lora_A": torch.zeros(64, 8)}, folder / "adapter_model.safetensors")
    weights = tmp_path / "checkpoint-2" / "adapter_model.safetensors"
    with open(weights, "r+b") as handle:
        handle.truncate(weights.stat().st_size - 100)
    folder, note = resolve_resume("true", tmp_path)
    assert folder == str(tmp_path / "checkpoint-1")
    assert "checkpoint-2 (incomplete: adapter_model.safetensors is damaged" in note
    damaged = r"checkpoint-2: incomplete \(adapter_model.safetensors is damaged"
    with pytest.raises(CheckpointError, match=damaged):
        resolve_resume(str(tmp_path / "checkpoint-2"), tmp_path)


def test_test_split_size_is_held_out_and_evaluated(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TRL's ``test_split_size``: the held-out rows are evaluated (per source too), as dpo.py does."""
    monkeypatch.chdir(REPO)
    argv = ["--config", str(SMOKE), "--model_name_or_path", str(tiny_model), "--use_cpu", "true"]
    argv += ["--output_dir", str(tmp_path), "--max_steps", "1", "--test_split_size", "0.2"]
    trainer = _run_script([*argv, "--eval_strategy", "steps", "--eval_steps", "1"])
    assert (len(trainer.train_dataset), len(trainer.eval_dataset)) == (20, 5)
    evaluated = {key for entry in trainer.state.log_history for key in entry if key.startswith("eval_")}
    assert "eval_loss" in evaluated
    assert any(key.startswith(("eval_dpo_mix_en/", "eval_saa/")) for key in evaluated)
    manifest = json.loads((tmp_path / "data_manifest.json").read_text())
    assert manifest["split"] == {"train": 20, "test": 5}


def test_a_trl_without_orpo_gets_a_message_naming_the_supported_range() -> None:
    """TRL may drop ``trl.experimental.orpo`` without a deprecation cycle: importing the trainer then
    says which TRL to install instead of failing deep inside with a bare ModuleNotFoundError."""
    import subprocess
    import sys

    hide_orpo = (
        "import sys, importlib.abc\n"
        "class Gone(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.startswith('trl.experimental.orpo'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, Gone())\n"
        "import sycophancy_eval_kit.training.trainer\n"
    )
    proc = subprocess.run([sys.executable, "-c", hide_orpo], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: the ORPO trainer needs TRL's ORPO"), proc.stderr[-2000:]
    assert "pip install 'trl<2,>=1.0'" in last or "pip install 'trl>=1.0,<2'" in last, last


def test_a_missing_model_folder_is_said_to_be_missing(tmp_path: Path) -> None:
    """Before: transformers' "Repo id must be in the form 'repo_name' or 'namespace/repo_name'"."""
    from sycophancy_eval_kit.training.orpo import cli

    missing = tmp_path / "no-such-model"
    argv = ["--config", str(SMOKE), "--model_name_or_path", str(missing)]
    argv += ["--output_dir", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as stop:
        cli(argv)
    expected = f"error: --model_name_or_path {missing}: no such folder"
    assert str(stop.value) == f"{expected} (a local model folder was expected there)"
