"""The ``openai`` client the judge speaks through, and what counts as a reply at all.

Retries with exponential backoff and ``Retry-After`` are the client's own (``max_retries``). A 2xx reply
that is not a chat completion (a proxy's HTML page, JSON cut short, an error object without
``choices``) is turned into a transport error by a response hook, so the client retries it too.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from typing import Any

import openai

try:  # the HTTP library this openai speaks: httpx2 from openai 3, httpx before; its errors are retried
    import httpx2 as _http

    if not issubclass(openai.DefaultAsyncHttpxClient, _http.AsyncClient):
        raise ImportError("openai does not use httpx2")
except ImportError:
    import httpx as _http  # type: ignore[no-redef]


from sycophancy_eval_kit.core.judge.settings import ENV_API_KEY, ENV_BASE_URL, JudgeSettings

#: characters of an invalid reply's body kept as the judgment's ``raw`` (what came back, for the samples).
RAW_EXCERPT = 200
def make_client(
    settings: JudgeSettings,
    env: Mapping[str, str] | None = None,
    on_attempt: Any = None,
) -> openai.AsyncOpenAI:
    """An ``AsyncOpenAI`` for the configured server; a keyless local server gets a placeholder key.

    Its HTTP layer is openai's aiohttp backend where installed (the client's own option "for improved
    concurrency performance": 30-45% less client CPU per request than the httpx default in
    ``benchmarks/judge.py --breakdown``), with a response hook that turns a 2xx reply that is not
    a chat completion into ``InvalidReply``, so the client retries it. ``on_attempt`` (an async
    callable taking the request) sees every attempt on the wire, the client's retries included.
    """
    env = os.environ if env is None else env
    api_key = env.get(ENV_API_KEY) or ("EMPTY" if env.get(ENV_BASE_URL) else None)
    hooks: dict[str, list[Any]] = {"response": [_check_reply]}
    if on_attempt is not None:
        hooks["request"] = [on_attempt]
    return openai.AsyncOpenAI(
        api_key=api_key,
        base_url=env.get(ENV_BASE_URL) or None,
        max_retries=settings.max_retries,
        timeout=settings.timeout,
        http_client=_http_client(hooks),
    )


def _http_client(hooks: dict[str, list[Any]]) -> Any:
    aiohttp_client = getattr(openai, "DefaultAioHttpClient", None)
    if aiohttp_client is not None:
        with contextlib.suppress(RuntimeError):  # openai without its aiohttp extra
            return aiohttp_client(event_hooks=hooks)
    return openai.DefaultAsyncHttpxClient(event_hooks=hooks)


class InvalidReply(_http.DecodingError):
    """A 2xx reply that is not a chat completion; ``excerpt`` is the start of its body."""

    def __init__(self, problem: str, excerpt: str, request: Any = None) -> None:
        super().__init__(problem, request=request)
        self.problem = problem
        self.excerpt = excerpt


def reply_problem(status: int, content_type: str, body: bytes) -> str | None:
    """Why a 2xx body is not a chat completion, or ``None`` when it is one (``choices[0].message``).

    The message's content may be null (a refusal): that is a reply, whose verdict is then malformed.
    """
    kind = content_type.split(";")[0].strip() or "no content type"
    try:
        data = json.loads(body)
    except ValueError:  # JSONDecodeError, and UnicodeDecodeError for bytes that are not text
        return f"HTTP {status} {kind}, not JSON"
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices:
        return f"HTTP {status} JSON without choices"
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    if not isinstance(message, dict) or not isinstance(message.get("content"), (str, type(None))):
        return f"HTTP {status} JSON without a message"
    return None


async def _check_reply(response: Any) -> None:
    """The client's response hook: raise ``InvalidReply`` for a 2xx body that is not a completion."""
    if not 200 <= response.status_code < 300:
        return  # an HTTP error: the client's own handling
    await response.aread()
    problem = reply_problem(response.status_code, response.headers.get("content-type", ""), response.content)
    if problem is not None:
        excerpt = response.content[:RAW_EXCERPT].decode("utf-8", "replace")
        raise InvalidReply(f"invalid reply: {problem}", excerpt, request=response.request)


