"""Which checkpoint a resumed run starts from: the newest *complete* one.

transformers' ``Trainer._save_checkpoint`` writes ``checkpoint-N/`` in place (no temporary folder and
rename): the weights first, then optimizer, scheduler and RNG state, and ``trainer_state.json`` last.
A run killed while saving leaves a ``checkpoint-N`` without (or with a cut-short) ``trainer_state.json``,
and ``get_last_checkpoint`` still picks it, so the resumed run dies in ``TrainerState.load_from_json``.
A checkpoint therefore counts as complete when its ``trainer_state.json`` parses.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import sort_checkpoints


class CheckpointError(ValueError):
    """No usable checkpoint to resume from; the message says which folders were looked at and why."""


def incomplete_reason(folder: str | os.PathLike[str]) -> str | None:
    """Why ``folder`` cannot be resumed from, or ``None`` when its trainer state and weights are whole.

    A complete ``trainer_state.json`` is not enough: weights cut short on disk (a full disk, a copy
    interrupted) would fail deep in the resume with a bare ``SafetensorError``. Every ``*.safetensors``
    header is read and checked against the file's size (``safe_open``; no tensor is loaded).
    """
    from safetensors import SafetensorError, safe_open

    state = Path(folder) / TRAINER_STATE_NAME
    if not state.is_file():
        return f"no {TRAINER_STATE_NAME}, which the Trainer writes last"
    try:
        json.loads(state.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return f"{TRAINER_STATE_NAME} is cut short"
    for weights in sorted(Path(folder).glob("*.safetensors")):
        try:
            with safe_open(str(weights), "pt"):
                pass
        except (SafetensorError, OSError) as err:
            return f"{weights.name} is damaged ({err})"
    return None


def newest_complete_checkpoint(
    output_dir: str | os.PathLike[str],
) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest complete ``checkpoint-N`` in ``output_dir`` and the newer ones skipped, with why."""
    skipped: list[tuple[Path, str]] = []
    if not Path(output_dir).is_dir():
        return None, skipped
    for folder in reversed(sort_checkpoints(str(output_dir))):
        reason = incomplete_reason(folder)
        if reason is None:
            return Path(folder), skipped
        skipped.append((Path(folder), reason))
    return None, skipped


def resolve_resume(resume: str | bool | None, output_dir: str | os.PathLike[str]) -> tuple[str | None, str]:
    """``--resume_from_checkpoint`` as a folder for ``Trainer.train``, and a line saying what was chosen.

    ``true``/``last`` means the newest complete checkpoint in ``output_dir``; an explicit folder must be
    complete. ``None``/``false`` starts from scratch.
    """
    if resume is None or resume is False or (isinstance(resume, str) and resume.lower() in ("false", "")):
        return None, ""
    if resume is True or resume.lower() in ("true", "last"):
        chosen, skipped = newest_complete_checkpoint(output_dir)
        notes = "; ".join(f"skipped {folder} (incomplete: {why})" for folder, why in skipped)
        if chosen is None:
            raise CheckpointError(
                f"--resume_from_checkpoint true: no complete checkpoint-* folder in {output_dir}"
                + (f" ({notes})" if notes else "")
            )
        return str(chosen), f"Resuming from {chosen}" + (f"; {notes}." if notes else ".")
    reason = incomplete_reason(resume)
    if not Path(resume).is_dir() or reason is not None:
        raise CheckpointError(
            f"--resume_from_checkpoint {resume}: "
            + ("not a folder" if not Path(resume).is_dir() else f"incomplete ({reason})")
            + f"; pass true to use the newest complete checkpoint in {output_dir}"
        )
    return str(resume), f"Resuming from {resume}."
