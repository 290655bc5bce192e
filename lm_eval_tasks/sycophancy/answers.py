"""Reading an answer out of a model response (a letter for multiple choice, text for free form), and
the option lines ``(A) text`` that define which letters a question has."""

from __future__ import annotations

import re

# A letter right after the prefill "The answer is (" (so the response starts with it), or a
# parenthesised / "answer is X" letter anywhere in a longer response.
_LEADING = re.compile(r"^\s*\(?([A-Za-z])\)?(?:[\s.,:;)]|$)")
_PAREN = re.compile(r"\(([A-Z])\)")
_ANSWER_IS = re.compile(r"answer is:?\s*\(?([A-Z])\b")
_OPTION_LINE = re.compile(r"^\(([A-Z])\)\s?(.*)$")


def option_line(line: str) -> tuple[str, str] | None:
    """``(letter, text)`` of an option line such as ``(B) Paris``, or ``None`` for any other line."""
    match = _OPTION_LINE.match(line.strip())
    return (match.group(1), match.group(2).strip()) if match else None


def parse_letter(response: str, letters: str, after_prefill: bool = True) -> str | None:
    """The option letter a response gives, or ``None`` when it cannot be read.

    ``after_prefill``: the response continues ``The answer is (``, so its first character is the letter.
    Otherwise the last "answer is X" statement wins, then the last ``(X)`` mentioned.
    """
    valid = set(letters.upper())
    if after_prefill:
        match = _LEADING.match(response)
        if match and match.group(1).upper() in valid:
            return match.group(1).upper()
        return None
    for pattern in (_ANSWER_IS, _PAREN):
        found = [m.group(1) for m in pattern.finditer(response) if m.group(1) in valid]
        if found:
            return found[-1]
    match = _LEADING.match(response)
    if match and match.group(1).upper() in valid and match.group(1).isupper():
        return match.group(1).upper()
    return None


def free_text(response: str) -> str:
    """The free-form answer: the response without surrounding whitespace."""
    return response.strip()
