"""One CLI style: every entry point's --help shows snake_case flags only (as lm-eval and TRL), and the
old kebab-case spellings still work for one version, with a deprecation warning."""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from leaderboard import __main__ as leaderboard_cli
from lm_eval_tasks.sycophancy.cli_flags import ArgumentParser
from saa_data import cli as saa_cli

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "saa"
_FLAG = re.compile(r"(?<![\w-])--[A-Za-z0-9][\w-]*")


def _script(path: str) -> ModuleType:
    if path.startswith("leaderboard/"):
        return importlib.import_module(path.removesuffix(".py").replace("/", "."))
    name = f"_cli_{Path(path).stem}"
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


#: (CLI, how to reach its ``--help``): every entry point of saa_data, the leaderboard and scripts/.
HELP: list[tuple[str, list[str]]] = [
    ("saa_data", ["--help"]),
    ("saa_data", ["build", "--help"]),
    ("leaderboard", ["--help"]),
    ("leaderboard", ["build", "--help"]),
    ("leaderboard", ["publish", "--help"]),
    ("leaderboard/bench.py", ["--help"]),
    *[
        (f"scripts/{name}.py", ["--help"])
        for name in (
            "reproduce",
            "demo",
            "toy_world",
            "bench",
            "bench_answer",
            "bench_ays",
            "bench_judge",
            "bench_saa",
            "bench_training",
        )
    ],
]


def _main(cli: str) -> Callable[[list[str]], object]:
    if cli == "saa_data":
        return saa_cli.main
    if cli == "leaderboard":
        return leaderboard_cli.main
    module = _script(cli)

    def call(argv: list[str]) -> object:  # some scripts read sys.argv themselves
        sys.argv = [cli, *argv]
        try:
            return module.main()
        except TypeError:
            return module.main(argv)

    return call


@pytest.mark.parametrize(("cli", "argv"), HELP, ids=[f"{c} {' '.join(a)}" for c, a in HELP])
def test_help_shows_only_snake_case_flags(
    cli: str, argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    with pytest.raises(SystemExit) as stop:
        _main(cli)(argv)
    assert stop.value.code == 0
    flags = set(_FLAG.findall(capsys.readouterr().out)) - {"--help"}
    assert flags or cli in ("saa_data", "leaderboard"), f"{cli} {argv}: no flags found in --help"
    assert not [f for f in flags if "-" in f[2:]], f"{cli} {argv}: kebab-case flags in --help"


def test_old_spellings_still_work_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "saa"
    argv = ["build", "--out", str(out), "--bct", str(FIXTURES / "bct_sample.jsonl")]
    argv += ["--sources", str(FIXTURES / "sources"), "--eval-data-dir", "embedded"]
    assert saa_cli.main([*argv, "--n-correct", "4", "--n-incorrect=3", "--polarity-aware"]) == 0
    captured = capsys.readouterr()
    assert "saa_data build: warning: --n-correct is deprecated; use --n_correct" in captured.err
    assert "--n-incorrect is deprecated" in captured.err and "--polarity-aware is deprecated" in captured.err
    assert "Wrote 7 pairs" in captured.out
    card = (out / "README.md").read_text(encoding="utf-8")  # the card records the new spelling
    assert "--n_correct 4 --n_incorrect 3 --eval_data_dir embedded --polarity_aware" in card

    args = leaderboard_cli.make_parser().parse_args(["publish", "site", "--hf-repo", "o/n", "--dry-run"])
    assert (args.hf_repo, args.dry_run) == ("o/n", True)
    assert "--hf-repo is deprecated; use --hf_repo" in capsys.readouterr().err


def test_the_alias_rewrite_leaves_values_and_unknown_flags_alone(capsys: pytest.CaptureFixture[str]) -> None:
    parser = ArgumentParser(prog="x")
    parser.add_argument("--dry_run", action="store_true")
    parser.add_argument("--title")
    parser.add_argument("rest", nargs="*")
    args = parser.parse_args(["--title", "a-b", "--", "--dry-run"])
    assert (args.title, args.dry_run, args.rest) == ("a-b", False, ["--dry-run"])  # after --: positional
    with pytest.raises(SystemExit):
        parser.parse_args(["--no-such-flag"])
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err
