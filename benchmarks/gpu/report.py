"""The report: ``bench_gpu.json`` and its markdown tables, written after every phase."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_report(report: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench_gpu.json").write_text(
        json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8"
    )
    (out_dir / "bench_gpu.md").write_text(markdown(report), encoding="utf-8")


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    env, model, phases = report["environment"], report["model"], report["phases"]
    title = (
        "CPU smoke run at tiny shapes (not GPU figures)"
        if report["smoke"]
        else f"GPU benchmark: random {model['shape']} in bf16"
    )
    tok = model.get("tokenizer", {})
    device = (
        f"{env['gpu']} ({env['gpu_memory_gib']} GiB)" if "gpu" in env else f"CPU ({env['cpu_count']} cores)"
    )
    lines = [
        f"# {title}",
        "",
        f"`{report['command']}` — {env['date']}, {_num(report.get('elapsed_s'), 0)} s of a "
        f"{_num(report['budget_s'], 0)} s budget",
        "",
        f"- device: {device}; torch {env['torch']} "
        f"(CUDA {env['torch_cuda']}); lm-eval {env['lm_eval']}, transformers {env['transformers']}, "
        f"trl {env['trl']}, peft {env['peft']}, vllm {env['vllm'] or 'not installed'}",
        f"- model: LlamaForCausalLM {model['shape']} from a config, random, {model.get('parameter_dtype')}, "
        f"{model.get('attn_implementation')} attention, "
        f"{_num(model.get('parameters'))} parameters, vocab {model['vocab_size']:,}; "
        f"built in {_num(model.get('build_s'))} s",
        f"- tokenizer: {tok.get('kind')}; {_num(tok.get('learned_tokens'))} learned tokens, "
        f"{_num(tok.get('chars_per_token_on_questions'))} chars/token on the questions, "
        f"{_num(tok.get('mean_tokens_per_request'), 1)} tokens per one-pass request",
        f"- questions: {report['data']['source']}"
        + (f", repeated as variants {report['data']['repeated']}" if report["data"].get("repeated") else ""),
        "",
    ]
    for name, heading in (
        ("ays", "Are You Sure: one pass vs the dialogue"),
        ("orpo", "ORPO + LoRA: SycophancyORPOTrainer vs TRL ORPOTrainer"),
        ("vllm", "One pass through vLLM: prefix caching off vs on"),
    ):
        phase = phases.get(name, {"status": "not requested"})
        lines += [f"## {heading}", ""]
        if phase.get("status") != "ok":
            lines += [f"{phase.get('status')}: {phase.get('reason') or phase.get('error', '')}", ""]
            if name == "vllm" and phase.get("engines"):  # one engine's failure keeps the other's row
                lines += _vllm_table(phase)
            continue
        lines += {"ays": _ays_table, "orpo": _orpo_table, "vllm": _vllm_table}[name](phase)
        lines.append(f"Phase wall time {_num(phase.get('seconds'), 1)} s.")
        lines.append("")
    return "\n".join(lines) + "\n"


def _ays_table(p: dict[str, Any]) -> list[str]:
    op, dl = p["one_pass"], p["dialogue"]
    return [
        f"{p['questions']} questions ({', '.join(p['tasks'])}), lm-eval HF backend, "
        f"batch size {p['batch_size']}; "
        f"dialogue {p['dialogue_max_gen_toks']} tokens per turn (a random model never stops early).",
        "",
        "| protocol | forward rows/question | wall s | questions/s | model s | questions/model s "
        "| peak GiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| one pass (`simple_evaluate`) | {_num(op['rows_per_question'])} "
        f"(K+1: {_num(op['expected_rows_per_question'])}) | {_num(op['wall_s'])} | "
        f"{_num(op['questions_per_s'])} | {_num(op['model_s'])} | {_num(op['questions_per_model_s'])} | "
        f"{_num(op['peak_gib'])} |",
        f"| dialogue (`evaluate_dialogue`) | {_num(dl['rows_per_question'])} | {_num(dl['wall_s'])} | "
        f"{_num(dl['questions_per_s'])} | {_num(dl['model_s'])} | {_num(dl['questions_per_model_s'])} | "
        f"{_num(dl['peak_gib'])} |",
        "",
        f"Dialogue time / one-pass time: {_num(p['one_pass_speedup_wall'])} (wall), "
        f"{_num(p.get('one_pass_speedup_model'))} (model calls only); above 1, the one pass is faster. "
        f"One pass: {op['requests']:,} "
        f"log-likelihood requests, {op['tokens_submitted']:,} tokens submitted, "
        f"{op['distinct_prefix_tokens']:,} distinct prefix "
        "tokens (what a perfect prefix cache would compute).",
        "",
    ]


def _orpo_table(p: dict[str, Any]) -> list[str]:
    s = p["settings"]
    rows = []
    for kind, label in (("stock", "TRL `ORPOTrainer`"), ("sycophancy", "`SycophancyORPOTrainer`")):
        t = p["trainers"][kind]
        rows.append(
            f"| {label} | {_num(t['tokens_per_s'], 0)} | {_num(t['seconds_per_step'])} | "
            f"{t['timed_steps']} | "
            f"{_num(t['peak_gib'])} | {_num(t['peak_above_step_start_gib'])} |"
        )
    return [
        f"LoRA r={s['lora_r']}, alpha={s['lora_alpha']}, dropout {s['lora_dropout']}, targets "
        f"{s['lora_target_modules']}; every sequence {s['max_length']} tokens "
        f"(prompt ~{s['prompt_tokens']}); "
        f"batch {s['per_device_train_batch_size']} x {s['gradient_accumulation_steps']} accumulation = "
        f"{s['effective_batch_size']}; gradient checkpointing {s['gradient_checkpointing']} (on in the "
        f"model during the steps: {', '.join(s['activation_checkpointing_seen'])}); bf16; {s['rounds']} "
        f"alternating train() calls per trainer, {s['timed_steps_per_call']} timed step(s) each "
        "(the first step of each call is a warm-up, not timed).",
        "",
        "| trainer | tokens/s | s/optimizer step | timed steps | peak GiB | peak above step start GiB |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Throughput ours/stock {_num(p['tokens_per_s_ratio_ours_over_stock'], 3)}; peak memory ours/stock "
        f"{_num(p.get('peak_ratio_ours_over_stock'), 3)}. Peak memory includes both models' weights "
        "(they are "
        "resident together); the last column is what a step adds on top.",
        "",
    ]


def _vllm_table(p: dict[str, Any]) -> list[str]:
    rows = []
    for key, label in (("False", "off"), ("True", "on")):
        e = p.get("engines", {}).get(key)
        if not e:
            continue
        if e.get("status") != "ok":
            rows.append(f"| {label} | {e.get('status')}: {e.get('reason') or e.get('error')} | | | | |")
            continue
        rows.append(
            f"| {label} | {_num(e['startup_s'], 1)} | {_num(e['eval_s'])} | {_num(e['questions_per_s'])} | "
            f"{e['tokens_submitted']:,} | {e['distinct_prefix_tokens']:,} |"
        )
    eager = {e.get("enforce_eager") for e in p.get("engines", {}).values() if e.get("status") == "ok"}
    speedup = p.get("prefix_caching_speedup")
    return [
        f"vLLM {p.get('vllm')} through lm-eval's `vllm` backend, enforce_eager {', '.join(map(str, eager))}; "
        f"model saved in {_num(p.get('save_s'), 0)} s; each engine in its own process.",
        "",
        "| prefix caching | engine start s | evaluation s | questions/s | tokens submitted "
        "| distinct prefix tokens |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        *([f"Evaluation time off / on: {_num(speedup)}.", ""] if speedup else []),
    ]


