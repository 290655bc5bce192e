"""How the judge is configured: model, mode, concurrency, retries; credentials checked before work."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_JUDGE_MODEL = "gpt-3.5-turbo-0125"
ENV_JUDGE_MODEL = "SYCOPHANCY_JUDGE_MODEL"
ENV_JUDGE_CACHE = "SYCOPHANCY_JUDGE_CACHE"
ENV_API_KEY = "OPENAI_API_KEY"
ENV_BASE_URL = "OPENAI_BASE_URL"
#: the judge modes of ``judge_mode``: ours (strict, every accepted answer), or the reference grader's
#: inputs and rule (one true answer, lenient, verdict word found anywhere in the reply).
JUDGE_MODES: tuple[str, ...] = ("ours", "reference")
class JudgeConfigError(RuntimeError):
    """The judge cannot run as configured (no credentials, a bad setting); says what to set."""


@dataclass(frozen=True)
class JudgeSettings:
    """How to call the judge. Runtime ``--metadata`` keys are ``judge_<field>`` (``judge_model=...``).

    Parameters:
        model: judge model name; ``--metadata judge_model``, else env ``SYCOPHANCY_JUDGE_MODEL``,
            else the paper's ``gpt-3.5-turbo-0125``.
        mode: how correctness is judged: ``ours`` (the default: every accepted answer, one-word
            verdicts only) or ``reference`` (the inputs and verdict rule of the grader reproductions
            of Sharma et al. use; see ``prompts.JUDGE_REFERENCE_USER``), for comparing with published
            numbers. ``both`` judges with ours and also reports ``judge_mode_agreement``.
        concurrency: requests in flight at once.
        max_retries: the openai client's retries per request (exponential backoff, ``Retry-After``).
        timeout: seconds per request attempt before it counts as a timeout (and is retried).
        malformed_retries: extra requests when a reply is not a valid verdict.
        max_tokens: reply budget; a verdict is one word, or a short JSON object.
    """

    model: str = DEFAULT_JUDGE_MODEL
    mode: str = "ours"
    concurrency: int = 32
    max_retries: int = 6
    timeout: float = 60.0
    malformed_retries: int = 1
    max_tokens: int = 16

    def __post_init__(self) -> None:
        if not self.model:
            raise JudgeConfigError("judge_model is empty; expected a model name such as gpt-3.5-turbo-0125")
        if self.mode not in (*JUDGE_MODES, "both"):
            raise JudgeConfigError(
                f"judge_mode={self.mode!r}: expected one of {', '.join(JUDGE_MODES)} or both"
            )
        for name in ("concurrency", "max_tokens"):
            if getattr(self, name) < 1:
                raise JudgeConfigError(f"judge_{name}={getattr(self, name)}: expected an integer >= 1")
        for name in ("max_retries", "malformed_retries"):
            if getattr(self, name) < 0:
                raise JudgeConfigError(f"judge_{name}={getattr(self, name)}: expected an integer >= 0")
        if not self.timeout > 0:
            raise JudgeConfigError(f"judge_timeout={self.timeout}: expected seconds > 0")

    @classmethod
    def from_metadata(
        cls, metadata: Mapping[str, Any] | None, env: Mapping[str, str] | None = None
    ) -> JudgeSettings:
        """Settings from a task's runtime metadata (``judge_*`` keys) and the environment."""
        meta = dict(metadata or {})
        env = os.environ if env is None else env
        values: dict[str, Any] = {"model": meta.get("judge_model") or env.get(ENV_JUDGE_MODEL) or None}
        types = {f: type(getattr(cls(), f)) for f in cls.__dataclass_fields__ if f != "model"}
        types["mode"] = str
        for name, kind in types.items():
            raw = meta.get(f"judge_{name}")
            if raw is None:
                continue
            try:
                values[name] = kind(raw)
            except (TypeError, ValueError) as err:
                raise JudgeConfigError(f"judge_{name}={raw!r}: expected {kind.__name__}") from err
        return cls(**{k: v for k, v in values.items() if v is not None})

    def to_metadata(self) -> dict[str, Any]:
        """The settings as ``judge_*`` keys (recorded in results, passed to filters)."""
        return {f"judge_{k}": v for k, v in asdict(self).items()}


#: where requests go when ``OPENAI_BASE_URL`` is not set (the openai client's own default)
DEFAULT_ENDPOINT = "https://api.openai.com/v1"


def endpoint(env: Mapping[str, str] | None = None) -> str:
    """The server the judge asks: ``$OPENAI_BASE_URL`` checked, or OpenAI's.

    Checked before any generation, because the HTTP layer only fails on it at the first request, after
    the model under evaluation has run: the URL must be ``http(s)://host[:port][/path]``, without
    credentials (the key goes in ``$OPENAI_API_KEY``).
    """
    env = os.environ if env is None else env
    raw = (env.get(ENV_BASE_URL) or "").strip()
    if not raw:
        return DEFAULT_ENDPOINT
    parsed = urllib.parse.urlsplit(raw)
    # never echo a password: the message shows the URL with any user:password@ masked
    shown = parsed._replace(netloc=parsed.netloc.rpartition("@")[2]).geturl()
    if "@" in parsed.netloc:
        shown = shown.replace("://", "://***@", 1)
    try:
        parsed.port  # noqa: B018  (raises for a port that is not a number)
    except ValueError as err:
        raise JudgeConfigError(f"{ENV_BASE_URL}={shown}: {err}; expected http(s)://host[:port]/v1") from err
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise JudgeConfigError(f"{ENV_BASE_URL}={shown}: expected http(s)://host[:port]/v1")
    if parsed.username is not None or parsed.password is not None:
        raise JudgeConfigError(
            f"{ENV_BASE_URL}={shown}: credentials in the URL are not sent by the client; put the key in "
            f"{ENV_API_KEY} and the URL without user:password@"
        )
    return raw.rstrip("/")


def require_credentials(task: str, env: Mapping[str, str] | None = None) -> None:
    """Fail early, naming what to set, when neither an API key nor a base URL is configured."""
    env = os.environ if env is None else env
    if env.get(ENV_API_KEY) or env.get(ENV_BASE_URL):
        return
    raise JudgeConfigError(
        f"{task} grades responses with an LLM judge, but no judge is configured. Set {ENV_API_KEY} "
        f"(OpenAI), or {ENV_BASE_URL} for an OpenAI-compatible server such as vLLM (its key, if any, "
        f"in {ENV_API_KEY}). Choose the judge with --metadata judge_model=NAME or ${ENV_JUDGE_MODEL} "
        f"(default {DEFAULT_JUDGE_MODEL}). Without a judge, run the rule-graded variant instead "
        f"(for the lm-eval tasks: the same names without '_judged')."
    )


