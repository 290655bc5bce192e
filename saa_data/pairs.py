"""The SAA pair rule: which rows are sampled, and what is chosen and rejected for each.

A row's suggestion is *correct* when the option it names is the ground truth, whatever the sentence's
polarity (the paper's Table 1 uses for- and against-sentences this way). With ``polarity_aware`` an
against-sentence counts as the user rejecting the named option, so the user is right exactly when
(for, named == truth) or (against, named != truth). Either way:

* chosen is always the correct option;
* rejected is the named option when it is wrong, else a wrong option drawn with a per-row seed
  (so a row's pair does not depend on which other rows were sampled);
* each response follows its row's BCT answer style: ``B) text`` after a prompt ending in
  ``The best answer is: (``, else ``The best answer is: (B) text``.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

from sycophancy_eval_kit.core.files import DataError
from sycophancy_eval_kit.saa_data.ground_truth import Label
from sycophancy_eval_kit.saa_data.parse import BEST_ANSWER_PREFIX, CONTINUATION, BctRow
from sycophancy_eval_kit.saa_data.suggestions import FOR


class NotEnoughRowsError(DataError):
    """Fewer eligible rows than the requested counts; the message says how many exist."""


@dataclass(frozen=True)
class Candidate:
    """A labelled BCT row, ready to become a pair."""

    row: BctRow
    label: Label

    @property
    def suggestion_correct(self) -> bool:
        """The named option is the ground truth (the paper's split)."""
        return self.row.suggested_letter == self.label.correct_letter

    @property
    def stance_correct(self) -> bool:
        """The user's stance is right: for the true option, or against a wrong one."""
        return self.suggestion_correct == (self.row.polarity == FOR)

    def is_correct_case(self, polarity_aware: bool) -> bool:
        return self.stance_correct if polarity_aware else self.suggestion_correct


def render_response(row: BctRow, letter: str) -> str:
    """An answer naming ``letter`` in the row's BCT answer style."""
    body = f"{letter}) {row.option_text(letter)}"
    return body if row.answer_style == CONTINUATION else f"{BEST_ANSWER_PREFIX}{body}"


def rejected_letter(candidate: Candidate, seed: int) -> str:
    """The named option when wrong, else a seeded draw among the wrong options."""
    row, correct = candidate.row, candidate.label.correct_letter
    if row.suggested_letter != correct:
        return row.suggested_letter
    wrong = [letter for letter in row.letters if letter != correct]
    return random.Random(f"saa-rejected:{seed}:{row.index}").choice(wrong)


def pair_id(row: BctRow) -> str:
    """Stable id: the same BCT row gets the same id in every build, whatever the seed or mode."""
    return "saa-" + hashlib.sha256(f"{row.index}\x1f{row.prompt}".encode()).hexdigest()[:16]


def to_record(candidate: Candidate, seed: int) -> dict[str, Any]:
    """The output row: LLaMA-Factory / TRL columns first, then provenance."""
    row, label = candidate.row, candidate.label
    rejected = rejected_letter(candidate, seed)
    return {
        "id": pair_id(row),
        "instruction": row.prompt,
        "chosen": render_response(row, label.correct_letter),
        "rejected": render_response(row, rejected),
        "bct_index": row.index,
        "source_dataset": label.dataset,
        "source_id": label.source_id,
        "suggestion_polarity": row.polarity,
        "suggestion_reference": row.reference,
        "suggested_letter": row.suggested_letter,
        "correct_letter": label.correct_letter,
        "rejected_letter": rejected,
        "suggestion_correct": candidate.suggestion_correct,
        "stance_correct": candidate.stance_correct,
        "answer_style": row.answer_style,
    }


def sample(
    candidates: list[Candidate], n_correct: int, n_incorrect: int, seed: int, polarity_aware: bool = False
) -> list[Candidate]:
    """Draw ``n_correct`` correct- and ``n_incorrect`` incorrect-suggestion rows; output in file order."""
    if n_correct < 0 or n_incorrect < 0:
        raise ValueError(f"counts must be >= 0, got n_correct={n_correct}, n_incorrect={n_incorrect}")
    ordered = sorted(candidates, key=lambda c: c.row.index)
    correct = [c for c in ordered if c.is_correct_case(polarity_aware)]
    incorrect = [c for c in ordered if not c.is_correct_case(polarity_aware)]
    short = [
        f"{name}: asked for {want}, {len(pool)} eligible"
        for name, want, pool in (("correct", n_correct, correct), ("incorrect", n_incorrect, incorrect))
        if want > len(pool)
    ]
    if short:
        mode = "polarity-aware" if polarity_aware else "default"
        raise NotEnoughRowsError(
            f"Too few eligible rows ({mode} split; {len(ordered)} labelled rows after exclusions): "
            f"{'; '.join(short)}. Lower --n_correct / --n_incorrect."
        )
    rng = random.Random(seed)
    chosen = rng.sample(correct, n_correct) + rng.sample(incorrect, n_incorrect)
    return sorted(chosen, key=lambda c: c.row.index)
