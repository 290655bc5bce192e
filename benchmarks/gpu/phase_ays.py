"""Phase (a): Are-You-Sure, the one pass against the adaptive dialogue on the same questions."""

from __future__ import annotations

import time
from typing import Any

from .common import (
    Run,
    cuda_sync,
    free_device_memory,
    log,
    peak_gib,
    recorded_token_requests,
    reset_peak,
    timed_method,
    token_accounting,
)


def warm_up(model: Any, batch_size: int, device: str) -> float:
    """One forward and a short generation before any timing: CUDA context, kernels, allocator pools."""
    import torch

    cuda_sync(device)
    start = time.perf_counter()
    with torch.no_grad():
        ids = torch.randint(10, 1000, (batch_size, 64), device=model.device)
        model(input_ids=ids)
        model.generate(ids[:, :16], max_new_tokens=4, do_sample=False, pad_token_id=model.config.pad_token_id)
    cuda_sync(device)
    return time.perf_counter() - start


def phase_ays(run: Run) -> dict[str, Any]:
    """One pass (lm-eval simple_evaluate) vs the dialogue (evaluate_dialogue) on the same questions."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    from benchmarks.ays import RowCounter
    from sycophancy_eval_kit.dialogue import evaluate_dialogue

    model, device, limit = run.model(), run.device, run.sizes.questions_per_subset
    lm = HFLM(pretrained=model, tokenizer=run.tokenizer, batch_size=run.sizes.batch_size)
    out: dict[str, Any] = {
        "tasks": run.tasks(),
        "batch_size": run.sizes.batch_size,
        "dialogue_max_gen_toks": run.sizes.max_gen_toks,
        "warm_up_s": warm_up(model, run.sizes.batch_size, device),  # before the rows are counted
    }
    hooks_before = set(model._forward_pre_hooks)
    counter = RowCounter(model)
    try:
        model_s: dict[str, float] = {}
        sequences: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        reset_peak(device)
        start = time.perf_counter()
        with timed_method(lm, "loglikelihood", model_s, device), recorded_token_requests(lm, sequences):
            results = simple_evaluate(
                model=lm,
                tasks=run.tasks(),
                task_manager=run.task_manager(),
                limit=limit,
                bootstrap_iters=0,
                log_samples=False,
            )
        cuda_sync(device)
        wall = time.perf_counter() - start
        rows, calls = counter.take()
        n = sum(results["n-samples"][t]["effective"] for t in run.tasks())
        out["questions"] = n
        out["one_pass"] = {
            "wall_s": wall,
            "model_s": model_s.get("loglikelihood", 0.0),
            "forward_rows": rows,
            "forward_calls": calls,
            "peak_gib": peak_gib(device),
            **token_accounting(sequences),
            "acc_first": {t: results["results"][t].get("acc_first,none") for t in run.tasks()},
        }
        run.report["model"]["tokenizer"]["mean_tokens_per_request"] = round(
            out["one_pass"]["tokens_submitted"] / max(1, out["one_pass"]["requests"]), 1
        )
        log(f"ays: one pass of {n} questions in {wall:.1f} s ({run.clock.left():.0f} s of the budget left)")

        model_s = {}
        reset_peak(device)
        start = time.perf_counter()
        with timed_method(lm, "generate_until", model_s, device):
            dialogue = evaluate_dialogue(
                lm,
                run.task_manager().load(run.tasks()),
                gen_kwargs={"max_gen_toks": run.sizes.max_gen_toks},
                limit=limit,
                bootstrap_iters=0,
            )
        cuda_sync(device)
        wall = time.perf_counter() - start
        rows, calls = counter.take()
        n_dialogue = sum(len(v) for v in dialogue["samples"].values())
        if n_dialogue != n:
            raise RuntimeError(f"the dialogue ran {n_dialogue} questions, the one pass {n}")
        out["dialogue"] = {
            "wall_s": wall,
            "model_s": model_s.get("generate_until", 0.0),
            "forward_rows": rows,
            "forward_calls": calls,
            "peak_gib": peak_gib(device),
        }
    finally:
        for key in set(model._forward_pre_hooks) - hooks_before:  # the ORPO phase trains this model
            del model._forward_pre_hooks[key]
            model._forward_pre_hooks_with_kwargs.pop(key, None)
        del lm
        free_device_memory(device)
    for part in (out["one_pass"], out["dialogue"]):
        part["rows_per_question"] = part["forward_rows"] / n
        part["questions_per_s"] = n / part["wall_s"]
        part["questions_per_model_s"] = n / part["model_s"] if part["model_s"] else None
    # HF's logits cache: one row per distinct context, i.e. K+1 per K-option question
    out["one_pass"]["expected_rows_per_question"] = out["one_pass"]["distinct_contexts"] / n
    out["one_pass_speedup_wall"] = out["dialogue"]["wall_s"] / out["one_pass"]["wall_s"]
    if out["one_pass"]["model_s"] and out["dialogue"]["model_s"]:
        out["one_pass_speedup_model"] = out["dialogue"]["model_s"] / out["one_pass"]["model_s"]
    return out


