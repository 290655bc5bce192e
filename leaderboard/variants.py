"""``leaderboard.yaml``: which models are variants of one base model.

Example::

    variant_order: [instruct, aligned, aligned-SAA]   # bar order; the first present is the reference
    models:
      meta-llama/Llama-2-7b-chat-hf: {base: Llama-2-7B, variant: instruct}
      me/llama-2-7b-orpo:            {base: Llama-2-7B, variant: aligned}
      me/llama-2-7b-orpo-saa:        {base: Llama-2-7B, variant: aligned-SAA, label: "Llama-2-7B + SAA"}

Keys are lm-eval's ``model_name`` (the ``pretrained=`` argument) or the folder name lm-eval made from
it. Without a file, or for a model it does not list, a model is its own base with variant ``model``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml
from lm_eval.utils import sanitize_model_name

from sycophancy_eval_kit.core.files import DataError, read_text

DEFAULT_VARIANT = "model"
_MODEL_KEYS = {"base", "variant", "label"}
_TOP_KEYS = {"variant_order", "models"}


class VariantsError(ValueError):
    """A malformed leaderboard.yaml; the message names the file and the entry."""


@dataclass(frozen=True)
class Placement:
    """Where a model sits on the leaderboard."""

    base: str
    variant: str
    label: str


@dataclass(frozen=True)
class Variants:
    """The parsed file: model name -> placement, and the variant order (first = reference)."""

    models: dict[str, Placement]
    order: tuple[str, ...] = ()

    def place(self, model: str) -> Placement:
        """The model's entry, by lm-eval's model name or the folder name lm-eval made from it."""
        found = self.models.get(model) or self.models.get(sanitize_model_name(model))
        return found or Placement(model, DEFAULT_VARIANT, model)

    def variant_rank(self, variant: str) -> tuple[int, str]:
        """Sort key for variants: the file's order, then any others by name."""
        return (self.order.index(variant), variant) if variant in self.order else (len(self.order), variant)

    def unmatched(self, models: Iterable[str]) -> list[str]:
        """Entries of the file that match none of the models read (probably a typo)."""
        seen = set(models) | {sanitize_model_name(m) for m in models}
        return sorted(key for key in self.models if key not in seen)


def load_variants(path: str | os.PathLike[str] | None) -> Variants:
    """Parse and validate ``leaderboard.yaml`` (no file: every model is its own base)."""
    if path is None:
        return Variants({})
    p = Path(path)
    try:
        raw = yaml.safe_load(read_text(p))
    except DataError as err:  # missing, unreadable or not UTF-8: the message names the file (and line)
        raise VariantsError(str(err)) from err
    except yaml.YAMLError as err:
        raise VariantsError(f"{p}: not valid YAML ({err})") from err
    if raw is None:
        return Variants({})
    if not isinstance(raw, dict) or set(raw) - _TOP_KEYS:
        extra = sorted(set(raw) - _TOP_KEYS) if isinstance(raw, dict) else type(raw).__name__
        raise VariantsError(
            f"{p}: unexpected {extra}; expected a mapping with 'models' and optional 'variant_order'"
        )
    order = raw.get("variant_order") or []
    if not isinstance(order, list) or not all(isinstance(v, str) and v for v in order):
        raise VariantsError(f"{p}: variant_order must be a list of variant names")
    entries = raw.get("models") or {}
    if not isinstance(entries, dict):
        raise VariantsError(f"{p}: models must map model names to {{base, variant}}")
    models: dict[str, Placement] = {}
    taken: dict[tuple[str, str], str] = {}
    for name, spec in entries.items():
        where = f"{p}: models[{name!r}]"
        if not isinstance(spec, dict) or set(spec) - _MODEL_KEYS:
            raise VariantsError(
                f"{where}: expected {{base: str, variant: str, label: str (optional)}}, got {spec!r:.100}"
            )
        base, variant = spec.get("base"), spec.get("variant")
        if not isinstance(base, str) or not base or not isinstance(variant, str) or not variant:
            raise VariantsError(f"{where}: 'base' and 'variant' must be non-empty strings")
        label = spec.get("label", f"{base} ({variant})")
        if not isinstance(label, str):
            raise VariantsError(f"{where}: 'label' must be a string")
        if (base, variant) in taken:
            raise VariantsError(
                f"{where}: base {base!r} already has variant {variant!r} ({taken[(base, variant)]!r})"
            )
        taken[(base, variant)] = str(name)
        models[str(name)] = Placement(base, variant, label)
    return Variants(models, tuple(order))
