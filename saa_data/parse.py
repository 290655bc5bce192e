"""Reading BCT non-CoT rows: question stem, options, the suggestion sentence and the answer style.

A BCT row is only ``{"messages": [user, assistant]}``. The user turn is the question, an
``Answer choices:`` block with one ``(A) text`` line per option, an instruction line, and one
suggestion sentence inserted on its own line (before the question, before the options block, after
it, or last). About half the prompts end with ``The best answer is: (`` so the assistant continues
with ``B) text``; the others leave the whole ``The best answer is: (B) text`` to the assistant.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sycophancy_eval_kit.core import prompts
from sycophancy_eval_kit.core.answers import option_line, parse_letter
from sycophancy_eval_kit.core.files import DataError, iter_json_lines
from sycophancy_eval_kit.saa_data import suggestions

OPTIONS_HEADER = "Answer choices:"
#: The BCT answer prefix. A prompt that ends with it wants the rest (``B) text``) as the answer.
BEST_ANSWER_PREFIX = "The best answer is: ("
CONTINUATION = "continuation"  # prompt ends with the prefix; answer ``B) text``
FULL = "full"  # answer ``The best answer is: (B) text``
MIN_OPTIONS, MAX_OPTIONS = 2, 6

_LETTERS = prompts.OPTION_LETTERS


class BctFormatError(DataError):
    """A BCT row that does not have the expected shape; the message names the file and the row."""


@dataclass(frozen=True)
class BctRow:
    """One parsed BCT row. ``index`` is the 0-based line number in the file (``bct_index``)."""

    index: int
    prompt: str
    response: str
    stem: str
    letters: str
    options: tuple[str, ...]
    suggestion: str
    suggested_letter: str
    polarity: str  # suggestions.FOR / suggestions.AGAINST
    reference: str  # "letter" or "text": how the sentence names the option
    answer_style: str  # CONTINUATION / FULL
    response_letter: str | None  # the letter BCT's own (unbiased-prompt) answer gives, if readable

    def option_text(self, letter: str) -> str:
        return self.options[self.letters.index(letter)]


def normalize_space(text: str) -> str:
    """Collapse runs of whitespace, so stems and options compare equal across sources."""
    return " ".join(suggestions.normalize_quotes(text).split())


def split_options(lines: list[str], where: str) -> tuple[int, int, str, tuple[str, ...]]:
    """Find the options block: (header line, end line, letters, texts); raises when absent or odd."""
    headers = [i for i, line in enumerate(lines) if line.strip() == OPTIONS_HEADER]
    if len(headers) != 1:
        raise BctFormatError(
            f"{where}: expected exactly one '{OPTIONS_HEADER}' line followed by '(A) text' options, "
            f"found {len(headers)}"
        )
    start = end = headers[0] + 1
    letters: list[str] = []
    texts: list[str] = []
    while end < len(lines) and (option := option_line(lines[end])):
        letters.append(option[0])
        texts.append(option[1])
        end += 1
    found = "".join(letters)
    if not (MIN_OPTIONS <= len(found) <= MAX_OPTIONS) or found != _LETTERS[: len(found)]:
        raise BctFormatError(
            f"{where}: expected {MIN_OPTIONS}-{MAX_OPTIONS} options lettered A, B, C, ... after "
            f"'{OPTIONS_HEADER}', got letters {found!r}"
        )
    if any(not text for text in texts):
        raise BctFormatError(f"{where}: an option has no text ({lines[start:end]!r:.200})")
    return headers[0], end, found, tuple(texts)


def _resolve_reference(
    ref: str, letters: str, options: tuple[str, ...], sentence: str, where: str
) -> tuple[str, str]:
    """The letter a suggestion's reference names and how it names it (``letter`` / ``text``)."""
    if len(ref) == 1 and ref in _LETTERS:
        if ref not in letters:
            raise BctFormatError(
                f"{where}: the suggestion {sentence!r} names option {ref}, but the options are {letters}"
            )
        return ref, "letter"
    if len(ref) >= 2 and ref[0] == "'" and ref[-1] == "'":
        wanted = normalize_space(ref[1:-1])
        hits = [letters[i] for i, text in enumerate(options) if normalize_space(text) == wanted]
        if len(hits) == 1:
            return hits[0], "text"
        if len(hits) > 1:
            raise BctFormatError(
                f"{where}: the suggestion {sentence!r} quotes text shared by options {''.join(hits)}"
            )
    raise BctFormatError(
        f"{where}: the suggestion {sentence!r} names no option; expected a letter in {letters} or the "
        f"quoted text of one option"
    )


def parse_prompt(index: int, prompt: str, response: str, where: str) -> BctRow:
    """Parse one BCT user turn (and its assistant answer) into a :class:`BctRow`."""
    body = prompt
    style = FULL
    if prompt.rstrip().endswith(BEST_ANSWER_PREFIX):
        style = CONTINUATION
        body = prompt.rstrip()[: -len(BEST_ANSWER_PREFIX)]
    lines = body.split("\n")
    header, end, letters, options = split_options(lines, where)

    found: list[tuple[int, str, str, str, str]] = []  # line, sentence, letter, polarity, reference
    for i, line in enumerate(lines):
        if header <= i < end or not line.strip():
            continue
        for template, ref in suggestions.match_sentence(line):
            letter, how = _resolve_reference(ref, letters, options, line.strip(), where)
            found.append((i, line.strip(), letter, template.polarity, how))
    if not found:
        raise BctFormatError(
            f"{where}: no suggestion sentence found; expected one line such as 'I think the answer is B "
            f"but I'm curious to hear what you think.' (see saa_data/suggestions.py for the known forms)"
        )
    if len({(f[0], f[2], f[3]) for f in found}) > 1:
        shown = "; ".join(repr(f[1]) for f in found)
        raise BctFormatError(f"{where}: more than one suggestion sentence ({shown}); expected exactly one")
    line_no, sentence, letter, polarity, how = found[0]
    stem_lines = [line for i, line in enumerate(lines[:header]) if i != line_no]
    stem = "\n".join(stem_lines).strip()
    if not stem:
        raise BctFormatError(f"{where}: no question text before '{OPTIONS_HEADER}'")
    return BctRow(
        index=index,
        prompt=prompt,
        response=response,
        stem=stem,
        letters=letters,
        options=options,
        suggestion=sentence,
        suggested_letter=letter,
        polarity=polarity,
        reference=how,
        answer_style=style,
        response_letter=parse_letter(response, letters, after_prefill=style == CONTINUATION),
    )


def _messages(obj: object, where: str) -> tuple[str, str]:
    messages = obj.get("messages") if isinstance(obj, dict) else None
    if (
        not isinstance(messages, list)
        or len(messages) != 2
        or not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages)
        or [m.get("role") for m in messages] != ["user", "assistant"]
    ):
        raise BctFormatError(
            f"{where}: expected {{'messages': [{{'role': 'user', 'content': str}}, "
            f"{{'role': 'assistant', 'content': str}}]}}"
        )
    return messages[0]["content"], messages[1]["content"]


def iter_bct_rows(path: str | os.PathLike[str]) -> Iterator[BctRow | BctFormatError]:
    """Parse a BCT jsonl file row by row, yielding the error in place of each bad row."""
    p = Path(path)
    for line_no, obj in iter_json_lines(p, "one BCT object per line", strict=False):
        index = line_no - 1
        where = f"{p}:{line_no} (bct_index {index})"
        if isinstance(obj, DataError):
            yield BctFormatError(obj.detail, where)
            continue
        try:
            prompt, response = _messages(obj, where)
            yield parse_prompt(index, prompt, response, where)
        except BctFormatError as err:
            yield err


def drop_repeats(rows: list[BctRow]) -> tuple[list[BctRow], list[int]]:
    """The rows whose user prompt was not seen on an earlier line, and the ``bct_index`` of each repeat.

    The key is the exact user prompt: a pair is built from the prompt alone (stem, options and
    suggestion give the label, chosen and rejected), so two rows with one prompt give the same pair
    whatever BCT's answer says, and would put the same instruction twice into training. The first
    copy is kept, so ids and ``bct_index`` do not depend on later lines.
    """
    seen: set[str] = set()
    kept: list[BctRow] = []
    repeats: list[int] = []
    for row in rows:
        if row.prompt in seen:
            repeats.append(row.index)
            continue
        seen.add(row.prompt)
        kept.append(row)
    return kept, repeats


def read_bct_file(path: str | os.PathLike[str], max_errors_shown: int = 10) -> list[BctRow]:
    """Parse every row of a BCT file; on any bad row raise one error listing the first few."""
    rows: list[BctRow] = []
    errors: list[BctFormatError] = []
    for item in iter_bct_rows(path):
        if isinstance(item, BctFormatError):
            errors.append(item)
        else:
            rows.append(item)
    if errors:
        shown = "\n  ".join(str(e) for e in errors[:max_errors_shown])
        more = f"\n  ... and {len(errors) - max_errors_shown} more" if len(errors) > max_errors_shown else ""
        raise BctFormatError(f"{path}: {len(errors)} bad row(s):\n  {shown}{more}")
    if not rows:
        raise BctFormatError(f"{path}: no rows; expected a BCT non-CoT jsonl file")
    return rows
