"""Screening SAA candidates for personal data and offensive language, with a report of every hit.

Detectors, all offline:

* phone numbers: Google's libphonenumber (``phonenumbers``), which validates numbers per region
  rather than matching any digit run;
* e-mail addresses, URLs / web domains, IP addresses and ID-like numbers (US SSN layout, 13-19 digit
  card numbers that pass the Luhn check, IBAN layout, any run of 9+ digits): the patterns below;
* offensive language: ``alt-profanity-check`` (a maintained linear model over words, shipped with the
  package). It scores the question and options only: the rest of a BCT prompt is the same fixed
  sentences for every row, which would only dilute a bag-of-words score. Its scores are noisy on
  science questions ("die", "butt"), so the default threshold is 0.8, not the library's 0.5.

PII patterns run over the whole instruction, because that is what the dataset ships.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import phonenumbers

from sycophancy_eval_kit.saa_data.parse import BctRow

DEFAULT_OFFENSIVE_THRESHOLD = 0.8
PHONE_REGION = "US"  # region for numbers written without a country code

_PATTERNS: dict[str, re.Pattern[str]] = {
    "email": re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"),
    "url": re.compile(r"\bhttps?://\S+|\bwww\.[^\s/]+\.\S+", re.IGNORECASE),
    # a bare web domain, unless it is the tail of an e-mail address (reported as "email")
    "domain": re.compile(
        r"(?<![@.\w-])[A-Za-z0-9-]+\.(?:com|org|net|edu|gov|io|info|biz|co\.uk)\b", re.IGNORECASE
    ),
    "ip_address": re.compile(r"\b(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}\b"),
    "ssn_like": re.compile(r"\b\d{3}-\d{2}-\d{4}\b"),
    "iban_like": re.compile(r"\b[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b"),
    "long_number": re.compile(r"(?<![\d.,])\d{9,}(?![\d.,])"),
}
_CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")
_SEVEN_DIGITS = re.compile(r"\d(?:\D{0,4}\d){6}")


@dataclass(frozen=True)
class Hit:
    bct_index: int
    kind: str
    match: str
    score: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"bct_index": self.bct_index, "kind": self.kind, "match": self.match}
        if self.score is not None:
            out["score"] = round(self.score, 4)
        return out


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def pii_hits(index: int, text: str) -> list[Hit]:
    """Every PII-like span in ``text``."""
    hits = [
        Hit(index, kind, m.group(0)) for kind, pattern in _PATTERNS.items() for m in pattern.finditer(text)
    ]
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        if 13 <= len(digits) <= 19 and _luhn_ok(digits):
            hits.append(Hit(index, "card_number", m.group(0)))
    if _SEVEN_DIGITS.search(text):  # no phone number without 7 digits close together; skips most rows
        for m in phonenumbers.PhoneNumberMatcher(text, PHONE_REGION):
            hits.append(Hit(index, "phone_number", m.raw_string))
    return hits


def content_text(row: BctRow) -> str:
    """The question and its options: the part of a prompt that differs between rows."""
    return "\n".join([row.stem, *row.options])


def _offensive_scorer() -> tuple[Callable[[Sequence[str]], Sequence[float]] | None, str]:
    try:
        from profanity_check import predict_prob
    except ImportError as err:  # the library needs Python >= 3.11
        return None, f"unavailable ({err}); install alt-profanity-check"
    return predict_prob, f"alt-profanity-check {metadata.version('alt-profanity-check')}"


@dataclass
class ScreeningReport:
    checked_rows: int
    threshold: float
    offensive_detector: str
    offensive_checked: bool
    hits: list[Hit]

    @property
    def flagged(self) -> set[int]:
        return {h.bct_index for h in self.hits}

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked_rows": self.checked_rows,
            "flagged_rows": len(self.flagged),
            "hits_by_kind": dict(sorted(Counter(h.kind for h in self.hits).items())),
            "detectors": {
                "pii": f"patterns in saa_data/screening.py; phonenumbers {metadata.version('phonenumbers')} "
                f"(region {PHONE_REGION})",
                "offensive": self.offensive_detector,
                "offensive_threshold": self.threshold,
                "offensive_checked": self.offensive_checked,
            },
            "hits": [h.as_dict() for h in self.hits],
        }


def screen(rows: Sequence[BctRow], threshold: float = DEFAULT_OFFENSIVE_THRESHOLD) -> ScreeningReport:
    """Run every detector over ``rows``; hits sorted by row, then kind."""
    return screen_texts([(row.index, row.prompt, content_text(row)) for row in rows], threshold)


def screen_texts(
    items: Sequence[tuple[int, str, str]], threshold: float = DEFAULT_OFFENSIVE_THRESHOLD
) -> ScreeningReport:
    """The detectors over ``(row index, whole prompt, question and options)``: PII in the whole prompt,
    the offensive-language score on the question and options (``syco-domain``'s pairs use it too)."""
    hits: list[Hit] = []
    for index, prompt, _ in items:
        hits.extend(pii_hits(index, prompt))
    scorer, detector = _offensive_scorer()
    if scorer is not None and items:
        scores = scorer([content for _, _, content in items])
        hits.extend(
            Hit(index, "offensive", content.replace("\n", " / ")[:200], float(s))
            for (index, _, content), s in zip(items, scores, strict=True)
            if s >= threshold
        )
    hits.sort(key=lambda h: (h.bct_index, h.kind, h.match))
    return ScreeningReport(len(items), threshold, detector, scorer is not None, hits)
