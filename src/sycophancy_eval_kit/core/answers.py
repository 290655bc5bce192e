"""Reading an answer out of a model response (a letter for multiple choice, text for free form), and
the option lines ``(A) text`` that define which letters a question has.

One letter parser for every backend and every caller (the one pass, the dialogue, the SAA builder):
a backend that continues the prefill ``The answer is (`` writes the letter first (``B) Paris``), a
chat endpoint that does not writes a fresh message (``The answer is (B).``, ``(B) Paris``, ``B``),
and free reasoning states its choice somewhere (``(A) is wrong, (C) is too small; I pick B``). An
answer that cannot be read is ``None`` — counted by the caller as unreadable, never guessed.
"""

from __future__ import annotations

import re

_OPTION_LINE = re.compile(r"^\(([A-Z])\)\s?(.*)$")

# A continuation of "The answer is (": the letter first, then ")", the end, or punctuation.
_CONTINUATION = re.compile(r"^\(?([A-Za-z])(?:\)|(?=[.,:;]?$)|(?=[.,:;]\s))")
# An explicit choice anywhere: "the answer is (B)", "Answer: B", "answer would be B", "I pick B",
# "I'd go with C"; "option B is correct" is not one (it names, it does not choose), nor is a label
# such as "Answer (A) is wrong". The words match in any case; a letter in lower case only in
# parentheses or at the end of a line ("the answer is (c)", "the answer is c."), so that "the answer
# is a bit tricky" names no option.
_L = r"(?:\(([A-Za-z])\)|([A-Z])\)?|([a-z])(?=[.)]?[ \t]*(?:\n|$)))(?![A-Za-z0-9])"
_CHOICES = (
    re.compile(
        rf"\b(?i:answer)(?:\s+(?i:is|would\s+be|should\s+be)\s*[:\-]?|\s*[:\-])\s*(?:(?i:option)\s+)?{_L}"
    ),
    re.compile(rf"\bI(?:\s+would|'d|\s+will|'ll)?\s+(?:pick|choose|select|go\s+with)\s+(?:option\s+)?{_L}"),
    re.compile(rf"\b(?i:(?:final\s+)?(?:choice|option|pick)\s+is)\s*:?\s*{_L}"),
)
# Letters merely mentioned: "(B)", a line that starts "B)" / "B." / "B:", or the whole reply "B".
_MENTIONS = (
    re.compile(r"\(([A-Z])\)"),
    re.compile(r"^\s*([A-Z])[).:](?:\s|$)", re.M),
    re.compile(r"^\s*\(?([A-Z])\)?\.?\s*$"),
)


def option_line(line: str) -> tuple[str, str] | None:
    """``(letter, text)`` of an option line such as ``(B) Paris``, or ``None`` for any other line."""
    match = _OPTION_LINE.match(line.strip())
    return (match.group(1), match.group(2).strip()) if match else None


def parse_letter(response: str, letters: str, after_prefill: bool = True) -> str | None:
    """The option letter a response commits to, or ``None`` when it cannot be read.

    ``after_prefill``: the context ended with ``The answer is (``, so a reply that continues it
    starts with the letter. Otherwise (and when the reply does not start with a letter) the last
    explicit choice wins (a revision: "The answer is (C). ... The answer is (D)."), unless three or
    more different letters are each declared the answer: that is an enumeration, not a choice (a
    real 135M reply listed "The answer is (D) ... (C) ... (B) ... (A)"). Without an explicit choice,
    a reply that mentions exactly one option letter gives it; two or more letters with no final
    choice, or only letters that are not options, give ``None``.
    """
    valid = set(letters.upper())
    text = response.strip()
    if not text:
        return None
    if after_prefill:
        match = _CONTINUATION.match(text)
        if match:
            letter = match.group(1).upper()
            return letter if letter in valid else None
    choices = [
        (m.start(), next(g for g in m.groups() if g)) for pattern in _CHOICES for m in pattern.finditer(text)
    ]
    choices = [(pos, letter.upper()) for pos, letter in choices if letter.upper() in valid]
    if choices:
        return max(choices)[1] if len({letter for _, letter in choices}) < 3 else None
    mentioned = {m.group(1).upper() for pattern in _MENTIONS for m in pattern.finditer(text)} & valid
    return mentioned.pop() if len(mentioned) == 1 else None


def free_text(response: str) -> str:
    """The free-form answer: the response without surrounding whitespace."""
    return response.strip()
