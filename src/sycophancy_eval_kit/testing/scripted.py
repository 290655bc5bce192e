"""A scripted lm-eval model: answers are a pure function of the prompt, so metrics can be hand-computed.

It subclasses lm-eval's own ``LM`` and goes through ``simple_evaluate`` like any backend, which lets
tests check the full lm-eval path (request building, filters, process_results, aggregation, group
weighting) against numbers worked out by hand.
"""

from __future__ import annotations

from collections.abc import Callable

from lm_eval.api.instance import Instance
from lm_eval.api.model import LM


class ScriptedLM(LM):
    """``generate`` maps a context string to a response; ``loglikelihood`` maps (context, continuation)."""

    def __init__(
        self,
        generate: Callable[[str], str] | None = None,
        loglikelihood: Callable[[str, str], float] | None = None,
    ) -> None:
        super().__init__()
        self._generate = generate or (lambda ctx: "")
        self._loglikelihood = loglikelihood or (lambda ctx, cont: 0.0)
        self.calls: list[tuple[str, tuple]] = []

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        out = []
        for req in requests:
            self.calls.append(("generate_until", req.args))
            out.append(self._generate(req.args[0]))
        return out

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        out = []
        for req in requests:
            self.calls.append(("loglikelihood", req.args))
            out.append((float(self._loglikelihood(req.args[0], req.args[1])), False))
        return out

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        raise NotImplementedError("not used by the sycophancy tasks")

    @property
    def tokenizer_name(self) -> str:
        return "scripted"

    def apply_chat_template(
        self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        """A visible, deterministic template so tests can see what the task rendered."""
        body = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in chat_history)
        return body + ("<assistant>" if add_generation_prompt else "")
