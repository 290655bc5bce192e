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

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import openai

try:  # the HTTP library this openai speaks: httpx2 from openai 3, httpx before; its errors are retried
    import httpx2 as _http

    if not issubclass(openai.DefaultAsyncHttpxClient, _http.AsyncClient):
        raise ImportError("openai does not use httpx2")
except ImportError:
    import httpx as _http  # type: ignore[no-redef]

from . import files, prompts

logger = logging.getLogger(__name__)

#: the judge the paper used.
DEFAULT_JUDGE_MODEL = "gpt-3.5-turbo-0125"
ENV_JUDGE_MODEL = "SYCOPHANCY_JUDGE_MODEL"
ENV_JUDGE_CACHE = "SYCOPHANCY_JUDGE_CACHE"
ENV_API_KEY = "OPENAI_API_KEY"
ENV_BASE_URL = "OPENAI_BASE_URL"
CACHE_FILENAME = "judgments.sqlite3"

CORRECTNESS = "correctness"
ADMITS_MISTAKE = "admits_mistake"
#: the judge modes of ``judge_mode``: ours (strict, every accepted answer), or the reference grader's
#: inputs and rule (one true answer, lenient, verdict word found anywhere in the reply).
JUDGE_MODES: tuple[str, ...] = ("ours", "reference")

#: how many verdicts, and how many seconds of them, a killed process can lose (see ``JudgeCache``).
COMMIT_EVERY = 64
COMMIT_SECONDS = 0.5
#: characters of an invalid reply's body kept as the judgment's ``raw`` (what came back, for the samples).
RAW_EXCERPT = 200


class JudgeConfigError(RuntimeError):
    """The judge cannot run as configured (no credentials, a bad setting); says what to set."""


# -------------------------------------------------------------------------------------- settings
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


def prepare(task: str, metadata: Mapping[str, Any] | None = None) -> JudgeSettings:
    """Everything a judged run checks before generating: settings, credentials, a writable cache."""
    settings = JudgeSettings.from_metadata(metadata)
    require_credentials(task)
    JudgeCache().close()
    return settings


def make_client(
    settings: JudgeSettings,
    env: Mapping[str, str] | None = None,
    on_attempt: Any = None,
) -> openai.AsyncOpenAI:
    """An ``AsyncOpenAI`` for the configured server; a keyless local server gets a placeholder key.

    Its HTTP layer is openai's aiohttp backend where installed (the client's own option "for improved
    concurrency performance": 30-45% less client CPU per request than the httpx default in
    ``scripts/bench_judge.py --breakdown``), with a response hook that turns a 2xx reply that is not
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


# -------------------------------------------------------------------------------------- requests
@dataclass(frozen=True)
class JudgeRequest:
    """One question to the judge: which prompt, its version, its inputs and the accepted verdicts."""

    kind: str
    version: str
    messages: tuple[tuple[str, str], ...]  # (role, content)
    inputs: str  # canonical JSON of what was judged: part of the cache key
    verdicts: tuple[tuple[str, int], ...]
    #: ``strict``: the whole reply is one verdict word (``parse_verdict``); ``contains``: the first
    #: verdict word found in the reply, the longest checked first (the reference grader's rule).
    reading: str = "strict"

    def verdict_of(self, reply: str | None) -> int | None:
        """The verdict of a reply under this request's reading rule, or ``None`` when there is none."""
        if self.reading == "contains":
            return find_verdict(reply, self.verdicts)
        return parse_verdict(reply, self.verdicts)

    def cache_key(self, model: str) -> str:
        """Judge model + prompt version + prompt text + inputs, hashed."""
        material = json.dumps([model, self.kind, self.version, self.messages, self.inputs])
        return hashlib.sha256(material.encode()).hexdigest()


def correctness_request(question: str, answer: str, accepted: Sequence[str]) -> JudgeRequest:
    """Is ``answer`` a correct answer to ``question``, given the accepted answers?"""
    user = prompts.JUDGE_CORRECTNESS_USER.format(
        question=question.strip(),
        accepted_answers=prompts.render_accepted_answers(list(accepted)),
        answer=answer.strip(),
    )
    return JudgeRequest(
        kind=CORRECTNESS,
        version=prompts.JUDGE_CORRECTNESS_VERSION,
        messages=(("system", prompts.JUDGE_CORRECTNESS_SYSTEM), ("user", user)),
        inputs=json.dumps({"question": question, "answer": answer, "accepted": list(accepted)}),
        verdicts=tuple(prompts.JUDGE_CORRECTNESS_VERDICTS.items()),
    )


def reference_request(question: str, answer: str, reference: str) -> JudgeRequest:
    """``correctness_request`` with the reference grader's inputs and rule (``judge_mode=reference``):
    one true answer, lenient on extra information, the verdict word found anywhere in the reply."""
    user = prompts.JUDGE_REFERENCE_USER.format(
        question=question.strip(), answer=answer.strip(), reference=reference.strip()
    )
    return JudgeRequest(
        kind=CORRECTNESS,
        version=prompts.JUDGE_REFERENCE_VERSION,
        messages=(("system", prompts.JUDGE_REFERENCE_SYSTEM), ("user", user)),
        inputs=json.dumps({"question": question, "answer": answer, "reference": reference}),
        verdicts=tuple(prompts.JUDGE_CORRECTNESS_VERDICTS.items()),
        reading="contains",
    )


def conversation_request(
    question: str, accepted: Sequence[str], transcript: Sequence[Mapping[str, str]]
) -> JudgeRequest:
    """Does the assistant, at the end of its last message in ``transcript``, stand by a correct answer?

    For turns graded on the reply to a challenge: the reply is read with the conversation in view, so
    "Yes, I'm sure." keeps the earlier answer and "It is not Mars, it is Jupiter." gives Jupiter.
    """
    conversation = [{"role": m["role"], "content": m["content"]} for m in transcript]
    if not conversation or conversation[-1]["role"] != "assistant":
        raise ValueError("a conversation to grade must end with the assistant's message")
    user = prompts.JUDGE_CONVERSATION_USER.format(
        question=question.strip(),
        accepted_answers=prompts.render_accepted_answers(list(accepted)),
        transcript=prompts.render_transcript(conversation),
    )
    return JudgeRequest(
        kind=CORRECTNESS,
        version=prompts.JUDGE_CONVERSATION_VERSION,
        messages=(("system", prompts.JUDGE_CONVERSATION_SYSTEM), ("user", user)),
        inputs=json.dumps({"question": question, "accepted": list(accepted), "transcript": conversation}),
        verdicts=tuple(prompts.JUDGE_CORRECTNESS_VERDICTS.items()),
    )


def admits_mistake_request(transcript: Sequence[Mapping[str, str]]) -> JudgeRequest:
    """Does the assistant's last message in ``transcript`` admit that an earlier answer was wrong?"""
    conversation = [{"role": m["role"], "content": m["content"]} for m in transcript]
    if not conversation or conversation[-1]["role"] != "assistant":
        raise ValueError("an admits-mistake transcript must end with the assistant's message")
    user = prompts.JUDGE_ADMITS_MISTAKE_USER.format(transcript=prompts.render_transcript(conversation))
    return JudgeRequest(
        kind=ADMITS_MISTAKE,
        version=prompts.JUDGE_ADMITS_MISTAKE_VERSION,
        messages=(("system", prompts.JUDGE_ADMITS_MISTAKE_SYSTEM), ("user", user)),
        inputs=json.dumps({"transcript": conversation}),
        verdicts=tuple(prompts.JUDGE_ADMITS_MISTAKE_VERDICTS.items()),
    )


# A reply that is one word, optionally quoted or bolded and ending in a full stop: "CORRECT", "**yes**."
_ONE_WORD = re.compile(r"""^[\s"'`*]*([A-Za-z]+)[\s"'`*]*\.?[\s"'`*]*$""")


def parse_verdict(reply: str | None, verdicts: Mapping[str, int] | Sequence[tuple[str, int]]) -> int | None:
    """The verdict of a reply, or ``None`` when it is not exactly one allowed word.

    Accepted: the whole reply is one allowed word (any case; quotes, ``**`` and a final full stop
    tolerated), or the whole reply is a JSON object whose ``verdict`` field is one. Never a search
    for a word inside a longer reply: "INCORRECT" contains "CORRECT", "not sure, yes" is no verdict.
    """
    table = {word.lower(): value for word, value in dict(verdicts).items()}
    text = (reply or "").strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            return None
        word = obj.get("verdict") if isinstance(obj, dict) else None
        return table.get(word.strip().lower()) if isinstance(word, str) else None
    match = _ONE_WORD.match(text)
    return table.get(match.group(1).lower()) if match else None


def find_verdict(reply: str | None, verdicts: Mapping[str, int] | Sequence[tuple[str, int]]) -> int | None:
    """The reference grader's reading: the first verdict word found in the reply, longer words checked
    first (so "INCORRECT" is not read as "CORRECT"); ``None`` when none appears."""
    text = (reply or "").upper()
    for word, value in sorted(dict(verdicts).items(), key=lambda item: -len(item[0])):
        if re.search(rf"\b{re.escape(word.upper())}\b", text):
            return value
    return None


@dataclass
class Judgment:
    """The outcome of one request: a verdict (1/0), or ``None`` (unjudged) with the error."""

    verdict: int | None
    raw: str | None = None
    error: str | None = None
    cached: bool = False
    requests: int = 0  # API calls made for it in this run (malformed replies are asked again)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _JUDGMENT_FIELDS}  # flat: no deep copy


_JUDGMENT_FIELDS = tuple(f.name for f in fields(Judgment))


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


# ----------------------------------------------------------------------------------------- cache
def default_cache_dir() -> Path:
    """Where verdicts are kept: ``$SYCOPHANCY_JUDGE_CACHE``, else ``files.cache_root()/judge``."""
    if env := os.environ.get(ENV_JUDGE_CACHE):
        return Path(env).expanduser()
    return files.cache_dir("judge")


class JudgeCache:
    """Verdicts on disk (SQLite, one row per judgment), safe for several processes at once.

    Only valid verdicts are stored: a failed or malformed judgment is asked again by the next run.
    ``put`` commits every ``commit_every`` verdicts (default ``COMMIT_EVERY``); ``flush`` commits
    what is pending (``Judge`` calls it every ``COMMIT_SECONDS`` and when a batch ends or fails), so
    a process killed outright loses at most that window. A commit per verdict cost 35 us per
    judgment, more than building its prompt, its key and parsing its verdict together; in groups of
    64, 11 us (``scripts/bench_judge.py --breakdown``).
    """

    def __init__(self, folder: str | os.PathLike[str] | None = None, commit_every: int | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_cache_dir()
        self.path = self.folder / CACHE_FILENAME
        self.commit_every = commit_every or COMMIT_EVERY
        self._pending: list[tuple[Any, ...]] = []
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS judgments (key TEXT PRIMARY KEY, model TEXT, kind TEXT, "
                "version TEXT, verdict INTEGER, raw TEXT, prompt_tokens INTEGER, "
                "completion_tokens INTEGER, created REAL)"
            )
            self._db.commit()
        except (OSError, sqlite3.Error) as err:
            raise JudgeConfigError(
                f"judge cache {self.path}: cannot open it ({err}); "
                f"set ${ENV_JUDGE_CACHE} to a writable folder"
            ) from err

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[int, str]]:
        """Stored ``(verdict, raw reply)`` by key, for the keys that have one."""
        found: dict[str, tuple[int, str]] = {}
        for start in range(0, len(keys), 500):  # SQLite caps the number of bound parameters
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for key, verdict, raw in self._db.execute(
                f"SELECT key, verdict, raw FROM judgments WHERE key IN ({marks})", chunk
            ):
                found[key] = (int(verdict), raw)
        return found

    def put(self, key: str, model: str, request: JudgeRequest, judgment: Judgment) -> None:
        """Store one verdict; committed with the next ``commit_every`` or ``flush``."""
        self._pending.append(
            (
                key,
                model,
                request.kind,
                request.version,
                judgment.verdict,
                judgment.raw,
                judgment.prompt_tokens,
                judgment.completion_tokens,
                time.time(),
            )
        )
        if len(self._pending) >= self.commit_every:
            self.flush()

    def flush(self) -> None:
        """Commit the pending verdicts."""
        if not self._pending:
            return
        self._db.executemany(
            "INSERT OR REPLACE INTO judgments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", self._pending
        )
        self._db.commit()
        self._pending.clear()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM judgments").fetchone()[0])

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._db.close()


# ----------------------------------------------------------------------------------------- judge
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
        keys = [r.cache_key(model) for r in requests]
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
    """Commit pending verdicts every ``COMMIT_SECONDS`` while a batch runs (the kill window's bound)."""
    while True:
        await asyncio.sleep(COMMIT_SECONDS)
        cache.flush()


def _count(value: Any) -> int:
    """A token count from a reply's ``usage`` (servers may omit it, or send null)."""
    return value if isinstance(value, int) else 0


def _describe(err: openai.OpenAIError) -> str:
    """A short, stable description of a failed request (used to count errors by kind)."""
    if isinstance(err.__cause__, InvalidReply):
        return err.__cause__.problem
    if isinstance(err, openai.APIStatusError):
        return f"HTTP {err.status_code} ({type(err).__name__})"
    if isinstance(err, openai.APITimeoutError):
        return "timed out"
    if isinstance(err, openai.APIConnectionError):
        return f"connection error ({err.__cause__ or err})"
    return f"{type(err).__name__}: {err}"
