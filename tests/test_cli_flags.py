"""One CLI style: every entry point's --help shows snake_case flags only (as lm-eval and TRL), and the
old kebab-case spellings still work for one version, with a deprecation warning."""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sycophancy_eval_kit.core.cli_flags import ArgumentParser
from sycophancy_eval_kit.leaderboard import __main__ as leaderboard_cli
from sycophancy_eval_kit.saa_data import cli as saa_cli

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "saa"
_FLAG = re.compile(r"(?<![\w-])--[A-Za-z0-9][\w-]*")


#: (CLI, how to reach its ``--help``): every entry point of ours that parses flags: the console
#: scripts' modules, the scripts, the examples and the benchmarks (imported by module name from a clone).
HELP: list[tuple[str, list[str]]] = [
    ("saa_data", ["--help"]),
    ("saa_data", ["build", "--help"]),
    ("leaderboard", ["--help"]),
    ("leaderboard", ["build", "--help"]),
    ("leaderboard", ["publish", "--help"]),
    ("leaderboard", ["query", "--help"]),
    ("leaderboard", ["export", "--help"]),
    ("sycophancy_eval_kit.domain.cli", ["build", "--help"]),
    *[
        (name, ["--help"])
        for name in (
            "sycophancy_eval_kit.reproduce",
            "scripts.reproduce",
            "scripts.demo",
            "examples.toy_world.toy_world",
            "examples.toy_world.toy_seeds",
            "examples.toy_world.toy_pressure",
            "benchmarks.run_all",
            "benchmarks.answer",
            "benchmarks.ays",
            "benchmarks.judge",
            "benchmarks.saa",
            "benchmarks.training",
            "benchmarks.leaderboard",
            "benchmarks.pressure",
            "benchmarks.gpu.run",
        )
    ],
]


def _main(cli: str) -> Callable[[list[str]], object]:
    if cli == "saa_data":
        return saa_cli.main
    if cli == "leaderboard":
        return leaderboard_cli.main
    module = importlib.import_module(cli)

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
