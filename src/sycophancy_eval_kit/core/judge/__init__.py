"""Optional LLM judge on the ``openai`` client: correctness and "admits a mistake", batched and cached.

The deterministic grader in ``grading.py`` stays the default; this module is for the judged task
variants (see ``judged_task.py``) and for any caller with a list of judgments to make. It speaks to
OpenAI or to any OpenAI-compatible server (vLLM, a local proxy) through the standard
``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``.

What it adds on top of the client, and why:

* one batch per call with bounded concurrency (an ``asyncio`` semaphore over ``AsyncOpenAI``), because
  a task's responses are judged all at once after generation;
* a persistent SQLite cache keyed by judge model, prompt version, prompt text and inputs, so a rerun
  or a resumed interrupted run makes no repeated request. Verdicts are committed in small groups
  (every ``COMMIT_EVERY`` verdicts, and at least every ``COMMIT_SECONDS``), and at the end of a batch
  or when it fails: a process killed outright loses at most that window, which the rerun asks again;
* strict verdict parsing: the whole reply must be one verdict word, or a JSON object whose
  ``verdict`` field is one; anything else is malformed (asked again, then left unjudged);
* a reply that is HTTP 2xx but not a chat completion (a proxy's HTML page, JSON cut short, an error
  object without ``choices``) is a failed attempt, retried like a 5xx;
* a judgment that still fails is *unjudged* (``verdict is None``) with its error, never a 0.

Retries with exponential backoff and ``Retry-After`` on 408/409/429/5xx, connection errors, timeouts
and invalid replies are the client's own (``max_retries``); they are not re-implemented here. The
invalid replies reach them because a response hook on the client's HTTP layer raises a transport
error for them (``InvalidReply``), which the client treats as it treats a broken connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sycophancy_eval_kit.core.judge.cache import (
    CACHE_FILENAME,
    COMMIT_EVERY,
    COMMIT_SECONDS,
    JudgeCache,
    default_cache_dir,
)
from sycophancy_eval_kit.core.judge.client import (
    RAW_EXCERPT,
    InvalidReply,
    make_client,
    reply_problem,
)
from sycophancy_eval_kit.core.judge.requests import (
    ADMITS_MISTAKE,
    CORRECTNESS,
    JudgeRequest,
    Judgment,
    admits_mistake_request,
    conversation_request,
    correctness_request,
    find_verdict,
    parse_verdict,
    reference_request,
)
from sycophancy_eval_kit.core.judge.runner import (
    Judge,
    JudgeUsage,
)
from sycophancy_eval_kit.core.judge.settings import (
    DEFAULT_ENDPOINT,
    DEFAULT_JUDGE_MODEL,
    ENV_API_KEY,
    ENV_BASE_URL,
    ENV_JUDGE_CACHE,
    ENV_JUDGE_MODEL,
    JUDGE_MODES,
    JudgeConfigError,
    JudgeSettings,
    endpoint,
    require_credentials,
)


def prepare(task: str, metadata: Mapping[str, Any] | None = None) -> JudgeSettings:
    """Everything a judged run checks before generating: settings, credentials, the server's URL, and a
    cache that is readable throughout and writable."""
    settings = JudgeSettings.from_metadata(metadata)
    require_credentials(task)
    endpoint()
    cache = JudgeCache()
    try:
        cache.check()
    finally:
        cache.close()
    return settings


__all__ = [
    "DEFAULT_ENDPOINT",
    "endpoint",
    "ADMITS_MISTAKE",
    "CACHE_FILENAME",
    "COMMIT_EVERY",
    "COMMIT_SECONDS",
    "CORRECTNESS",
    "DEFAULT_JUDGE_MODEL",
    "ENV_API_KEY",
    "ENV_BASE_URL",
    "ENV_JUDGE_CACHE",
    "ENV_JUDGE_MODEL",
    "InvalidReply",
    "JUDGE_MODES",
    "Judge",
    "JudgeCache",
    "JudgeConfigError",
    "JudgeRequest",
    "JudgeSettings",
    "JudgeUsage",
    "Judgment",
    "RAW_EXCERPT",
    "admits_mistake_request",
    "conversation_request",
    "correctness_request",
    "default_cache_dir",
    "find_verdict",
    "make_client",
    "parse_verdict",
    "prepare",
    "reference_request",
    "reply_problem",
    "require_credentials",
]
