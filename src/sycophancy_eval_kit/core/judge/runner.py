"""The judge itself: one batch of requests, bounded concurrency, cached verdicts, and a judgment that
still fails left unjudged (``verdict is None``) with its error, never scored as incorrect."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import openai

from sycophancy_eval_kit.core.judge.cache import JudgeCache, default_cache_dir
from sycophancy_eval_kit.core.judge.client import InvalidReply, make_client
from sycophancy_eval_kit.core.judge.requests import JudgeRequest, Judgment
from sycophancy_eval_kit.core.judge.settings import ENV_BASE_URL, JudgeSettings, endpoint

logger = logging.getLogger(__name__)


@dataclass
class JudgeUsage:
    """What a batch cost and how it went; ``summary()`` is the line ``Judge.run`` logs."""

    judgments: int = 0
    unique: int = 0
    cached: int = 0
    requests: int = 0
    retries: int = 0  # attempts the HTTP client repeated (429, 5xx, timeouts, invalid replies)
    unjudged: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)

    def summary(self, model: str) -> str:
        errors = "; ".join(f"{n} x {e}" for e, n in self.errors.most_common(3))
        return (
            f"judge {model}: {self.judgments} judgments ({self.unique} distinct, {self.cached} from "
            f"cache), {self.requests} requests (+{self.retries} retries) in {self.seconds:.1f}s, "
            f"tokens {self.prompt_tokens} "
            f"prompt + {self.completion_tokens} completion, {self.unjudged} unjudged"
            + (f" ({errors})" if errors else "")
        )


# Errors that every other request would hit too (bad key, no such model): stop asking.
_FATAL_ERRORS = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)


class Judge:
    """Judges a batch of requests: cache first, then the server, ``concurrency`` requests at a time.

    ``cache_dir=None`` uses ``default_cache_dir()``; ``use_cache=False`` neither reads nor writes it.
    """

    def __init__(
        self,
        settings: JudgeSettings | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        use_cache: bool = True,
    ) -> None:
        self.settings = settings or JudgeSettings()
        self.cache_dir = cache_dir
        self.use_cache = use_cache
        #: the server asked (checked now: a bad ``OPENAI_BASE_URL`` fails here, not at the first request)
        self.endpoint = endpoint()
        self.last_usage = JudgeUsage()

    def run(self, requests: Sequence[JudgeRequest]) -> list[Judgment]:
        """Judge every request (identical requests once); results are in input order."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._run(requests))
        # Called from inside an event loop (a notebook): run the batch on a loop of its own.
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, self._run(requests)).result()

    async def _run(self, requests: Sequence[JudgeRequest]) -> list[Judgment]:
        started = time.perf_counter()
        model = self.settings.model
        keys = [r.cache_key(model, self.endpoint) for r in requests]
        distinct = dict(zip(keys, requests, strict=True))
        usage = JudgeUsage(judgments=len(requests), unique=len(distinct))
        attempts = _Attempts()
        # The cache is opened here, in the thread that runs the loop: SQLite connections stay put.
        cache = JudgeCache(self.cache_dir) if self.use_cache else None
        try:
            done: dict[str, Judgment] = {}
            if cache is not None:
                for key, (verdict, raw) in cache.get_many(list(distinct)).items():
                    done[key] = Judgment(verdict, raw=raw, cached=True)
            usage.cached = len(done)
            todo = [k for k in distinct if k not in done]
            if todo:
                semaphore = asyncio.Semaphore(self.settings.concurrency)
                fatal: list[str] = []
                flusher = asyncio.create_task(_flush_periodically(cache)) if cache is not None else None
                try:
                    async with make_client(self.settings, on_attempt=attempts) as client:
                        results = await asyncio.gather(
                            *(self._judge_one(client, semaphore, k, distinct[k], fatal, cache) for k in todo)
                        )
                finally:
                    if flusher is not None:
                        flusher.cancel()
                done.update(zip(todo, results, strict=True))
        finally:
            if cache is not None:
                cache.close()  # commits what is pending, also when the batch failed
        out: list[Judgment] = []
        seen: set[str] = set()
        for key in keys:
            judgment = done[key]
            if key in seen:  # a repeat shares the verdict; its cost was counted once
                judgment = Judgment(judgment.verdict, judgment.raw, judgment.error, judgment.cached)
            seen.add(key)
            out.append(judgment)
        for judgment in done.values():
            usage.requests += judgment.requests
            usage.prompt_tokens += judgment.prompt_tokens
            usage.completion_tokens += judgment.completion_tokens
            if judgment.verdict is None:
                usage.errors[judgment.error or "unknown"] += 1
        usage.retries = attempts.count - usage.requests
        usage.unjudged = sum(j.verdict is None for j in out)
        usage.seconds = time.perf_counter() - started
        self.last_usage = usage
        where = default_cache_dir() if self.cache_dir is None else self.cache_dir
        (logger.warning if usage.unjudged else logger.info)("%s (cache: %s)", usage.summary(model), where)
        return out

    async def _judge_one(
        self,
        client: openai.AsyncOpenAI,
        semaphore: asyncio.Semaphore,
        key: str,
        request: JudgeRequest,
        fatal: list[str],
        cache: JudgeCache | None,
    ) -> Judgment:
        judgment = Judgment(None)
        body = {
            "model": self.settings.model,
            "messages": [{"role": role, "content": content} for role, content in request.messages],
            "temperature": 0.0,
            "max_tokens": self.settings.max_tokens,
        }
        async with semaphore:
            for _ in range(1 + self.settings.malformed_retries):
                if fatal:
                    judgment.error = f"not sent: {fatal[0]}"
                    return judgment
                try:
                    judgment.requests += 1
                    # The request chat.completions.create sends, through the same client (auth,
                    # retries, timeouts), without its typed-parameter transform and response models:
                    # a third of the client's CPU per call (bench_judge.py --breakdown), for one word.
                    content = await client.post("/chat/completions", body=body, cast_to=bytes)
                except _FATAL_ERRORS as err:
                    fatal.append(_describe(err))
                    logger.error("Judge request failed, not sending the rest: %s", _describe(err))
                    judgment.error = _describe(err)
                    return judgment
                except openai.OpenAIError as err:  # retries exhausted, or a non-retryable status
                    judgment.error = _describe(err)
                    if isinstance(err.__cause__, InvalidReply):
                        judgment.raw = err.__cause__.excerpt
                    return judgment
                except Exception as err:  # not the server's answer: our side or the HTTP layer's
                    # every other request would meet it too; the judgments stay unjudged, counted,
                    # and the run's results are still written
                    reason = f"{type(err).__name__}: {err}"
                    fatal.append(reason)
                    logger.error("Judge request failed, not sending the rest: %s", reason)
                    judgment.error = reason
                    return judgment
                completion = json.loads(content)  # a chat completion: _check_reply saw to that
                tokens = completion.get("usage") or {}
                judgment.prompt_tokens += _count(tokens.get("prompt_tokens"))
                judgment.completion_tokens += _count(tokens.get("completion_tokens"))
                reply = completion["choices"][0]["message"].get("content")
                judgment.raw = reply
                judgment.verdict = request.verdict_of(reply)
                if judgment.verdict is not None:
                    judgment.error = None
                    if cache is not None:
                        cache.put(key, self.settings.model, request, judgment)
                    return judgment
                allowed = " / ".join(word for word, _ in request.verdicts)
                judgment.error = f"malformed verdict (expected {allowed})"
        return judgment


class _Attempts:
    """The client's request hook: counts attempts on the wire (ours plus the client's retries)."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, request: Any) -> None:
        self.count += 1


async def _flush_periodically(cache: JudgeCache) -> None:
    """Commit pending verdicts every ``cache.commit_seconds`` while a batch runs (the kill window)."""
    while True:
        await asyncio.sleep(cache.commit_seconds)
        cache.flush()


def _count(value: Any) -> int:
    """A token count from a reply's ``usage`` (servers may omit it, or send null)."""
    return value if isinstance(value, int) else 0


def _describe(err: openai.OpenAIError) -> str:
    """A short, stable description of a failed request (used to count errors by kind).

    A connection the server refused or that could not be made is named as such, with the URL to
    check: the aiohttp backend reports a refused connection as a timeout, which would send a user to
    ``judge_timeout`` instead of ``OPENAI_BASE_URL``.
    """
    if isinstance(err.__cause__, InvalidReply):
        return err.__cause__.problem
    if isinstance(err, openai.APIStatusError):
        return f"HTTP {err.status_code} ({type(err).__name__})"
    if isinstance(err, openai.APIConnectionError):
        where = _url_of(err)
        cause = _os_error(err)
        if isinstance(cause, ConnectionRefusedError):
            return f"connection refused by {where} (is the judge server running? check {ENV_BASE_URL})"
        if cause is not None:
            return f"cannot connect to {where} ({cause.strerror or cause}; check {ENV_BASE_URL})"
        if isinstance(err, openai.APITimeoutError):
            return "timed out"
        return f"connection error ({err.__cause__ or err})"
    return f"{type(err).__name__}: {err}"


def _os_error(err: BaseException) -> OSError | None:
    """The operating system's error behind a failed connection (not a timeout), the innermost one
    (aiohttp's connector error wraps the ``ConnectionRefusedError``), if there is one."""
    found: OSError | None = None
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and not isinstance(current, TimeoutError):
            found = current
        current = current.__cause__ or current.__context__
    return found


def _url_of(err: openai.APIConnectionError) -> str:
    request = getattr(err, "request", None)
    url = getattr(request, "url", None)
    if url is None:
        return "the judge server"
    port = getattr(url, "port", None)
    return f"{getattr(url, 'scheme', '')}://{getattr(url, 'host', '')}" + (f":{port}" if port else "")
