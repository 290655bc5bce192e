"""One command-line style for every entry point: snake_case flags, as lm-eval and TRL spell them;
and the checks of option values that several entry points share.

``saa_data``, the leaderboard and some scripts used to take kebab-case flags (``--n-correct``). For one
version those spellings keep working: this parser rewrites an old spelling to its snake_case flag before
parsing and warns on stderr. The old names are never registered, so ``--help`` shows one spelling and
the two cannot drift apart; subcommand parsers inherit the class, so each rewrites its own flags.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

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
