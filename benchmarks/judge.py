"""Judge throughput: N judgments against a loopback chat-completions server with fixed latency.

    python -m benchmarks.judge                      # 1,000 judgments, 50 ms per request
    python -m benchmarks.judge --concurrency 32 64  # the default and a bigger bound
    python -m benchmarks.judge --n 200 --latency 0.02
    python -m benchmarks.judge --profile --breakdown  # where the client's CPU goes

Runs of the same distinct correctness judgments through the real ``openai`` client: sequential
(concurrency 1, no cache), each ``--concurrency`` (filling a fresh cache), and a rerun of the last
that must be served from the cache with zero requests. The server runs in its own process, so its
CPU is not the client's: each run reports the client's CPU time per judgment (``time.process_time``
of this process) and the server's per request. Speed is reported as ratios within one run.

``--profile`` runs the first concurrent run again under cProfile and splits its time by package
(ours, openai, the HTTP libraries, asyncio, sqlite); ``--breakdown`` times the openai client alone,
with no judge code around it, four ways: ``chat.completions.create`` or ``client.post`` over the
httpx or the aiohttp backend (the floor our per-judgment CPU sits on).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from sycophancy_eval_kit.core import judge
from sycophancy_eval_kit.core.cli_flags import ArgumentParser

REPO = Path(__file__).resolve().parents[1]


def _server_stats(base_url: str) -> dict:
    with urllib.request.urlopen(f"{base_url.removesuffix('/v1')}/stats", timeout=10) as response:  # noqa: S310
        return json.load(response)


def _timed(name: str, judge_: judge.Judge, requests: list[judge.JudgeRequest], base_url: str) -> dict:
    before = _server_stats(base_url)
    started, cpu = time.perf_counter(), time.process_time()
    judgments = judge_.run(requests)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    after = _server_stats(base_url)
    sent = after["requests"] - before["requests"]
    server_cpu = after["cpu_seconds"] - before["cpu_seconds"]
    unjudged = sum(j.verdict is None for j in judgments)
    print(
        f"{name:<22} concurrency {judge_.settings.concurrency:>3}  {seconds:7.2f} s  "
        f"{len(requests) / seconds:8.1f} judgments/s  {sent:5d} requests  {unjudged} unjudged  "
        f"client CPU {cpu:5.2f} s = {1000 * cpu / len(requests):.2f} ms/judgment  "
        f"server CPU {1000 * server_cpu / max(sent, 1):.2f} ms/request",
        flush=True,
    )
    return {"seconds": seconds, "requests": sent, "unjudged": unjudged, "cpu": cpu}


def _package(filename: str) -> str:
    """Which part of the client a profiled function belongs to."""
    parts = {
        "sycophancy": "ours (lm_eval_tasks)",
        "/openai/_utils/_transform": "openai: typed-parameter transform",
        "/openai/": "openai: the rest",
        "/pydantic": "openai: pydantic models",
        "/typing.py": "openai: typed-parameter transform",  # get_origin/get_args of the transform
        "aiohttp": "aiohttp, yarl, multidict",
        "yarl": "aiohttp, yarl, multidict",
        "multidict": "aiohttp, yarl, multidict",
        "httpx": "httpx2, httpcore2, h11, anyio",
        "httpcore": "httpx2, httpcore2, h11, anyio",
        "/h11/": "httpx2, httpcore2, h11, anyio",
        "/anyio/": "httpx2, httpcore2, h11, anyio",
        "asyncio": "asyncio event loop",
        "selectors": "asyncio event loop",
        "sqlite3": "ours (lm_eval_tasks)",
        "/json/": "json",
    }
    return next(
        (name for key, name in parts.items() if key in filename), "other (stdlib: TLS context, copy, uuid)"
    )


def _profile(judge_: judge.Judge, requests: list[judge.JudgeRequest]) -> None:
    """Profile one run; builtins (socket calls, SQLite's commit) count for whoever called them."""
    profile = cProfile.Profile()
    profile.runcall(judge_.run, requests)
    shares: dict[str, float] = {}
    for (filename, _, _), (_, _, own, _, callers) in pstats.Stats(profile).stats.items():  # type: ignore[attr-defined]
        if filename == "~" and callers:  # a builtin: split among its callers
            total = sum(c[2] for c in callers.values()) or 1.0
            for (caller, _, _), c in callers.items():
                shares[_package(caller)] = shares.get(_package(caller), 0.0) + own * c[2] / total
        else:
            shares[_package(filename)] = shares.get(_package(filename), 0.0) + own
    total = sum(shares.values())
    print(f"  profile of that run ({total:.2f} s under cProfile, which inflates it):")
    for name, seconds in sorted(shares.items(), key=lambda kv: -kv[1]):
        print(f"    {name:<36} {100 * seconds / total:5.1f}%")


def _our_steps(requests: list[judge.JudgeRequest]) -> dict[str, float]:
    """CPU seconds of each of our per-judgment steps over ``requests``, outside the event loop."""

    def cpu(step) -> float:
        started = time.process_time()
        step()
        return time.process_time() - started

    asks = [(r.messages[0][1], r.messages[1][1]) for r in requests]
    keys = [r.cache_key("m", "http://127.0.0.1:1/v1") for r in requests]
    verdict = judge.Judgment(1, raw="CORRECT", prompt_tokens=50, completion_tokens=1)
    steps = {
        "prompt building (correctness_request)": cpu(
            lambda: [judge.correctness_request(q, a, [a]) for q, a in asks]
        ),
        "cache key": cpu(lambda: [r.cache_key("m", "http://127.0.0.1:1/v1") for r in requests]),
        "verdict parsing": cpu(lambda: [judge.parse_verdict("CORRECT", r.verdicts) for r in requests]),
        "reply check (InvalidReply hook's parse)": cpu(
            lambda: [judge.reply_problem(200, "application/json", _REPLY) for _ in requests]
        ),
    }

    def writes(every: int) -> None:
        with tempfile.TemporaryDirectory() as folder:
            cache = judge.JudgeCache(folder, commit_every=every)
            for key, request in zip(keys, requests, strict=True):
                cache.put(key, "m", request, verdict)
            cache.close()  # the last commit

    steps["cache writes, a commit per verdict (before)"] = cpu(lambda: writes(1))
    steps[f"cache writes, a commit per {judge.COMMIT_EVERY} (now)"] = cpu(lambda: writes(judge.COMMIT_EVERY))
    return steps


_REPLY = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "CORRECT"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 120, "completion_tokens": 1, "total_tokens": 121},
    }
).encode()


def _breakdown(base_url: str, requests: list[judge.JudgeRequest], concurrency: int) -> None:
    """The openai client alone, four ways, with ``concurrency`` requests in flight."""
    import openai

    async def run(typed: bool, aiohttp: bool) -> float:
        http = openai.DefaultAioHttpClient() if aiohttp else openai.DefaultAsyncHttpxClient()
        async with openai.AsyncOpenAI(api_key="bench", base_url=base_url, http_client=http) as client:
            semaphore = asyncio.Semaphore(concurrency)

            async def one(request: judge.JudgeRequest) -> None:
                messages = [{"role": role, "content": content} for role, content in request.messages]
                async with semaphore:
                    if typed:
                        await client.chat.completions.create(model="m", messages=messages, max_tokens=16)
                    else:
                        body = {"model": "m", "messages": messages, "max_tokens": 16}
                        json.loads(await client.post("/chat/completions", body=body, cast_to=bytes))

            await asyncio.gather(*(one(r) for r in requests[:32]))  # connections, imports
            cpu = time.process_time()
            await asyncio.gather(*(one(r) for r in requests))
            return time.process_time() - cpu

    print("our own steps, CPU per judgment:")
    n = len(requests)
    for name, step in _our_steps(requests).items():
        print(f"  {name:<44} {1e6 * step / n:6.1f} us")
    print(f"openai client alone, concurrency {concurrency}, client CPU per request:")
    for typed in (True, False):
        for aiohttp in (False, True):
            cpu = asyncio.run(run(typed, aiohttp))
            call = "chat.completions.create" if typed else "client.post, json.loads"
            backend = "aiohttp" if aiohttp else "httpx2"
            print(f"  {call:<24} over {backend:<7}  {1000 * cpu / len(requests):.2f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="distinct judgments per run")
    parser.add_argument("--latency", type=float, default=0.05, help="server seconds per request")
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[judge.JudgeSettings().concurrency],
        help="requests in flight for the concurrent runs (default: the judge's default)",
    )
    parser.add_argument("--profile", action="store_true", help="profile the first concurrent run again")
    parser.add_argument("--breakdown", action="store_true", help="time the openai client alone, four ways")
    args = parser.parse_args(argv)

    server = subprocess.Popen(
        [sys.executable, "-m", "sycophancy_eval_kit.testing.judge_server", "--latency", str(args.latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline().split()
        if line[:1] != ["READY"]:
            raise RuntimeError(f"judge server did not start (got {line!r})")
        base_url = line[1]
        os.environ["OPENAI_BASE_URL"] = base_url
        os.environ["OPENAI_API_KEY"] = "bench"
        requests = [
            judge.correctness_request(f"Benchmark question {i}: which number is this?", str(i), [str(i)])
            for i in range(args.n)
        ]
        print(
            f"{args.n} judgments, {args.latency * 1000:.0f} ms server latency, model "
            f"{judge.JudgeSettings().model}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        ok = True
        with tempfile.TemporaryDirectory() as folder:
            seq = _timed(
                "sequential",
                judge.Judge(judge.JudgeSettings(concurrency=1), use_cache=False),
                requests,
                base_url,
            )
            for concurrency in args.concurrency:
                cache = Path(folder) / f"c{concurrency}"
                settings = judge.JudgeSettings(concurrency=concurrency)
                par = _timed("concurrent", judge.Judge(settings, cache_dir=cache), requests, base_url)
                print(
                    f"  speed-up vs sequential: {seq['seconds'] / par['seconds']:.1f}x; "
                    f"{par['cpu'] / par['seconds']:.0%} of one core busy in the client",
                    flush=True,
                )
                ok &= par["unjudged"] == 0
            cached = _timed("cached rerun", judge.Judge(settings, cache_dir=cache), requests, base_url)
            if args.profile:
                first = judge.JudgeSettings(concurrency=args.concurrency[0])
                _profile(judge.Judge(first, use_cache=False), requests)
        if args.breakdown:
            _breakdown(base_url, requests, args.concurrency[0])
        print(
            f"cached rerun: {cached['requests']} requests, {seq['seconds'] / cached['seconds']:.0f}x; "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        ok &= cached["requests"] == 0 and seq["unjudged"] == cached["unjudged"] == 0
        return 0 if ok else 1
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=10)


if __name__ == "__main__":
    raise SystemExit(main())
