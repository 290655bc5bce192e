"""Preference data for ORPO: dpo_mix_en and SAA rows in TRL's conversational preference format.

Every row becomes ``{"prompt": [messages], "chosen": [assistant], "rejected": [assistant], "source",
"row_id"}``: the prompt keeps the system turn and the whole multi-turn history, ``source`` names the set
(per-source metrics are logged from it) and ``row_id`` names the file and row (error messages use it).

Rows are dropped, and counted per source in the manifest, when chosen equals rejected (no preference
to learn), when a response is empty, or when prompt + response is longer than ``max_length`` tokens as
TRL will tokenize it: TRL never truncates a prompt, so an over-long row would be cut to an empty
completion and give a NaN loss.

The mixture is TRL's (``DatasetMixtureConfig``, ``DatasetConfig.fraction``), built from our flags by
``DataArguments.mixture()``. We do not call ``trl.get_dataset``: it mixes the files as loaded, and our
drops must come first so that the shares hold over the rows actually trained on; its
``datasets.load_dataset("json")`` reports a bad row or a non-UTF-8 byte without the file's line; and it
takes each set's first rows, where we take a seeded sample. So ``sources.py`` reads a file through the
project's file layer into a ``datasets.Dataset`` of raw records, this module converts it with
``Dataset.map`` (a bad row raises with its label), drops with ``Dataset.filter`` and mixes what is left
by TRL's rule.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sycophancy_eval_kit.training.chat_templates import ChatTemplateChoice, conform_messages
from sycophancy_eval_kit.training.config import SAA_FILE, DataArguments, PreferenceSet
from sycophancy_eval_kit.training.sources import PreferenceDataError, ResolvedFile, read_records, resolve_file

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)

SAA_REQUIRED = ("instruction", "chosen", "rejected")
SHAREGPT_ROLES = {"system": "system", "human": "user", "gpt": "assistant"}

#: the columns of a converted row, in this order
ROW_COLUMNS = ("prompt", "chosen", "rejected", "source", "row_id")

DROP_IDENTICAL = "chosen_equals_rejected"
DROP_EMPTY = "empty_response"
DROP_EMPTY_PROMPT = "empty_prompt"
DROP_TOO_LONG = "too_long"
DROP_REASONS: tuple[str, ...] = (DROP_IDENTICAL, DROP_EMPTY, DROP_EMPTY_PROMPT, DROP_TOO_LONG)


# ---------------------------------------------------------------------------------- converters
def _assistant_text(value: Any, where: str, key: str) -> str:
    if isinstance(value, Mapping) and value.get("from") == "gpt" and isinstance(value.get("value"), str):
        return value["value"]
    raise PreferenceDataError(f"{where}: '{key}' must be {{'from': 'gpt', 'value': str}}, got {value!r:.120}")


def sharegpt_to_trl(record: Any, where: str, source: str = "dpo_mix_en") -> dict[str, Any]:
    """One LLaMA-Factory ShareGPT preference record → a TRL conversational preference row."""
    if not isinstance(record, Mapping):
        raise PreferenceDataError(f"{where}: expected an object with conversations, chosen, rejected")
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise PreferenceDataError(
            f"{where}: 'conversations' must be a non-empty list of {{from, value}} turns"
        )
    prompt: list[dict[str, str]] = []
    for i, turn in enumerate(turns):
        role = SHAREGPT_ROLES.get(turn.get("from")) if isinstance(turn, Mapping) else None
        if role is None or not isinstance(turn.get("value"), str):
            raise PreferenceDataError(
                f"{where}: conversations[{i}] must be {{'from': 'system'|'human'|'gpt', 'value': str}}, "
                f"got {turn!r:.120}"
            )
        if role == "system" and i != 0:
            raise PreferenceDataError(f"{where}: conversations[{i}] is a system turn; only the first may be")
        prompt.append({"role": role, "content": turn["value"]})
    dialogue = [m["role"] for m in prompt if m["role"] != "system"]
    expected = ["user" if i % 2 == 0 else "assistant" for i in range(len(dialogue))]
    if dialogue != expected or dialogue[-1] != "user":
        raise PreferenceDataError(
            f"{where}: turns must alternate human/gpt after an optional system turn and end with a human "
            f"turn; got {[t.get('from') for t in turns]}"
        )
    return {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": _assistant_text(record.get("chosen"), where, "chosen")}],
        "rejected": [
            {"role": "assistant", "content": _assistant_text(record.get("rejected"), where, "rejected")}
        ],
        "source": source,
        "row_id": where,
    }


def saa_to_trl(record: Any, where: str, source: str = "saa") -> dict[str, Any]:
    """One ``saa.jsonl`` row (``instruction`` → the user turn) → a TRL conversational preference row."""
    if not isinstance(record, Mapping):
        raise PreferenceDataError(f"{where}: expected an object with {', '.join(SAA_REQUIRED)}")
    for key in SAA_REQUIRED:
        if not isinstance(record.get(key), str):
            raise PreferenceDataError(f"{where}: '{key}' must be a string, got {record.get(key)!r:.80}")
    row_id = f"{where} (id {record['id']})" if record.get("id") is not None else where
    return {
        "prompt": [{"role": "user", "content": record["instruction"]}],
        "chosen": [{"role": "assistant", "content": record["chosen"]}],
        "rejected": [{"role": "assistant", "content": record["rejected"]}],
        "source": source,
        "row_id": row_id,
    }


# ------------------------------------------------------------------------------------- loading
CONVERTERS = {"dpo_mix_en": sharegpt_to_trl, "saa": saa_to_trl}


def _convert(example: dict[str, Any], source: str) -> dict[str, Any]:
    return CONVERTERS[source](json.loads(example["record"]), example["row_id"], source)


def convert(raw: Dataset, source: str) -> Dataset:
    """:func:`read_records` output → TRL rows of ``source``'s layout (``Dataset.map``)."""
    rows = raw.map(
        _convert, fn_kwargs={"source": source}, remove_columns=["record"], desc=f"Converting {source}"
    )
    return rows.select_columns(list(ROW_COLUMNS))


def read_dpo_mix_en(path: str | os.PathLike[str]) -> Dataset:
    """Every row of a ShareGPT preference file (JSON array or JSON lines) in TRL's format."""
    return convert(read_records(path), "dpo_mix_en")


def read_saa(path: str | os.PathLike[str]) -> Dataset:
    """Every row of a ``saa.jsonl`` file (or a folder holding one) in TRL's format."""
    p = Path(path)
    return convert(read_records(p / SAA_FILE if p.is_dir() else p), "saa")


# ------------------------------------------------------------------------------------- filters
def _responses_present(chosen: list[dict[str, str]], rejected: list[dict[str, str]]) -> bool:
    return bool(chosen[0]["content"].strip() and rejected[0]["content"].strip())


def _responses_differ(chosen: list[dict[str, str]], rejected: list[dict[str, str]]) -> bool:
    return chosen[0]["content"] != rejected[0]["content"]


def _prompt_present(prompt: list[dict[str, str]]) -> bool:
    """The user's last turn says something: a preference between two replies to nothing is no lesson."""
    return bool(prompt[-1]["content"].strip())


def drop_unusable(rows: Dataset) -> tuple[Dataset, dict[str, int]]:
    """Drop rows with no preference to learn (chosen == rejected), an empty response or an empty prompt."""
    columns = ["chosen", "rejected"]
    present = rows.filter(_responses_present, input_columns=columns, desc="Dropping empty responses")
    asked = present.filter(_prompt_present, input_columns=["prompt"], desc="Dropping empty prompts")
    kept = asked.filter(_responses_differ, input_columns=columns, desc="Dropping chosen == rejected")
    return kept, {
        DROP_IDENTICAL: len(asked) - len(kept),
        DROP_EMPTY: len(rows) - len(present),
        DROP_EMPTY_PROMPT: len(present) - len(asked),
    }


def sequence_lengths(row: Mapping[str, Any], tokenizer: Any) -> tuple[int, int]:
    """Token lengths of prompt + chosen and prompt + rejected exactly as TRL's ORPO tokenizes them.

    TRL renders the conversation with the chat template, tokenizes prompt + response without special
    tokens, then adds BOS in front and EOS at the end unless they are already there.
    """
    from trl.data_utils import maybe_apply_chat_template

    rendered = maybe_apply_chat_template(
        {"prompt": row["prompt"], "chosen": row["chosen"], "rejected": row["rejected"]}, tokenizer
    )
    lengths = []
    for key in ("chosen", "rejected"):
        ids = tokenizer(rendered["prompt"] + rendered[key], add_special_tokens=False)["input_ids"]
        extra = int(tokenizer.bos_token_id is not None and (not ids or ids[0] != tokenizer.bos_token_id))
        extra += int(not ids or ids[-1] != tokenizer.eos_token_id)
        lengths.append(len(ids) + extra)
    return lengths[0], lengths[1]


def _fits(row: dict[str, Any], tokenizer: Any, max_length: int) -> bool:
    return max(sequence_lengths(row, tokenizer)) <= max_length


def drop_too_long(rows: Dataset, tokenizer: Any, max_length: int) -> tuple[Dataset, int]:
    """Keep the rows whose prompt + chosen and prompt + rejected both fit in ``max_length`` tokens."""
    kept = rows.filter(
        _fits, fn_kwargs={"tokenizer": tokenizer, "max_length": max_length}, desc="Dropping rows too long"
    )
    return kept, len(rows) - len(kept)


def _conform(prompt: list[dict[str, str]], policy: str) -> dict[str, Any]:
    return {"prompt": conform_messages(prompt, policy)}


# ------------------------------------------------------------------------------------- mixture
def mixture_counts(sizes: Mapping[str, int], fractions: Mapping[str, float]) -> dict[str, int]:
    """Rows each set contributes under TRL's ``DatasetConfig.fraction`` rule (``trl.get_dataset``).

    Shares are normalised to sum to one; the mixture is the largest one in which no set is oversampled,
    ``N = min(size / share)`` over the sets with a share; each set gives ``round(share * N)`` rows.
    """
    total_weight = sum(fractions.values())
    weights = {name: fractions[name] / total_weight for name in sizes}
    capacity = min(sizes[name] / w for name, w in weights.items() if w > 0)
    return {name: round(w * capacity) for name, w in weights.items()}


def mixture_indices(
    sizes: Mapping[str, int], fractions: list[float] | None, seed: int
) -> dict[str, list[int]]:
    """The rows each set contributes: all of them, or a seeded sample of TRL's counts, in file order.

    TRL takes each set's first rows; a sample does not depend on how a file happens to be sorted.
    """
    if fractions is None:
        return {name: list(range(size)) for name, size in sizes.items()}
    counts = mixture_counts(sizes, dict(zip(sizes, fractions, strict=True)))
    rng = random.Random(seed)
    out = {}
    for name, size in sizes.items():
        order = list(range(size))
        rng.shuffle(order)
        out[name] = sorted(order[: counts[name]])
    return out


# ----------------------------------------------------------------------------------- the dataset
@dataclass
class PreparedData:
    """The training rows (and an evaluation split, with ``test_split_size``), and what went into them.

    ``manifest`` is written as ``data_manifest.json``.
    """

    dataset: Dataset
    manifest: dict[str, Any] = field(default_factory=dict)
    eval_dataset: Dataset | None = None


def locate(spec: PreferenceSet) -> tuple[ResolvedFile, dict[str, Any]]:
    """A set's file and where it came from (hashed; checked when ``sha256`` pins it)."""
    if spec.source not in CONVERTERS:
        raise PreferenceDataError(f"unknown dataset {spec.source!r}; expected one of {', '.join(CONVERTERS)}")
    resolved = resolve_file(spec.path, spec.data_files, spec.revision, spec.source)
    return resolved, resolved.provenance(spec.sha256)


def prepare_preference_data(
    args: DataArguments, tokenizer: Any, max_length: int, template: ChatTemplateChoice
) -> PreparedData:
    """Read, convert, filter and mix the configured sets; the manifest counts every dropped row."""
    from datasets import concatenate_datasets

    mixture = args.mixture()
    sources: dict[str, dict[str, Any]] = {}
    usable: dict[str, Dataset] = {}
    # every file is found (and its hash checked) before any is converted, so a typo fails at once
    located = [(spec.source, *locate(spec)) for spec in mixture.datasets]
    for name, resolved, provenance in located:
        rows = convert(read_records(resolved.path), name)
        kept, dropped = drop_unusable(rows)
        kept = kept.map(
            _conform,
            input_columns=["prompt"],
            fn_kwargs={"policy": template.policy},
            desc=f"Chat template policy {template.policy}",
        )
        kept, dropped[DROP_TOO_LONG] = drop_too_long(kept, tokenizer, max_length)
        usable[name] = kept
        sources[name] = provenance | {"rows_read": len(rows), "dropped": dropped, "rows_kept": len(kept)}
        logger.info("%s: %d rows read, %d kept, dropped %s", name, len(rows), len(kept), dropped)
        if not len(kept):
            raise PreferenceDataError(
                f"{name}: none of the {len(rows)} rows in {provenance['location']} is usable "
                f"(dropped: {dropped}; max_length={max_length})"
            )
    fractions = [spec.fraction for spec in mixture.datasets]
    chosen = mixture_indices(
        {name: len(rows) for name, rows in usable.items()},
        None if all(f is None for f in fractions) else fractions,
        args.mixture_seed,
    )
    parts = [usable[name].select(chosen[name]) for name in usable]
    dataset = concatenate_datasets(parts)
    for name in usable:
        sources[name]["rows_used"] = len(chosen[name])
    manifest = {
        "datasets": list(args.datasets),
        "sources": sources,
        "rows_per_source": {name: len(chosen[name]) for name in usable},
        "rows_total": len(dataset),
        "mixture": {
            "fractions": args.mixture_fractions,
            "seed": args.mixture_seed,
            "test_split_size": mixture.test_split_size,
        },
        "max_length": max_length,
        "chat_template": template.as_dict(),
    }
    eval_dataset = None
    if mixture.test_split_size is not None:
        split = dataset.train_test_split(test_size=mixture.test_split_size, seed=args.mixture_seed)
        dataset, eval_dataset = split["train"], split["test"]
        manifest["split"] = {"train": len(dataset), "test": len(eval_dataset)}
    return PreparedData(dataset, manifest, eval_dataset)


def write_manifest(manifest: Mapping[str, Any], output_dir: str | os.PathLike[str]) -> Path:
    path = Path(output_dir) / "data_manifest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path
