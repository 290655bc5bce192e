"""Screening: each PII detector and the offensive-language check, hits and non-hits, and the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from sycophancy_eval_kit.saa_data import parse, screening

FIXTURES = Path(__file__).parent / "fixtures" / "saa"


@pytest.mark.parametrize(
    ("text", "kind", "match"),
    [
        ("Write to jo.smith+saa@mail.example.com today.", "email", "jo.smith+saa@mail.example.com"),
        ("See https://example.net/page?q=1 for more.", "url", "https://example.net/page?q=1"),
        ("See www.example.net for more.", "url", "www.example.net"),
        ("Visit example.org for details.", "domain", "example.org"),
        ("Call (202) 555-0173 after noon.", "phone_number", "(202) 555-0173"),
        ("Call +44 20 7946 0958 after noon.", "phone_number", "+44 20 7946 0958"),
        ("Her number is 078-05-1120.", "ssn_like", "078-05-1120"),
        ("Card 4111 1111 1111 1111 was used.", "card_number", "4111 1111 1111 1111"),
        ("Account GB82WEST12345698765432 is closed.", "iban_like", "GB82WEST12345698765432"),
        ("The server at 192.168.10.4 answered.", "ip_address", "192.168.10.4"),
        ("Ticket 123456789012 was issued.", "long_number", "123456789012"),
    ],
)
def test_pii_detectors_find_their_kind(text: str, kind: str, match: str) -> None:
    hits = screening.pii_hits(7, text)
    assert screening.Hit(7, kind, match) in hits


@pytest.mark.parametrize(
    "text",
    [
        "Today is 03/01/2020. What is the date tomorrow in MM/DD/YYYY?",
        "Light travels at 300,000,000 m/s and sound at 343 m/s.",
        "A 4.5 kg ball rolls 12.25 m in 3.5 s; the year was 1969.",
        "Card 4111 1111 1111 1112 fails the Luhn check.",
        "Write the answer as a_b@c without spaces.",
    ],
)
def test_ordinary_question_text_is_not_pii(text: str) -> None:
    assert screening.pii_hits(0, text) == []


def test_screen_reports_fixture_hits() -> None:
    rows = parse.read_bct_file(FIXTURES / "bct_sample.jsonl")
    report = screening.screen(rows)
    assert report.offensive_checked and report.offensive_detector.startswith("alt-profanity-check ")
    assert report.flagged == {16, 17}
    kinds = {(h.bct_index, h.kind) for h in report.hits}
    assert kinds == {(16, "email"), (16, "phone_number"), (17, "offensive")}
    offensive = next(h for h in report.hits if h.kind == "offensive")
    assert offensive.score is not None and offensive.score >= screening.DEFAULT_OFFENSIVE_THRESHOLD
    as_dict = report.as_dict()
    assert as_dict["checked_rows"] == 18 and as_dict["flagged_rows"] == 2
    assert as_dict["hits_by_kind"] == {"email": 1, "offensive": 1, "phone_number": 1}
    # a stricter threshold flags more, a looser one nothing offensive
    assert {h.bct_index for h in screening.screen(rows, threshold=1.01).hits} == {16}
