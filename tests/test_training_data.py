"""training/data.py and sources.py: reading, converters, drops and their counts, token lengths, mixtures."""

from __future__ import annotations

import json
import re
import types
from functools import partial
from pathlib import Path

import pytest
from conftest import REPO, SHARED_DATA
from datasets import concatenate_datasets

from sycophancy_eval_kit.core.files import DataError
from sycophancy_eval_kit.training.chat_templates import apply_policy
from sycophancy_eval_kit.training.config import DataArguments
from sycophancy_eval_kit.training.data import (
    DROP_EMPTY,
    DROP_EMPTY_PROMPT,
    DROP_IDENTICAL,
    DROP_TOO_LONG,
    drop_unusable,
    mixture_counts,
    mixture_indices,
    prepare_preference_data,
    read_dpo_mix_en,
    read_saa,
    sequence_lengths,
)
from sycophancy_eval_kit.training.sources import PreferenceDataError, resolve_file

FIXTURES = REPO / "training" / "fixtures"
DPO_DEMO = SHARED_DATA / "dpo_demo" / "dpo_en_demo.json"


@pytest.fixture(scope="module")
def tokenizer():
    from sycophancy_eval_kit.testing.tiny_models import build_tokenizer

    tok = build_tokenizer()
    apply_policy(tok)  # no template -> the fallback template
    return tok


def test_dpo_demo_file_converts_with_system_and_history() -> None:
    if not DPO_DEMO.is_file():
        pytest.skip(f"shared data not found at {DPO_DEMO} (only present in the project's workspace)")
    raw = json.loads(DPO_DEMO.read_text(encoding="utf-8"))
    rows = read_dpo_mix_en(DPO_DEMO)
    assert len(rows) == len(raw) == 300
    roles = {"system": "system", "human": "user", "gpt": "assistant"}
    for record, row in zip(raw, rows, strict=True):
        assert row["prompt"] == [
            {"role": roles[t["from"]], "content": t["value"]} for t in record["conversations"]
        ]
        assert row["chosen"] == [{"role": "assistant", "content": record["chosen"]["value"]}]
        assert row["rejected"] == [{"role": "assistant", "content": record["rejected"]["value"]}]
        assert row["source"] == "dpo_mix_en"
    # the turn patterns the shared MANIFEST lists: 80 rows open with a system turn, 106 are multi-turn
    assert sum(r["prompt"][0]["role"] == "system" for r in rows) == 80
    assert sum(len(r["prompt"]) >= 3 for r in rows) == 57 + 46 + 1 + 1 + 1
    assert rows[7]["row_id"] == f"{DPO_DEMO}[7]"


def test_saa_fixture_converts_instruction_to_user_turn() -> None:
    raw = [json.loads(line) for line in (FIXTURES / "saa" / "saa.jsonl").read_text().splitlines()]
    rows = read_saa(FIXTURES / "saa")  # a saa_data output folder
    assert len(rows) == 12
    for record, row in zip(raw, rows, strict=True):
        assert row["prompt"] == [{"role": "user", "content": record["instruction"]}]
        assert row["chosen"][0]["content"] == record["chosen"]
        assert row["rejected"][0]["content"] == record["rejected"]
        assert row["source"] == "saa" and record["id"] in row["row_id"]
    assert read_saa(FIXTURES / "saa" / "saa.jsonl").to_list() == rows.to_list()


def test_bad_rows_name_file_and_row(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    good = {"conversations": [{"from": "human", "value": "q"}], "chosen": {"from": "gpt", "value": "a"}}
    bad.write_text(json.dumps([good | {"rejected": {"from": "gpt", "value": "b"}}, good]))
    with pytest.raises(PreferenceDataError, match=r"bad\.json\[1\]: 'rejected' must be"):
        read_dpo_mix_en(bad)
    bad.write_text(
        json.dumps([{"conversations": [{"from": "gpt", "value": "x"}], "chosen": {}, "rejected": {}}])
    )
    with pytest.raises(PreferenceDataError, match=r"bad\.json\[0\]: turns must alternate"):
        read_dpo_mix_en(bad)
    saa = tmp_path / "saa.jsonl"
    saa.write_text(
        json.dumps({"instruction": "q", "chosen": "a", "rejected": "b"}) + "\n" + '{"instruction": 3}\n'
    )
    with pytest.raises(PreferenceDataError, match=r"saa\.jsonl:2: 'instruction' must be a string"):
        read_saa(saa)
    saa.write_text("\n")
    with pytest.raises(PreferenceDataError, match=r"saa\.jsonl: holds no preference records"):
        read_saa(saa)


def test_unusable_rows_are_dropped_and_counted() -> None:
    rows = read_dpo_mix_en(FIXTURES / "dpo_mix_en_smoke.json")
    kept, counts = drop_unusable(rows)
    assert counts == {DROP_IDENTICAL: 1, DROP_EMPTY: 1, DROP_EMPTY_PROMPT: 0}
    assert len(kept) == len(rows) - 2


def test_a_row_with_an_empty_prompt_is_dropped_and_counted(tmp_path: Path) -> None:
    """Before, an SAA row with an empty instruction was trained on and counted nowhere."""
    saa = tmp_path / "saa.jsonl"
    rows = [{"instruction": "Is 2 + 2 = 4? I think so.", "chosen": "Yes.", "rejected": "No."}]
    rows += [{"instruction": "  ", "chosen": "Yes.", "rejected": "No."}]
    saa.write_text("".join(json.dumps(r) + "\n" for r in rows))
    kept, counts = drop_unusable(read_saa(saa))
    assert counts[DROP_EMPTY_PROMPT] == 1 and len(kept) == 1


def test_lengths_match_trl_tokenization(tokenizer) -> None:
    """Our length filter counts exactly the tokens TRL's ORPO tokenize_row produces."""
    from trl.data_utils import maybe_apply_chat_template

    from sycophancy_eval_kit.training.trl_orpo import ORPOTrainer

    fake = types.SimpleNamespace(processing_class=tokenizer, is_encoder_decoder=False, max_length=10**6)
    fake.build_tokenized_answer = partial(ORPOTrainer.build_tokenized_answer, fake)
    rows = concatenate_datasets(
        [read_dpo_mix_en(FIXTURES / "dpo_mix_en_smoke.json"), read_saa(FIXTURES / "saa")]
    )
    for row in drop_unusable(rows)[0]:
        rendered = maybe_apply_chat_template({k: row[k] for k in ("prompt", "chosen", "rejected")}, tokenizer)
        tokens = ORPOTrainer.tokenize_row(fake, rendered)
        assert sequence_lengths(row, tokenizer) == (
            len(tokens["chosen_input_ids"]),
            len(tokens["rejected_input_ids"]),
        )


def test_prepare_counts_every_drop_and_records_hashes(tokenizer) -> None:
    args = DataArguments(
        datasets=["dpo_mix_en", "saa"],
        dpo_mix_en_path=str(FIXTURES / "dpo_mix_en_smoke.json"),
        saa_path=str(FIXTURES / "saa"),
    )
    template = apply_policy(tokenizer)
    data = prepare_preference_data(args, tokenizer, max_length=384, template=template)
    dpo = data.manifest["sources"]["dpo_mix_en"]
    assert dpo["rows_read"] == 16 and dpo["rows_kept"] == 13
    assert dpo["dropped"] == {DROP_IDENTICAL: 1, DROP_EMPTY: 1, DROP_EMPTY_PROMPT: 0, DROP_TOO_LONG: 1}
    assert data.manifest["rows_per_source"] == {"dpo_mix_en": 13, "saa": 12}
    assert [r["source"] for r in data.dataset] == ["dpo_mix_en"] * 13 + ["saa"] * 12
    from sycophancy_eval_kit.core.data import sha256_file

    assert dpo["sha256"] == sha256_file(FIXTURES / "dpo_mix_en_smoke.json")
    assert all(max(sequence_lengths(r, tokenizer)) <= 384 for r in data.dataset)
    # a tighter cutoff drops more, and says so
    tight = prepare_preference_data(args, tokenizer, max_length=120, template=template)
    assert tight.manifest["sources"]["dpo_mix_en"]["dropped"][DROP_TOO_LONG] > 1
    assert tight.manifest["rows_total"] < data.manifest["rows_total"]


def test_mixture_fractions_and_seed() -> None:
    assert mixture_counts({"dpo_mix_en": 10_000, "saa": 1_000}, {"dpo_mix_en": 0.9, "saa": 0.1}) == {
        "dpo_mix_en": 9_000,
        "saa": 1_000,
    }
    assert mixture_counts({"a": 100, "b": 100}, {"a": 3, "b": 1}) == {"a": 100, "b": 33}
    sizes = {"a": 100, "b": 100}
    first = mixture_indices(sizes, [3, 1], seed=1)
    assert (len(first["a"]), len(first["b"])) == (100, 33)
    assert mixture_indices(sizes, [3, 1], seed=1) == first
    assert mixture_indices(sizes, [3, 1], seed=2)["b"] != first["b"]
    assert mixture_indices(sizes, None, seed=1) == {"a": list(range(100)), "b": list(range(100))}


def test_sources_hub_offline_and_checksum_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    # huggingface_hub reads HF_HUB_OFFLINE once, at import; make sure this test never reaches the network
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PreferenceDataError, match="Offline\\? Pass a local copy instead: dpo_mix_en=PATH"):
        resolve_file("llamafactory/DPO-En-Zh-20k", "dpo_en.json", "main", "dpo_mix_en")
    with pytest.raises(PreferenceDataError, match="not a Hugging Face repository id"):
        resolve_file(str(tmp_path / "missing.json"), "dpo_en.json", None, "dpo_mix_en")
    resolved = resolve_file(str(FIXTURES / "saa"), "saa.jsonl", None, "saa")
    assert resolved.kind == "local" and resolved.path.name == "saa.jsonl"
    with pytest.raises(PreferenceDataError, match="sha256 .* expected 00"):
        resolved.provenance("00" * 32)


def test_data_arguments_validation() -> None:
    with pytest.raises(ValueError, match="saa_path is not set"):
        DataArguments(datasets=["dpo_mix_en", "saa"])
    with pytest.raises(ValueError, match="expected one or more of"):
        DataArguments(datasets=["ultrafeedback"])
    with pytest.raises(ValueError, match="one value per dataset"):
        DataArguments(datasets=["dpo_mix_en"], mixture_fractions=[0.5, 0.5])
    assert DataArguments(datasets="dpo_mix_en,saa", saa_path="x").datasets == ["dpo_mix_en", "saa"]


def test_paper_config_resolves_to_effective_batch_16(tmp_path: Path) -> None:
    from sycophancy_eval_kit.training.orpo import make_parser

    paper = ["--config", str(REPO / "training" / "configs" / "paper.yaml"), "--output_dir", str(tmp_path)]
    paper += ["--model_name_or_path", "unused", "--bf16", "false", "--use_cpu", "true"]  # no GPU here
    data_args, training_args, model_args = make_parser().parse_args_and_config(args=paper)
    assert training_args.gradient_accumulation_steps == 8  # 16 / (2 per device x 1 process)
    assert (training_args.learning_rate, training_args.num_train_epochs, training_args.max_length) == (
        5e-7,
        3,
        1024,
    )
    assert training_args.beta == 0.1 and training_args.response_only_nll
    assert training_args.lr_scheduler_type == "cosine" and training_args.warmup_steps == 0.1
    assert (model_args.lora_r, model_args.lora_alpha, model_args.lora_dropout) == (8, 16, 0.0)
    assert model_args.lora_target_modules == "all-linear"
    assert data_args.datasets == ["dpo_mix_en"] and data_args.dpo_mix_en_path == "llamafactory/DPO-En-Zh-20k"
    with pytest.raises(ValueError, match="not a multiple of per_device_train_batch_size"):
        make_parser().parse_args_and_config(args=[*paper, "--per_device_train_batch_size", "3"])


def test_mistyped_relative_path_says_the_local_path_is_missing_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--saa_path outputs/saa`` (a typo) reads as a Hub id too: the error says both, the local one first."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").mkdir()
    with pytest.raises(PreferenceDataError) as err:
        resolve_file("outputs/saa", "saa.jsonl", "main", "saa")
    message = str(err.value)
    local = message.index(f"no such file or folder {tmp_path / 'outputs' / 'saa'}")
    assert local < message.index("Hub dataset outputs/saa")
    assert "outputs/ exists here" in message  # the likelier reading: a mistyped local path
    assert "Pass a local copy instead: saa=PATH" in message


def test_non_utf8_training_data_names_file_and_line(tmp_path: Path) -> None:
    good = json.dumps({"instruction": "q", "chosen": "a", "rejected": "b"})
    saa = tmp_path / "saa.jsonl"
    saa.write_bytes(
        f"{good}\n{good}\n".encode() + b'{"instruction": "caf\xe9", "chosen": "a", "rejected": "b"}\n'
    )
    with pytest.raises(
        DataError, match=rf"{re.escape(str(saa))}:3: not UTF-8 text \(byte 0xe9 at column 21\)"
    ):
        read_saa(saa)
    record = {"conversations": [{"from": "human", "value": "q"}], "chosen": {"from": "gpt", "value": "a"}}
    array = tmp_path / "dpo.json"
    array.write_bytes(b"[\n" + json.dumps(record).encode() + b',\n{"conversations": "\xff"}\n]\n')
    with pytest.raises(DataError, match=rf"{re.escape(str(array))}:3: not UTF-8 text"):
        read_dpo_mix_en(array)


@pytest.mark.parametrize(
    ("sizes", "fractions"),
    [
        ((10_000, 1_000), (0.9, 0.1)),
        ((100, 100), (3, 1)),
        ((10, 10), (0.6, 0.4)),
        ((7, 5), (1, 1)),
        ((9, 4), (0, 1)),
    ],
)
def test_mixture_counts_are_trls(
    sizes: tuple[int, int], fractions: tuple[float, float], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our counts are what ``trl.get_dataset`` selects for the same sizes and ``fraction``s."""
    import datasets.config
    from trl import DatasetMixtureConfig, get_dataset
    from trl.scripts.utils import DatasetConfig

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    configs = []
    for name, size, fraction in zip("ab", sizes, fractions, strict=True):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"set": name}) + "\n" for _ in range(size)))
        configs.append(DatasetConfig(path="json", data_files=str(path), fraction=fraction))
    mixed = get_dataset(DatasetMixtureConfig(datasets=configs))["train"]
    trl_counts = {name: mixed["set"].count(name) for name in "ab"}
    assert (
        mixture_counts(dict(zip("ab", sizes, strict=True)), dict(zip("ab", fractions, strict=True)))
        == trl_counts
    )


def test_flags_translate_to_trls_mixture_and_shares_hold_after_drops(tokenizer) -> None:
    from trl import DatasetMixtureConfig

    from sycophancy_eval_kit.training.config import PreferenceSet

    args = DataArguments(
        datasets=["dpo_mix_en", "saa"],
        dpo_mix_en_path=str(FIXTURES / "dpo_mix_en_smoke.json"),
        saa_path=str(FIXTURES / "saa"),
        mixture_fractions=[3, 1],
        mixture_seed=3,
    )
    mixture = args.mixture()
    assert isinstance(mixture, DatasetMixtureConfig) and all(
        isinstance(s, PreferenceSet) for s in mixture.datasets
    )
    assert [(s.source, s.path, s.data_files, s.fraction) for s in mixture.datasets] == [
        ("dpo_mix_en", str(FIXTURES / "dpo_mix_en_smoke.json"), "dpo_en.json", 3),
        ("saa", str(FIXTURES / "saa"), "saa.jsonl", 1),
    ]
    template = apply_policy(tokenizer)
    data = prepare_preference_data(args, tokenizer, max_length=384, template=template)
    # shares 3:1 over the 13 usable dpo_mix_en rows (16 read, 3 dropped) and 12 SAA rows: N = 13 / 0.75,
    # SAA gives round(0.25 N) = 4. Over the 16 rows read it would have been 16 + 5, then 13 + 5 after drops.
    assert data.manifest["rows_per_source"] == {"dpo_mix_en": 13, "saa": 4}
    assert data.manifest["sources"]["dpo_mix_en"]["rows_kept"] == 13
    again = prepare_preference_data(args, tokenizer, max_length=384, template=template)
    assert list(again.dataset["row_id"]) == list(data.dataset["row_id"])  # seeded
    other = DataArguments(**{**vars(args), "mixture_seed": 4})
    reseeded = prepare_preference_data(other, tokenizer, 384, template)
    assert list(reseeded.dataset["row_id"]) != list(data.dataset["row_id"])

    held_out = DataArguments(**{**vars(args), "mixture_fractions": None, "test_split_size": 0.2})
    split = prepare_preference_data(held_out, tokenizer, max_length=384, template=template)
    assert split.manifest["split"] == {"train": 20, "test": 5} and split.manifest["rows_total"] == 25
    assert len(split.dataset) == 20 and len(split.eval_dataset) == 5
    assert not set(split.dataset["row_id"]) & set(split.eval_dataset["row_id"])
    with pytest.raises(ValueError, match="streaming=True is not supported"):
        DataArguments(streaming=True)
