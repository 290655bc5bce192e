"""A real OpenAI-compatible server (``transformers serve`` with SmolLM2-135M-Instruct) for the chat backend
and the judge.

First the server fixture itself, with stand-in processes (no model): a server that never answers or
dies fails with its log, a busy port is replaced. Then, against the real server: the adaptive
dialogue over ``local-chat-completions`` (a chat endpoint does not continue a prefill, so letters are
read from fresh replies), the judged tasks with a 135M judge that mostly replies in prose, and the
judge's cache across a server stopped in the middle of a run.
"""

from __future__ import annotations

import json
import math
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import lm_eval
import pytest
from conftest import TASKS_DIR
from lm_eval.tasks import TaskManager
from real_server import ServerStartError, TransformersServer

from sycophancy_eval_kit.core import judge, prompts

real = pytest.mark.real_model
pytestmark = [pytest.mark.real_model, pytest.mark.real_server]


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread) -> None:
    """See ``conftest.real_model_env``: on a shared machine one thread is several times faster."""


# Serves GET /v1/models listing the model named on its command line, on the port named there.
FAKE_SERVER = """
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"data": [{"id": sys.argv[2]}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def _fake(port: int) -> list[str]:
    return [sys.executable, "-c", FAKE_SERVER, str(port), "fake-model"]


def _gone(pid: int, wait: float = 10.0) -> bool:
    """The process no longer runs (absent, or a zombie waiting for init)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return True
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


# -------------------------------------------------------------------------- the fixture, no model
def test_a_server_that_never_answers_is_killed_with_its_log(tmp_path: Path) -> None:
    script = (
        "import subprocess, time; child = subprocess.Popen(['sleep', '600']); "
        "print('still loading the model, helper', child.pid, flush=True); time.sleep(600)"
    )
    server = TransformersServer(
        "m", tmp_path / "log", startup_timeout=3, command=lambda port: [sys.executable, "-c", script]
    )
    started = time.monotonic()
    with pytest.raises(ServerStartError, match="did not answer .* within 3s") as err:
        server.start()
    assert time.monotonic() - started < 30
    assert "still loading the model" in str(err.value)
    helper = int(str(err.value).split("helper ")[1].split()[0])
    assert _gone(helper)  # the whole process group was killed, not just the direct child
    assert not server.running


def test_a_server_that_exits_reports_its_code_and_log(tmp_path: Path) -> None:
    script = "import sys; print('no such model folder', flush=True); sys.exit(3)"
    server = TransformersServer("m", tmp_path / "log", command=lambda port: [sys.executable, "-c", script])
    with pytest.raises(ServerStartError, match="exited with code 3") as err:
        server.start()
    assert "no such model folder" in str(err.value)


def test_a_busy_port_is_replaced(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        with TransformersServer("fake-model", tmp_path / "log", port=taken, command=_fake) as server:
            assert server.port != taken and server.running


def test_a_port_taken_while_starting_is_retried_elsewhere(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        ports: list[int] = []

        def racing(port: int) -> list[str]:  # the first launch loses its port to someone else
            ports.append(port)
            return _fake(taken if len(ports) == 1 else port)

        with TransformersServer("fake-model", tmp_path / "log", command=racing) as server:
            assert len(ports) == 2 and server.port == ports[1]
        assert "address already in use" in server.log_tail().lower()


def test_a_restart_keeps_the_port(tmp_path: Path) -> None:
    server = TransformersServer("fake-model", tmp_path / "log", command=_fake)
    with server:
        first = server.port
        server.stop()
        assert not server.running
        server.start()
        assert server.port == first and server.running


# --------------------------------------------------------------------------- the real server
@real
def test_real_server_answers_a_question(real_server: TransformersServer, real_model: Path) -> None:
    import openai

    client = openai.OpenAI(base_url=real_server.base_url, api_key="EMPTY", max_retries=0, timeout=120)
    assert [m.id for m in client.models.list().data] == [str(real_model)]
    reply = client.chat.completions.create(
        model=str(real_model),
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=16,
        temperature=0,
    )
    assert "Paris" in reply.choices[0].message.content


def _contexts(sample: dict[str, Any]) -> list[Any]:
    """A sample's request contexts, as ``simple_evaluate`` returns them or as lm-eval's tracker saves them."""
    args = sample["arguments"]
    if isinstance(args, dict):  # {"gen_args_0": {"arg_0": context, "arg_1": gen_kwargs}, ...}
        return [a["arg_0"] for a in args.values()]
    return [a[0] for a in args]


def _messages(context: Any) -> list[dict[str, str]]:
    """The chat messages a ``local-chat-completions`` context holds (lm-eval keeps them as JSON)."""
    return json.loads(getattr(context, "prompt", context))


@real
def test_dialogue_over_the_chat_endpoint(
    real_server: TransformersServer, real_model: Path, tmp_path: Path
) -> None:
    from sycophancy_eval_kit.dialogue import main as dialogue_main

    before = real_server.chat_requests()
    argv = ["--model", "local-chat-completions", "--apply_chat_template", "--limit", "2"]
    argv += ["--model_args", f"model={real_model},base_url={real_server.chat_url},max_retries=1"]
    argv += ["--tasks", "sycophancy_ays_truthful_qa_mc,sycophancy_ays_aqua_mc"]
    argv += ["--metadata", "data_dir=embedded"]
    argv += ["--gen_kwargs", "max_gen_toks=24", "--output_path", str(tmp_path)]
    results = dialogue_main(argv)
    assert real_server.chat_requests() - before == 4 * 3  # every turn of every question reached the model
    for subset in ("truthful_qa_mc", "aqua_mc"):
        task = f"sycophancy_ays_dialogue_{subset}"
        samples = results["samples"][task]
        assert len(samples) == 2
        unread = [s["first_answer"] is None or s["final_answer"] is None for s in samples]
        assert results["results"][task]["unparsed_rate,none"] == pytest.approx(sum(unread) / len(unread))
        for sample in samples:
            sent = [_messages(context) for context in _contexts(sample)]
            # a chat endpoint cannot continue a prefill (transformers serve closes it as a turn and the
            # model echoed it back): every request ends with the user's turn, the letter request included
            assert all(messages[-1]["role"] == "user" for messages in sent)
            assert sent[2][-1] == {"role": "user", "content": prompts.AYS_FINAL_ANSWER_REQUEST}
            assert not sample["prefill_sent"] and not sample["prefill_continued"]
            # the model said its reply alone, and the transcript records that
            assert sample["transcript"][1]["content"] == sample["resps"][0][0]
            assert sample["transcript"][5]["content"] == sample["resps"][2][0]


@real
def test_escalating_pressure_over_the_chat_endpoint(
    real_server: TransformersServer, real_model: Path, tmp_path: Path
) -> None:
    """Five rounds of challenge against a real endpoint: every round's turns reach it, each as messages
    ending with the user's turn, and every round yields an answer that is read or counted unreadable."""
    from sycophancy_eval_kit.dialogue import main as dialogue_main

    before = real_server.chat_requests()
    argv = ["--model", "local-chat-completions", "--apply_chat_template", "--limit", "1"]
    argv += ["--model_args", f"model={real_model},base_url={real_server.chat_url},max_retries=1"]
    argv += ["--tasks", "sycophancy_ays_aqua_mc", "--metadata", "data_dir=embedded"]
    argv += ["--pressure", "escalating"]
    argv += ["--gen_kwargs", "max_gen_toks=16", "--output_path", str(tmp_path)]
    results = dialogue_main(argv)
    rounds = len(prompts.PRESSURE_ESCALATING)
    assert real_server.chat_requests() - before == 1 + 2 * rounds
    (sample,) = results["samples"]["sycophancy_ays_pressure_escalating_aqua_mc"]
    assert len(sample["round_answers"]) == rounds + 1
    row = results["results"]["sycophancy_ays_pressure_escalating_aqua_mc"]
    unread = [a is None for a in sample["round_answers"][1:]]
    assert [row[f"unparsed_round_{k},none"] for k in range(1, rounds + 1)] == [float(u) for u in unread]
    for context in _contexts(sample):
        assert _messages(context)[-1]["role"] == "user"


# ---------------------------------------------------------------------------------- the judge
ANSWER = "sycophancy_answer_judged_trivia_qa"
AYS = "sycophancy_ays_judged_trivia_qa"
MALFORMED_RETRIES = judge.JudgeSettings().malformed_retries  # the default, which the runs keep
# what a run spends, not what it measures: a cached judgment costs nothing
SPEND = ("judge_prompt_tokens", "judge_completion_tokens")


@pytest.fixture
def judged_env(real_server: TransformersServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The judge pointed at the real server (no API key: a local server), a cache in tmp."""
    monkeypatch.setenv(judge.ENV_BASE_URL, real_server.base_url)
    monkeypatch.delenv(judge.ENV_API_KEY, raising=False)
    monkeypatch.delenv(judge.ENV_JUDGE_MODEL, raising=False)
    monkeypatch.setenv(judge.ENV_JUDGE_CACHE, str(tmp_path / "judge-cache"))
    return real_server


def _judged_run(
    lm, real_model: Path, tasks: list[str], limit: int, lm_cache: Path | None = None, **judge_settings: Any
) -> dict[str, Any]:
    """The judged tasks through ``simple_evaluate``; the model under test is the real one (hf), greedy.

    One request at a time and no transport retries: the order is fixed and a stopped server fails fast.
    ``lm_cache``: lm-eval's own cache of the model's generations (``use_cache``), so that runs sharing
    it judge the very same responses. ``judge_settings``: more ``judge_*`` metadata.
    """
    metadata = {
        "data_dir": "embedded",
        "judge_model": str(real_model),
        "judge_concurrency": 1,
        "judge_max_retries": 0,
        **{f"judge_{k}": v for k, v in judge_settings.items()},
    }
    return lm_eval.simple_evaluate(
        model=lm,
        tasks=tasks,
        task_manager=TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata=metadata),
        limit=limit,
        apply_chat_template=True,
        gen_kwargs="max_gen_toks=24",
        log_samples=True,
        bootstrap_iters=0,
        use_cache=None if lm_cache is None else str(lm_cache),
    )


def _judgments(sample: dict[str, Any]) -> list[dict[str, Any]]:
    kinds = (judge.CORRECTNESS, judge.ADMITS_MISTAKE)
    return [t[k] for t in sample["filtered_resps"] for k in kinds if k in t]


def _condition(context: str, doc: dict[str, Any]) -> str:
    """Which Answer Suggestion prompt a context renders (the suggestion prompts contain the baseline's)."""
    found = [k.removeprefix("prompt_") for k in doc if k.startswith("prompt_") and doc[k] in context]
    return max(found, key=lambda c: len(doc[f"prompt_{c}"]))


def _defined(sample: dict[str, Any], metric: str) -> bool:
    """The question has a value of ``metric`` (an undefined one is NaN, or absent)."""
    value = sample.get(metric)
    return value is not None and not math.isnan(value)


def _check_nothing_scored_by_accident(task: str, sample: dict[str, Any]) -> None:
    """An unjudged response is counted in ``unjudged`` and leaves undefined every metric that needs it;
    the metrics it does not need keep their values."""
    judgments = _judgments(sample)
    assert sample["unjudged"] == sum(j["verdict"] is None for j in judgments)
    for j in judgments:
        assert (j["verdict"] is None) == (j["error"] is not None), j
        if j["error"] and j["error"].startswith("malformed"):
            assert j["requests"] == 1 + MALFORMED_RETRIES, j  # asked again, then left unjudged
    turns = sample["filtered_resps"]

    def verdict(turn: dict[str, Any], kind: str = judge.CORRECTNESS) -> int | None:
        return (turn.get(kind) or {}).get("verdict")

    if task == ANSWER:
        grade = {  # an empty response is incorrect without a judge
            _condition(ctx, sample["doc"]): verdict(t) if t["response"].strip() else 0
            for ctx, t in zip(_contexts(sample), turns, strict=True)
        }
        for condition, value in grade.items():
            assert _defined(sample, f"acc_{condition}") == (value is not None), (condition, value)
            if condition != "baseline":
                both = value is not None and grade["baseline"] is not None
                assert _defined(sample, f"delta_{condition}") == both, condition
        assert _defined(sample, "answer_sycophancy") == all(v is not None for v in grade.values())
        return
    first_turn, reply = turns
    first = verdict(first_turn) if first_turn["response"].strip() else 0
    stands = verdict(reply) if reply["response"].strip() else 1
    admits = verdict(reply, judge.ADMITS_MISTAKE) if reply["response"].strip() else 0
    assert _defined(sample, "acc_first") == (first is not None)
    assert _defined(sample, "flip_rate_after_reference") == (first == 1 and stands is not None)
    assert _defined(sample, "admits_mistake_rate") == (first == 1 and admits is not None)
    assert _defined(sample, "unparsed_rate")  # needs no judge


@real
def test_judged_tasks_with_a_small_real_judge(judged_env, real_hflm, real_model: Path) -> None:
    before = judged_env.chat_requests()
    out = _judged_run(real_hflm, real_model, [ANSWER, AYS], limit=1)
    samples = {task: out["samples"][task] for task in (ANSWER, AYS)}
    judgments = [j for task in samples.values() for s in task for j in _judgments(s)]
    assert len(judgments) == 4 + 3  # four suggestion prompts; two turns and the admission
    assert judged_env.chat_requests() - before == sum(j["requests"] for j in judgments)
    for task, task_samples in samples.items():
        for sample in task_samples:
            _check_nothing_scored_by_accident(task, sample)
        unjudged = sum(j["verdict"] is None for s in task_samples for j in _judgments(s))
        assert out["results"][task]["unjudged,judge"] == unjudged
    # a 135M judge answers in prose more often than with the one word it is asked for
    assert any(j["error"] and j["error"].startswith("malformed") for j in judgments), judgments


def _stored(folder: Path) -> int:
    """Verdicts in the judge's cache folder (0 before it exists)."""
    if not folder.is_dir():
        return 0
    cache = judge.JudgeCache(folder)
    try:
        return len(cache)
    finally:
        cache.close()


def _positions(run: dict[str, Any], pick) -> list[tuple[int, int, str]]:
    """(question, turn, kind) of every judgment of the Are-You-Sure run that ``pick`` selects."""
    return [
        (s["doc_id"], turn, kind)
        for s in run["samples"][AYS]
        for turn, t in enumerate(s["filtered_resps"])
        for kind in (judge.CORRECTNESS, judge.ADMITS_MISTAKE)
        if kind in t and pick(t[kind])
    ]


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b)


#: two questions (the first one's admission is a verdict, the second one's judgments are interrupted);
#: verdicts are a word, so 8 tokens are plenty and the three runs stay short
RESTART_RUN: dict[str, Any] = {"limit": 2, "max_tokens": 8}


@real
def test_a_server_stopped_mid_run_then_restarted_repeats_no_cached_judgment(
    judged_env, real_hflm, real_model: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The three runs judge the same responses (lm-eval's generation cache): only the judge differs."""
    server = judged_env
    same = {**RESTART_RUN, "lm_cache": tmp_path / "generations"}
    # 1. the uninterrupted reference, on a cache of its own
    monkeypatch.setenv(judge.ENV_JUDGE_CACHE, str(tmp_path / "reference-cache"))
    before = server.chat_requests()
    reference = _judged_run(real_hflm, real_model, [AYS], **same)
    reference_requests = server.chat_requests() - before
    verdicts = _positions(reference, lambda j: j["verdict"] is not None)
    assert verdicts, "the real judge gave no valid verdict at all: nothing for the cache to keep"

    # 2. the same run on a fresh cache; the server is stopped as soon as one verdict is stored
    cache = tmp_path / "cache"
    monkeypatch.setenv(judge.ENV_JUDGE_CACHE, str(cache))
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["run"] = _judged_run(real_hflm, real_model, [AYS], **same)
        except BaseException as err:  # reported by the main thread
            outcome["error"] = err

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        while worker.is_alive() and _stored(cache) == 0:
            time.sleep(0.1)
        server.stop()
        worker.join(timeout=600)
    finally:
        server.start()  # whatever happens, later tests find it running
    assert not worker.is_alive() and "error" not in outcome, outcome.get("error")
    interrupted = outcome["run"]
    kept = _positions(interrupted, lambda j: j["verdict"] is not None)
    # the stopped server's failures: refused or cut connections (how the client words them varies)
    failed = _positions(
        interrupted, lambda j: j["verdict"] is None and not j["error"].startswith("malformed")
    )
    assert kept and set(kept) <= set(verdicts)
    seen = [
        (s["doc_id"], j["verdict"], j["error"]) for s in interrupted["samples"][AYS] for j in _judgments(s)
    ]
    assert failed, f"the server was stopped after the last judgment; nothing was interrupted: {seen}"
    for sample in interrupted["samples"][AYS]:
        _check_nothing_scored_by_accident(AYS, sample)

    # 3. started again (above), rerun on the same cache: what was stored is not asked again
    before = server.chat_requests()
    rerun = _judged_run(real_hflm, real_model, [AYS], **same)
    rerun_requests = server.chat_requests() - before
    assert _positions(rerun, lambda j: j["cached"]) == kept
    assert all(j["requests"] == 0 for s in rerun["samples"][AYS] for j in _judgments(s) if j["cached"])
    saved = sum(
        j["requests"]
        for s in reference["samples"][AYS]
        for turn, t in enumerate(s["filtered_resps"])
        for kind, j in t.items()
        if kind != "response" and (s["doc_id"], turn, kind) in kept
    )
    assert rerun_requests == reference_requests - saved
    # ... and the results are those of the uninterrupted run
    responses = [[t["response"] for t in s["filtered_resps"]] for s in reference["samples"][AYS]]
    assert [[t["response"] for t in s["filtered_resps"]] for s in rerun["samples"][AYS]] == responses
    expected, got = reference["results"][AYS], rerun["results"][AYS]
    for key, value in expected.items():
        if isinstance(value, float) and not key.startswith(SPEND):
            assert _same(got[key], value), key
    assert [[j["verdict"] for j in _judgments(s)] for s in rerun["samples"][AYS]] == [
        [j["verdict"] for j in _judgments(s)] for s in reference["samples"][AYS]
    ]
