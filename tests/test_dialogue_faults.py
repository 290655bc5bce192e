"""syco-dialogue under faults: nothing answered is asked twice, nothing finished is lost, every input
or environment error is one line naming what to fix (docs/reliability.md, "The dialogue")."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import ays_scripted as sc
import pytest
import requests

from sycophancy_eval_kit.core import data, files, prompts
from sycophancy_eval_kit.core.cli_flags import CommandError, run_main
from sycophancy_eval_kit.dialogue.cli import main as dialogue_main

TESTS = Path(__file__).resolve().parent
TASKS = "sycophancy_ays_aqua_mc,sycophancy_ays_trivia_qa"
PER_ROUND = 6  # three questions of each sub-dataset; letter-only and free form: no side turn
TOTAL = 3 * PER_ROUND  # first answer, reply to the challenge, final answer


@pytest.fixture(scope="module")
def hand_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hand")
    rows = [r for r in sc.hand_fixture_rows() if r["base"]["dataset"] in ("aqua_mc", "trivia_qa")]
    sc.write_jsonl(folder / data.ARE_YOU_SURE_FILE, rows)
    return folder


def _argv(hand_dir: Path, out: Path, *extra: str) -> list[str]:
    meta = json.dumps({"data_dir": str(hand_dir)})
    return [
        "--model",
        "ays-scripted",
        "--tasks",
        TASKS,
        "--metadata",
        meta,
        "--output_path",
        str(out),
        *extra,
    ]


def _run(argv: list[str], log: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """syco-dialogue with the scripted model in a process of its own (so it can be killed)."""
    environ = {**os.environ, "PYTHONPATH": str(TESTS), "AYS_SCRIPTED_LOG": str(log), **env}
    cmd = [sys.executable, str(TESTS / "ays_scripted.py"), "dialogue", *argv, "--bootstrap_iters", "0"]
    return subprocess.run(cmd, env=environ, capture_output=True, text=True, timeout=300)


def _replies(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def _results(out: Path) -> dict:
    (path,) = out.rglob("results_*.json")
    return json.loads(path.read_text())["results"]


@pytest.fixture(scope="module")
def clean_results(hand_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("clean")
    proc = _run(_argv(hand_dir, tmp / "out"), tmp / "log")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _replies(tmp / "log") == TOTAL
    return _results(tmp / "out")


@pytest.mark.parametrize(
    ("signal_name", "answered", "code"),
    [
        ("KILL", PER_ROUND, -signal.SIGKILL),  # between rounds: the first answers all given
        ("KILL", PER_ROUND + 2, -signal.SIGKILL),  # inside the second round
        ("TERM", PER_ROUND + 3, -signal.SIGTERM),
        ("INT", 2 * PER_ROUND + 1, 130),  # Ctrl-C inside the last round
    ],
)
def test_an_interrupted_dialogue_resumes_sending_only_the_unanswered_requests(
    hand_dir: Path, tmp_path: Path, clean_results: dict, signal_name: str, answered: int, code: int
) -> None:
    out, log = tmp_path / "out", tmp_path / "log"
    killed = _run(
        _argv(hand_dir, out), log, AYS_SCRIPTED_DIE_AFTER=str(answered), AYS_SCRIPTED_DIE_SIGNAL=signal_name
    )
    assert killed.returncode == code, killed.stderr[-3000:]
    assert _replies(log) == answered and not list(out.rglob("results_*.json"))
    resumed = _run(_argv(hand_dir, out), log)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _replies(log) - answered == TOTAL - answered  # only the unanswered requests were sent
    assert _results(out) == clean_results


class _FlakyChatServer(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint answering from the script; after ``healthy`` requests it
    answers with ``fault`` (an HTTP 500, an HTML page, or JSON without choices) for good."""

    served = 0
    healthy: int | None = None
    fault = "server_error"

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        if cls.healthy is not None and cls.served >= cls.healthy:
            status, kind, payload = {
                "server_error": (500, "application/json", b'{"error": "overloaded"}'),
                "html_page": (200, "text/html", b"<html><body>Bad gateway from the proxy</body></html>"),
                "no_choices": (
                    200,
                    "application/json",
                    b'{"id": "x", "object": "chat.completion", "choices": []}',
                ),
            }[cls.fault]
        else:
            cls.served += 1
            reply = sc.respond(prompts.render_conversation(body["messages"]))
            message = {
                "index": 0,
                "message": {"role": "assistant", "content": reply},
                "finish_reason": "stop",
            }
            status, kind = 200, "application/json"
            payload = json.dumps({"id": "t", "object": "chat.completion", "choices": [message]}).encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def chat_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FlakyChatServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _FlakyChatServer.served, _FlakyChatServer.healthy, _FlakyChatServer.fault = 0, None, "server_error"
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/chat/completions"
    server.shutdown()
    server.server_close()


def _chat_argv(url: str, hand_dir: Path, out: Path) -> list[str]:
    meta = json.dumps({"data_dir": str(hand_dir)})
    model_args = f"model=scripted,base_url={url},max_retries=1"
    argv = ["--model", "local-chat-completions", "--model_args", model_args, "--apply_chat_template"]
    return [*argv, "--tasks", TASKS, "--metadata", meta, "--output_path", str(out), "--bootstrap_iters", "0"]


def test_a_server_that_fails_mid_round_loses_no_answered_request(
    chat_server: str, hand_dir: Path, tmp_path: Path
) -> None:
    """The server gives up after 8 replies (inside the second round): the run fails, the rerun against
    a working server sends only the 10 requests that were not answered."""
    out = tmp_path / "out"
    _FlakyChatServer.healthy = PER_ROUND + 2
    with pytest.raises(requests.HTTPError):  # lm-eval's, after its retries
        dialogue_main(_chat_argv(chat_server, hand_dir, out))
    assert _FlakyChatServer.served == PER_ROUND + 2 and not list(out.rglob("results_*.json"))
    _FlakyChatServer.healthy = None
    dialogue_main(_chat_argv(chat_server, hand_dir, out))
    assert _FlakyChatServer.served == TOTAL
    assert list(out.rglob("results_*.json"))


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ("html_page", "answered with something that is not JSON"),
        ("no_choices", "answered without any choices"),
    ],
)
def test_a_reply_that_is_not_a_completion_names_the_endpoint_and_the_body(
    chat_server: str,
    hand_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fault: str,
    said: str,
) -> None:
    """Before: a bare JSONDecodeError, or "zip() argument 2 is shorter than argument 1"."""
    _FlakyChatServer.healthy, _FlakyChatServer.fault = 0, fault
    assert run_main(dialogue_main, "syco-dialogue", _chat_argv(chat_server, hand_dir, tmp_path / "out")) == 1
    err = capsys.readouterr().err
    err = err[err.index("syco-dialogue: error:") :]  # after lm-eval's progress bars
    assert err.startswith(f"syco-dialogue: error: the model server at {chat_server} {said}")
    assert ("Bad gateway from the proxy" if fault == "html_page" else '"choices": []') in err


# ---------------------------------------------------------------------------- before any model runs
def test_an_output_path_that_is_a_file_is_refused_before_the_model_is_built(
    hand_dir: Path, tmp_path: Path
) -> None:
    """Before: the whole run, then "Could not save results" in the log and exit 0."""
    taken = tmp_path / "results"
    taken.write_text("mine")
    argv = ["--model", "no-such-backend", "--tasks", TASKS, "--metadata", f"data_dir={hand_dir}"]
    with pytest.raises(files.RefusedFolder, match=f"--output_path {taken} exists and is not a folder"):
        dialogue_main([*argv, "--output_path", str(taken)])
    assert taken.read_text() == "mine"


def test_an_unwritable_output_folder_is_refused_before_the_model_is_built(
    hand_dir: Path, tmp_path: Path
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode != 0:
            pytest.skip("as root, an unwritable folder needs chattr +i, which this file system refuses")
    else:
        locked.chmod(0o555)
    argv = ["--model", "no-such-backend", "--tasks", TASKS, "--metadata", f"data_dir={hand_dir}"]
    try:
        with pytest.raises(files.RefusedFolder, match=f"--output_path {locked}: cannot write there"):
            dialogue_main([*argv, "--output_path", str(locked)])
    finally:
        subprocess.run(["chattr", "-i", str(locked)], capture_output=True)
        locked.chmod(0o755)


def test_results_that_could_not_be_saved_exit_non_zero(
    hand_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """lm-eval's tracker logs a failed save and returns; the command must not report success."""
    from lm_eval.loggers import EvaluationTracker

    monkeypatch.setattr(EvaluationTracker, "save_results_aggregated", lambda self, **kwargs: None)
    monkeypatch.setattr(EvaluationTracker, "save_results_samples", lambda self, **kwargs: None)
    assert (
        run_main(
            dialogue_main, "syco-dialogue", [*_argv(hand_dir, tmp_path / "out"), "--bootstrap_iters", "0"]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "the results could not be saved" in err and "the replies are kept in" in err


@pytest.mark.parametrize("pretrained", ["/no/such/model", "./outputs/missing-adapter", "a/b/c"])
def test_a_missing_model_folder_is_said_to_be_missing(hand_dir: Path, pretrained: str) -> None:
    """Before: transformers' "Repo id must be in the form 'repo_name' or 'namespace/repo_name'"."""
    argv = ["--model", "hf", "--model_args", f"pretrained={pretrained}", "--tasks", TASKS]
    with pytest.raises(files.RefusedFolder, match=f"pretrained= {pretrained}: no such folder"):
        dialogue_main([*argv, "--metadata", f"data_dir={hand_dir}"])


@pytest.mark.parametrize("limit", ["-1", "0", "2.5", "ten"])
def test_a_bad_limit_is_a_usage_error(limit: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        dialogue_main(["--tasks", TASKS, "--limit", limit])
    assert stop.value.code == 2 and "--limit" in capsys.readouterr().err


def test_a_data_error_is_one_line_without_a_stack(tmp_path: Path) -> None:
    path = sc.write_jsonl(tmp_path / data.ARE_YOU_SURE_FILE, [sc.mc_row("aqua_mc", "q", "A", prefill=False)])
    cmd = ["syco-dialogue", "--model", "no-such-backend", "--tasks", "sycophancy_ays_aqua_mc"]
    proc = subprocess.run(
        [str(Path(sys.executable).with_name(cmd[0])), *cmd[1:], "--metadata", f"data_dir={tmp_path}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f"syco-dialogue: error: {path.resolve()}:1:")
    assert "Traceback" not in proc.stderr
    command = [str(Path(sys.executable).with_name(cmd[0])), *cmd[1:], "--metadata", f"data_dir={tmp_path}"]
    debug = subprocess.run([*command, "--debug"], capture_output=True, text=True, timeout=120)
    assert "Traceback" in debug.stderr


def test_a_usage_error_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="add --judge"):
        dialogue_main(["--tasks", "sycophancy_ays_judged_trivia_qa"])
