"""Phase (c): the one pass through lm-eval's vLLM backend, prefix caching off and on."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import (
    REPO,
    Run,
    free_device_memory,
    log,
    package_version,
    recorded_token_requests,
    token_accounting,
)


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def phase_vllm(run: Run) -> dict[str, Any]:
    """The one-pass tasks through lm-eval's vLLM backend, prefix caching off and on, one process each."""
    from sycophancy_eval_kit.core.procs import run_group

    if not vllm_installed():
        return {"status": "skipped", "reason": "vllm is not importable in this environment"}
    if run.device != "cuda":
        return {"status": "skipped", "reason": "vLLM needs a CUDA device"}
    need_gib = run.report["model"].get("weights_gib", 14) * 1.1 + 2
    free_gib = shutil.disk_usage(run.work).free / 2**30
    if free_gib < need_gib:
        return {
            "status": "skipped",
            "reason": f"{run.work}: {free_gib:.0f} GiB free, the model needs {need_gib:.0f}",
        }

    model_dir = Path(tempfile.mkdtemp(prefix="bench-gpu-model-", dir=run.work))
    out: dict[str, Any] = {"vllm": package_version("vllm"), "engines": {}}
    try:
        start = time.perf_counter()
        model = run.model()
        model.save_pretrained(model_dir, max_shard_size="5GB")  # safetensors
        run.tokenizer.save_pretrained(model_dir)
        # transformers 5 records its own class name; the generic one also loads under 4.x (vLLM may pin it)
        config_path = model_dir / "tokenizer_config.json"
        tok_config = json.loads(config_path.read_text(encoding="utf-8"))
        tok_config["tokenizer_class"] = "PreTrainedTokenizerFast"
        config_path.write_text(json.dumps(tok_config, indent=2), encoding="utf-8")
        run.drop_model()
        del model
        free_device_memory(run.device)
        out["save_s"] = time.perf_counter() - start
        log(f"vllm: model saved to {model_dir} in {out['save_s']:.0f} s")
        for caching in (False, True):
            left = run.clock.left()
            if left < 60:
                out["engines"][str(caching)] = {
                    "status": "skipped",
                    "reason": f"{left:.0f} s of the budget left",
                }
                continue
            worker_args = {
                "model_dir": str(model_dir),
                "enable_prefix_caching": caching,
                "enforce_eager": not run.args.vllm_cuda_graphs,
                "gpu_memory_utilization": run.args.vllm_gpu_memory_utilization,
                "max_model_len": 4096,
                "tasks": run.tasks(),
                "data_dir": run.data_dir,
                "limit": run.sizes.questions_per_subset,
                "seed": run.args.seed,
            }
            cmd = [sys.executable, "-m", "benchmarks.gpu", "--worker", "vllm"]
            cmd += ["--worker_args", json.dumps(worker_args)]
            try:  # its own process group: a timeout also ends vLLM's engine process
                proc = run_group(cmd, timeout=max(30.0, left - 10), cwd=REPO, env=offline_env())
            except subprocess.TimeoutExpired as err:
                out["engines"][str(caching)] = {
                    "status": "failed",
                    "error": f"timed out after {err.timeout:.0f} s",
                    "stderr_tail": (err.stderr or "")[-3000:],
                }
                continue
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if proc.returncode or not lines:
                out["engines"][str(caching)] = {
                    "status": "failed",
                    "error": f"worker exited {proc.returncode}",
                    "stderr_tail": proc.stderr[-3000:],
                }
                continue
            result = json.loads(lines[-1])
            out["engines"][str(caching)] = {"status": "ok", **result}
            log(f"vllm: prefix caching {'on' if caching else 'off'}: {result['eval_s']:.1f} s of evaluation")
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)
    off, on = out["engines"].get("False", {}), out["engines"].get("True", {})
    if off.get("status") == "ok" and on.get("status") == "ok":
        out["prefix_caching_speedup"] = off["eval_s"] / on["eval_s"]
    failed = {k: e["error"] for k, e in out["engines"].items() if e.get("status") == "failed"}
    if failed:
        out["status"] = "failed"
        out["error"] = "; ".join(f"prefix caching {k}: {v}" for k, v in failed.items())
    return out


def vllm_worker(spec: dict[str, Any]) -> None:
    """One vLLM engine: start it, run the one-pass tasks through simple_evaluate, print one JSON line."""
    if not vllm_installed():
        sys.exit(f"vllm is not importable by {sys.executable}")
    from lm_eval import simple_evaluate
    from lm_eval.api.registry import get_model
    from lm_eval.tasks import TaskManager

    from sycophancy_eval_kit.lm_eval_tasks import TASKS_DIR

    start = time.perf_counter()
    lm = get_model("vllm").create_from_arg_obj(
        {
            "pretrained": spec["model_dir"],
            "tokenizer": spec["model_dir"],
            "dtype": "bfloat16",
            "enable_prefix_caching": spec["enable_prefix_caching"],
            "enforce_eager": spec["enforce_eager"],
            "gpu_memory_utilization": spec["gpu_memory_utilization"],
            "max_model_len": spec["max_model_len"],
            "seed": spec["seed"],
        },
        {"batch_size": "auto"},
    )
    startup = time.perf_counter() - start
    sequences: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    manager = TaskManager(
        include_path=str(TASKS_DIR), include_defaults=False, metadata={"data_dir": spec["data_dir"]}
    )
    start = time.perf_counter()
    with recorded_token_requests(lm, sequences):
        results = simple_evaluate(
            model=lm,
            tasks=spec["tasks"],
            task_manager=manager,
            limit=spec["limit"],
            bootstrap_iters=0,
            log_samples=False,
        )
    seconds = time.perf_counter() - start
    n = sum(results["n-samples"][t]["effective"] for t in spec["tasks"])
    record = {
        "startup_s": startup,
        "eval_s": seconds,
        "questions": n,
        "questions_per_s": n / seconds,
        "enforce_eager": spec["enforce_eager"],
        **token_accounting(sequences),
    }
    print(json.dumps(record), flush=True)


def offline_env() -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }


