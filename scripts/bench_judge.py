"""Judge throughput: N judgments against a loopback chat-completions server with fixed latency.

    python scripts/bench_judge.py                 # 1,000 judgments, 50 ms per request
    python scripts/bench_judge.py --n 200 --latency 0.02

Three runs of the same distinct correctness judgments through the real ``openai`` client:
sequential (concurrency 1, no cache), the default concurrency (filling a fresh cache), and a rerun
that must be served from the cache with zero requests. The server runs in its own process so its
threads do not compete with the client for the GIL. Speed is reported as ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lm_eval_tasks.sycophancy import judge  # noqa: E402
from lm_eval_tasks.sycophancy.cli_flags import ArgumentParser  # noqa: E402


def _server_requests(base_url: str) -> int:
    with urllib.request.urlopen(f"{base_url.removesuffix('/v1')}/stats", timeout=10) as response:  # noqa: S310
        return int(json.load(response)["requests"])


def _timed(name: str, judge_: judge.Judge, requests: list[judge.JudgeRequest], base_url: str) -> dict:
    before = _server_requests(base_url)
    started, cpu = time.perf_counter(), time.process_time()
    judgments = judge_.run(requests)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    sent = _server_requests(base_url) - before
    unjudged = sum(j.verdict is None for j in judgments)
    print(
        f"{name:<28} concurrency {judge_.settings.concurrency:>3}  {seconds:7.2f} s  "
        f"{len(requests) / seconds:8.1f} judgments/s  {sent:5d} requests  {unjudged} unjudged  "
        f"client CPU {cpu:5.2f} s"
    )
    return {"seconds": seconds, "requests": sent, "unjudged": unjudged, "cpu": cpu}


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="distinct judgments per run")
    parser.add_argument("--latency", type=float, default=0.05, help="server seconds per request")
    args = parser.parse_args(argv)

    server = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "judge_server.py"), "--latency", str(args.latency)],
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
        default = judge.JudgeSettings()
        print(f"{args.n} judgments, {args.latency * 1000:.0f} ms server latency, model {default.model}")
        with tempfile.TemporaryDirectory() as cache:
            seq = _timed(
                "sequential",
                judge.Judge(judge.JudgeSettings(concurrency=1), use_cache=False),
                requests,
                base_url,
            )
            par = _timed("default concurrency", judge.Judge(default, cache_dir=cache), requests, base_url)
            cached = _timed("cached rerun", judge.Judge(default, cache_dir=cache), requests, base_url)
        print(
            f"speed-up, default concurrency vs sequential: {seq['seconds'] / par['seconds']:.1f}x; "
            f"cached rerun: {cached['requests']} requests, {seq['seconds'] / cached['seconds']:.0f}x"
        )
        # With 50 ms of latency the concurrent run is bound by the client's CPU (the openai client
        # builds and parses every request): on a busy machine it cannot reach the latency bound.
        print(
            f"concurrent run: {par['cpu'] / par['seconds']:.0%} of one core busy in the client; "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        ok = cached["requests"] == 0 and seq["unjudged"] == par["unjudged"] == cached["unjudged"] == 0
        return 0 if ok else 1
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=10)


if __name__ == "__main__":
    raise SystemExit(main())
