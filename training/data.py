"""Preference data for ORPO: dpo_mix_en and SAA rows in TRL's conversational preference format.

Every row becomes ``{"prompt": [messages], "chosen": [assistant], "rejected": [assistant], "source",
"row_id"}``: the prompt keeps the system turn and the whole multi-turn history, ``source`` names the set
(per-source metrics are logged from it) and ``row_id`` names the file and row (error messages use it).

Rows are dropped, and counted per source in the manifest, when chosen equals rejected (no preference
to learn), when a response is empty, or when prompt + response is longer than ``max_length`` tokens as
TRL will tokenize it: TRL never truncates a prompt, so an over-long row would be cut to an empty
completion and give a NaN loss.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lm_eval_tasks.sycophancy.files import sha256_file

from .chat_templates import ChatTemplateChoice, conform_messages
from .config import DataArguments

logger = logging.getLogger(__name__)

SAA_FILE = "saa.jsonl"
SAA_REQUIRED = ("instruction", "chosen", "rejected")
SHAREGPT_ROLES = {"system": "system", "human": "user", "gpt": "assistant"}

DROP_IDENTICAL = "chosen_equals_rejected"
DROP_EMPTY = "empty_response"
DROP_TOO_LONG = "too_long"
DROP_REASONS: tuple[str, ...] = (DROP_IDENTICAL, DROP_EMPTY, DROP_TOO_LONG)


class PreferenceDataError(ValueError):
    """Bad preference input; the message names the file, the row and what was expected."""


# ------------------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class ResolvedFile:
    """A local copy of an input file and where it came from."""

    path: Path
    kind: str  # "local" or "hub"
    location: str
    revision: str | None = None

    def provenance(self, expected_sha256: str | None) -> dict[str, Any]:
        digest = sha256_file(self.path)
        if expected_sha256 and digest != expected_sha256.lower():
            raise PreferenceDataError(
                f"{self.path} ({self.location}): sha256 {digest}, expected {expected_sha256}; "
                "the file is not the one this run was pinned to"
            )
        return {
            "kind": self.kind,
            "location": self.location,
            "revision": self.revision,
            "file": self.path.name,
            "sha256": digest,
            "expected_sha256": expected_sha256,
        }


def _looks_like_repo_id(value: str) -> bool:
    parts = value.split("/")
    return len(parts) == 2 and all(parts) and not value.startswith((".", "~"))


def resolve_file(path_or_repo: str, filename: str, revision: str | None, what: str) -> ResolvedFile:
    """A local file (or a folder holding ``filename``), else ``filename`` from a hub dataset repo.

    Hub files go through ``huggingface_hub``'s cache, so a second run at the same revision is offline.
    """
    local = Path(path_or_repo).expanduser()
    if local.is_dir():
        local = local / filename
        if not local.is_file():
            raise PreferenceDataError(f"{what}: {local} not found (the folder must hold {filename})")
    if local.is_file():
        return ResolvedFile(local.resolve(), "local", str(local.resolve()))
    if not _looks_like_repo_id(path_or_repo):
        raise PreferenceDataError(
            f"{what}={path_or_repo!r}: no such file or folder, and not a Hugging Face repository id "
            "(org/name)"
        )
    from huggingface_hub import hf_hub_download

    try:
        downloaded = hf_hub_download(
            repo_id=path_or_repo, filename=filename, repo_type="dataset", revision=revision
        )
    except Exception as err:  # noqa: BLE001 - network, auth and offline errors all end here
        raise PreferenceDataError(
            f"{what}: could not get {filename} from the Hub dataset {path_or_repo} at revision {revision} "
            f"({type(err).__name__}: {err}). Offline? Pass a local copy instead: {what}=PATH"
        ) from err
    return ResolvedFile(Path(downloaded), "hub", f"hf://datasets/{path_or_repo}/{filename}", revision)


def _read_records(path: Path) -> Iterable[tuple[str, Any]]:
    """(row label, record) for a JSON array or a JSON-lines file."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise PreferenceDataError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from err
        for index, record in enumerate(records):
            yield f"{path}[{index}]", record
        return
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise PreferenceDataError(f"{path}:{line_no}: not valid JSON ({err.msg})") from err
        yield f"{path}:{line_no}", record


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


def read_dpo_mix_en(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every row of a ShareGPT preference file (JSON array or JSON lines) in TRL's format."""
    return [sharegpt_to_trl(record, where) for where, record in _read_records(Path(path))]


def read_saa(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every row of a ``saa.jsonl`` file (or a folder holding one) in TRL's format."""
    p = Path(path)
    if p.is_dir():
        p = p / SAA_FILE
    return [saa_to_trl(record, where) for where, record in _read_records(p)]


# ------------------------------------------------------------------------------------- filters
def drop_unusable(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Drop rows with no preference to learn (chosen == rejected) or an empty response."""
    kept, counts = [], {DROP_IDENTICAL: 0, DROP_EMPTY: 0}
    for row in rows:
        chosen, rejected = row["chosen"][0]["content"], row["rejected"][0]["content"]
        if not chosen.strip() or not rejected.strip():
            counts[DROP_EMPTY] += 1
        elif chosen == rejected:
            counts[DROP_IDENTICAL] += 1
        else:
            kept.append(row)
    return kept, counts


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


def drop_too_long(
    rows: list[dict[str, Any]], tokenizer: Any, max_length: int
) -> tuple[list[dict[str, Any]], int]:
    """Keep the rows whose prompt + chosen and prompt + rejected both fit in ``max_length`` tokens."""
    kept = [row for row in rows if max(sequence_lengths(row, tokenizer)) <= max_length]
    return kept, len(rows) - len(kept)


# ------------------------------------------------------------------------------------- mixture
def mixture_counts(sizes: Mapping[str, int], fractions: Mapping[str, float]) -> dict[str, int]:
    """Rows to take from each set so shares match ``fractions`` and no set is oversampled."""
    total_weight = sum(fractions.values())
    weights = {name: fractions[name] / total_weight for name in sizes}
    capacity = min(sizes[name] / w for name, w in weights.items() if w > 0)
    return {name: min(sizes[name], math.floor(w * capacity + 1e-9)) for name, w in weights.items()}


def mix(
    by_source: Mapping[str, list[dict[str, Any]]], fractions: list[float] | None, seed: int
) -> dict[str, list[dict[str, Any]]]:
    """The rows each set contributes: all of them, or a seeded sample in the requested shares."""
    if fractions is None:
        return {name: list(rows) for name, rows in by_source.items()}
    counts = mixture_counts(
        {n: len(r) for n, r in by_source.items()}, dict(zip(by_source, fractions, strict=True))
    )
    rng = random.Random(seed)
    out = {}
    for name, rows in by_source.items():
        order = list(range(len(rows)))
        rng.shuffle(order)
        out[name] = [rows[i] for i in sorted(order[: counts[name]])]
    return out


# ----------------------------------------------------------------------------------- the dataset
@dataclass
class PreparedData:
    """The training rows and what went into them (written as ``data_manifest.json``)."""

    rows: list[dict[str, Any]]
    manifest: dict[str, Any] = field(default_factory=dict)

    def to_dataset(self):
        import datasets

        return datasets.Dataset.from_list(self.rows)


def _load_source(name: str, args: DataArguments) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if name == "dpo_mix_en":
        resolved = resolve_file(args.dpo_mix_en_path, args.dpo_mix_en_file, args.dpo_mix_en_revision, name)
        provenance = resolved.provenance(args.dpo_mix_en_sha256)
        return read_dpo_mix_en(resolved.path), provenance
    if name == "saa":
        assert args.saa_path is not None
        resolved = resolve_file(args.saa_path, SAA_FILE, args.saa_revision, name)
        provenance = resolved.provenance(args.saa_sha256)
        return read_saa(resolved.path), provenance
    raise PreferenceDataError(f"unknown dataset {name!r}")


def prepare_preference_data(
    args: DataArguments, tokenizer: Any, max_length: int, template: ChatTemplateChoice
) -> PreparedData:
    """Read, convert, filter and mix the configured sets; the manifest counts every dropped row."""
    sources: dict[str, dict[str, Any]] = {}
    usable: dict[str, list[dict[str, Any]]] = {}
    for name in args.datasets:
        rows, provenance = _load_source(name, args)
        if not rows:
            raise PreferenceDataError(f"{name}: {provenance['location']} holds no rows")
        kept, dropped = drop_unusable(rows)
        for row in kept:
            row["prompt"] = conform_messages(row["prompt"], template.policy)
        kept, dropped[DROP_TOO_LONG] = drop_too_long(kept, tokenizer, max_length)
        usable[name] = kept
        sources[name] = provenance | {"rows_read": len(rows), "dropped": dropped, "rows_kept": len(kept)}
        logger.info("%s: %d rows read, %d kept, dropped %s", name, len(rows), len(kept), dropped)
        if not kept:
            raise PreferenceDataError(
                f"{name}: none of the {len(rows)} rows in {provenance['location']} is usable "
                f"(dropped: {dropped}; max_length={max_length})"
            )
    chosen = mix(usable, args.mixture_fractions, args.mixture_seed)
    rows = [row for name in args.datasets for row in chosen[name]]
    for name in args.datasets:
        sources[name]["rows_used"] = len(chosen[name])
    manifest = {
        "datasets": list(args.datasets),
        "sources": sources,
        "rows_per_source": {name: len(chosen[name]) for name in args.datasets},
        "rows_total": len(rows),
        "mixture": {"fractions": args.mixture_fractions, "seed": args.mixture_seed},
        "max_length": max_length,
        "chat_template": template.as_dict(),
    }
    return PreparedData(rows, manifest)


def write_manifest(manifest: Mapping[str, Any], output_dir: str | os.PathLike[str]) -> Path:
    path = Path(output_dir) / "data_manifest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path
