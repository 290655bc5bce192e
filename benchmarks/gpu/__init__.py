"""GPU benchmark, one command: a random 7B-shaped Llama in bf16 through the project's real code paths.

```bash
python -m benchmarks.gpu                            # one GPU, <= 8 minutes, writes outputs/bench_gpu/
python -m benchmarks.gpu --shape mistral-7b --out_dir /tmp/bench
python -m benchmarks.gpu --tiny --out_dir /tmp/smoke   # tiny shapes on the CPU: a smoke run, not figures
```

Three phases, each timed, recorded and written out (``bench_gpu.json`` and ``bench_gpu.md``) as soon as it
ends, so a failure in one keeps the others:

* ``ays`` -- Are-You-Sure on the same multiple-choice questions, two ways: the one-pass tasks through
  lm-eval's ``simple_evaluate`` (K+1 forward rows per K-option question) and the adaptive dialogue
  (``evaluate_dialogue``: three generation rounds, plus a short side turn for ``*_cot`` questions, with a
  fixed ``max_gen_toks``; a random model never
  stops early, so every turn generates that many tokens). Forward rows per question, questions/s, peak
  GPU memory.
* ``orpo`` -- ORPO + LoRA with ``training/configs/paper.yaml``'s settings (r, alpha, targets, effective
  batch, cutoff length, gradient checkpointing) on synthetic preference rows whose every sequence is
  at the cutoff: ``SycophancyORPOTrainer`` and TRL's ``ORPOTrainer`` alternate ``train()`` calls on two
  copies of the same model and the same rows; tokens/s and peak memory per optimizer step, with the
  first step of every call (warm-up) left out.
* ``vllm`` -- when vLLM is importable: the one-pass tasks through lm-eval's ``vllm`` backend with
  prefix caching off and on, each engine in its own process; the model is saved to a temporary folder
  only for this phase (bf16 safetensors, about 13 GB) and removed afterwards.

The model is built from a ``LlamaConfig`` directly on the device (no download, no host copy) with a
32,000-entry vocabulary, so the LM head and its log-softmax cost what a real 7B model's do (the tiny
shape uses 2,048). Its tokenizer is the tests' byte-level BPE retrained on the benchmark's own questions
(close to whole-word on them; chars/token is reported) and filled with unused entries up to the
vocabulary size, so every id the random model emits decodes. A phase is skipped, with the reason
recorded, when the time left in ``--budget_s`` is below its estimate; one that fails is recorded with
its traceback and the next one runs. Exit status 1 when a phase failed.
"""
