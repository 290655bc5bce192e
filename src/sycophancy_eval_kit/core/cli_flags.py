"""One command-line style for every entry point: snake_case flags, as lm-eval and TRL spell them;
the checks of option values that several entry points share; and one way to report an input or
environment error: its message on one line, no Python stack unless ``--debug`` asks for it.

``saa_data``, the leaderboard and some scripts used to take kebab-case flags (``--n-correct``). For one
version those spellings keep working: this parser rewrites an old spelling to its snake_case flag before
parsing and warns on stderr. The old names are never registered, so ``--help`` shows one spelling and
the two cannot drift apart; subcommand parsers inherit the class, so each rewrites its own flags.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

#: what the warning promises; the aliases go when this is no longer true
REMOVAL = "the kebab-case spellings will be removed in the next version"


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that accepts ``--old-name`` for each ``--old_name`` it defines."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(self._respell(args), namespace)

    def _respell(self, args: list[str]) -> list[str]:
        known = {s for action in self._actions for s in action.option_strings}
        out: list[str] = []
        for i, arg in enumerate(args):
            if arg == "--":  # everything after it is positional, by argparse's own rule
                return out + args[i:]
            flag, sep, value = arg.partition("=")
            if flag.startswith("--") and "-" in flag[2:] and flag not in known:
                snake = "--" + flag[2:].replace("-", "_")
                if snake in known:
                    warning = f"{self.prog}: warning: {flag} is deprecated; use {snake} ({REMOVAL})"
                    print(warning, file=sys.stderr)
                    arg = snake + sep + value
            out.append(arg)
        return out


def hub_repo_problem(repo_id: str) -> str | None:
    """What is wrong with a Hugging Face repo id given on the command line (None: nothing).

    Checked before any work, so a typo does not surface only after a long build as a traceback.
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        return str(err)
    return None if "/" in repo_id else "expected ORG/NAME"


class CommandError(Exception):
    """An input or environment problem a command reports in one line (a flag, a file, a URL, a folder)
    and exits with ``exit_code``: 2 for what a user can correct before running, 1 for work that failed."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


#: set to 1 to see the Python stack of every error, as ``--debug`` does
ENV_DEBUG = "SYCOPHANCY_DEBUG"


def run_main(main: Callable[[list[str]], Any], prog: str, argv: Sequence[str] | None = None) -> int:
    """Run a command's ``main`` and turn the errors a user can act on into ``prog: error: message``
    (exit 2, or the ``CommandError``'s code) instead of a stack; ``--debug`` or ``$SYCOPHANCY_DEBUG=1``
    lets the stack through. Anything else is a bug and keeps its stack."""
    from sycophancy_eval_kit.core.files import DataError, RefusedFolder
    from sycophancy_eval_kit.core.judge.settings import JudgeConfigError

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get(ENV_DEBUG, "").strip() not in ("", "0")
    try:
        code = main(args)
    except (CommandError, DataError, JudgeConfigError, RefusedFolder) as err:
        if debug:
            raise
        print(f"{prog}: error: {err}", file=sys.stderr)
        return getattr(err, "exit_code", 2)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted; what was finished is kept (rerun the command to go on)", file=sys.stderr)
        return 130
    return code if isinstance(code, int) else 0
