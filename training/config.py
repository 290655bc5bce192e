"""Configuration dataclasses of the ORPO script, one per concern, parsed by ``TrlParser``.

``DataArguments`` says which preference sets to read and how to mix them: it is TRL's
``DatasetMixtureConfig`` (as ``trl/scripts/dpo.py`` puts it in its parser) whose ``datasets`` are our
set names, with per-set flags saying where each set is; ``mixture()`` translates them into TRL's
``DatasetConfig`` entries (``path``, ``data_files``, ``fraction``). ``SycophancyORPOConfig`` extends
TRL's ``ORPOConfig`` with what the paper's setup needs on top. The model and LoRA settings are TRL's own
``ModelConfig``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from trl import DatasetMixtureConfig
from trl.scripts.utils import DatasetConfig

from sycophancy_eval_kit.training.chat_templates import POLICIES
from sycophancy_eval_kit.training.trl_orpo import ORPOConfig

DATASET_NAMES: tuple[str, ...] = ("dpo_mix_en", "saa")
SAA_FILE = "saa.jsonl"

#: LLaMA-Factory's ``dpo_mix_en``: the Hugging Face dataset, the ``en`` subset's file, and the revision
#: we pin. The revision is the commit a published model card reports training on (the repository was
#: renamed from hiyouga/ to llamafactory/; commits survive a rename). Its file sha256 could not be
#: fetched from the development machine (no route to the Hub), so it is recorded in every run's
#: manifest and enforced only when ``dpo_mix_en_sha256`` is given.
DPO_MIX_EN_REPO = "llamafactory/DPO-En-Zh-20k"
DPO_MIX_EN_FILE = "dpo_en.json"
DPO_MIX_EN_REVISION = "e8c5070d6564025fcf206f38d796ae264e028004"


@dataclass
class PreferenceSet(DatasetConfig):
    """One preference set as a TRL ``DatasetConfig``, plus what a pinned, per-source run needs.

    ``path`` is a Hugging Face dataset repository or a local file or folder, ``data_files`` the file
    inside it, ``fraction`` TRL's target share. Added: ``source`` (the set's name: which converter reads
    it and the label of its per-source metrics), ``revision`` and the expected ``sha256`` of the file.
    """

    source: str = "dpo_mix_en"
    revision: str | None = None
    sha256: str | None = None


@dataclass
class DataArguments(DatasetMixtureConfig):
    r"""
    Which preference data to train on and how it is prepared: TRL's [`~trl.DatasetMixtureConfig`] with
    the sets named rather than spelled out, so one flag swaps a set's file.

    `datasets` differs from TRL's: a list of set names (`--datasets dpo_mix_en saa`), each located by
    its `*_path` flags; [`mixture`] gives the equivalent TRL mixture of [`PreferenceSet`] entries (TRL's
    `DatasetConfig` with `path`, `data_files` and `fraction`), which is what the data layer reads.

    Parameters:
        > Sources

        datasets (`list[str]`, *optional*, defaults to `["dpo_mix_en"]`):
            Preference sets to train on, any of `dpo_mix_en` and `saa`. The paper's "aligned" model uses
            `dpo_mix_en`, "aligned-SAA" uses both.
        dpo_mix_en_path (`str`, *optional*, defaults to `"llamafactory/DPO-En-Zh-20k"`):
            A Hugging Face dataset repository, or a local `.json`/`.jsonl` file in LLaMA-Factory's ShareGPT
            preference layout (`conversations`, `chosen`, `rejected`).
        dpo_mix_en_file (`str`, *optional*, defaults to `"dpo_en.json"`):
            The file inside the repository (the `en` subset). Ignored for a local path.
        dpo_mix_en_revision (`str`, *optional*, defaults to the pinned commit):
            Repository revision. Ignored for a local path.
        dpo_mix_en_sha256 (`str`, *optional*):
            Expected sha256 of the file; a mismatch stops the run. Recorded in the manifest either way.
        saa_path (`str`, *optional*):
            A `saa_data` output folder (holding `saa.jsonl`), a `saa.jsonl` file, or a Hugging Face
            dataset repository with `saa.jsonl` at its root.
        saa_revision (`str`, *optional*, defaults to `"main"`):
            Repository revision of a hub SAA set. Ignored for a local path.
        saa_sha256 (`str`, *optional*):
            Expected sha256 of `saa.jsonl`.

        > Mixture

        mixture_fractions (`list[float]`, *optional*):
            Target share of each set in `datasets` (same order): TRL's `DatasetConfig.fraction`, with
            TRL's rule (shares normalised to sum to one, the largest mixture that oversamples no set,
            `round(share * size)` rows per set), applied to the rows left after the drops. Unset: every
            row of every set.
        mixture_seed (`int`, *optional*, defaults to `42`):
            Seed of which rows a set contributes when `mixture_fractions` is set (TRL takes each set's
            first rows; a seeded sample, kept in file order, does not depend on how a file is sorted),
            and of the `test_split_size` split.
        test_split_size (`float`, *optional*):
            TRL's: hold out this share (or number) of the mixed rows as an evaluation split, evaluated
            when `eval_strategy` is not `"no"` (as `trl/scripts/dpo.py` does).
        streaming (`bool`, *optional*, defaults to `False`):
            TRL's; must stay `False`: rows are filtered by token length and mixed by count.

        > Chat template

        chat_template_policy (`str`, *optional*, defaults to `"auto"`):
            `auto`, `native`, `merge_system` or `fallback` (see `training/chat_templates.py`).
        chat_template_file (`str`, *optional*):
            A Jinja chat template that replaces the tokenizer's own.
    """

    datasets: list[str] = field(
        default_factory=lambda: ["dpo_mix_en"],
        metadata={"help": f"Preference sets to train on, any of {', '.join(DATASET_NAMES)}."},
    )
    dpo_mix_en_path: str = field(
        default=DPO_MIX_EN_REPO,
        metadata={"help": "Hub dataset repository or a local ShareGPT-layout .json/.jsonl file."},
    )
    dpo_mix_en_file: str = field(
        default=DPO_MIX_EN_FILE, metadata={"help": "File of the `en` subset inside the repository."}
    )
    dpo_mix_en_revision: str = field(
        default=DPO_MIX_EN_REVISION, metadata={"help": "Pinned repository revision (commit)."}
    )
    dpo_mix_en_sha256: str | None = field(
        default=None, metadata={"help": "Expected sha256 of the dpo_mix_en file (checked when set)."}
    )
    saa_path: str | None = field(
        default=None,
        metadata={"help": "saa_data output folder, a saa.jsonl file, or a hub dataset repository."},
    )
    saa_revision: str = field(default="main", metadata={"help": "Revision of a hub SAA repository."})
    saa_sha256: str | None = field(
        default=None, metadata={"help": "Expected sha256 of saa.jsonl (checked when set)."}
    )
    mixture_fractions: list[float] | None = field(
        default=None,
        metadata={"help": "Target share of each set in `datasets`; unset keeps every row of every set."},
    )
    mixture_seed: int = field(default=42, metadata={"help": "Seed of the mixture's row sampling."})
    test_split_size: float | None = field(
        default=None,
        metadata={
            "help": "Share (or number) of the mixed rows held out for evaluation (seeded by mixture_seed)."
        },
    )
    streaming: bool = field(
        default=False,
        metadata={"help": "TRL's streaming; not supported: rows are filtered by length and mixed by count."},
    )
    chat_template_policy: str = field(
        default="auto",
        metadata={"help": "How conversations meet the tokenizer's template.", "choices": list(POLICIES)},
    )
    chat_template_file: str | None = field(
        default=None, metadata={"help": "A Jinja chat template replacing the tokenizer's own."}
    )

    def __post_init__(self) -> None:
        # not TRL's __post_init__: it would read `datasets` entries as DatasetConfig mappings
        if isinstance(self.datasets, str):  # a YAML scalar or a comma-separated CLI value
            self.datasets = [name.strip() for name in self.datasets.split(",") if name.strip()]
        unknown = [name for name in self.datasets if name not in DATASET_NAMES]
        if unknown or not self.datasets:
            raise ValueError(
                f"datasets={self.datasets}; expected one or more of {', '.join(DATASET_NAMES)} (set names; "
                "say where each set is with dpo_mix_en_path / saa_path)"
            )
        if len(set(self.datasets)) != len(self.datasets):
            raise ValueError(f"datasets={self.datasets} names a set twice")
        if "saa" in self.datasets and not self.saa_path:
            raise ValueError("datasets includes saa but saa_path is not set (a saa_data output folder)")
        if self.mixture_fractions is not None:
            if len(self.mixture_fractions) != len(self.datasets):
                raise ValueError(
                    f"mixture_fractions={self.mixture_fractions} needs one value per dataset {self.datasets}"
                )
            if any(f < 0 for f in self.mixture_fractions) or sum(self.mixture_fractions) <= 0:
                raise ValueError(
                    f"mixture_fractions={self.mixture_fractions} must be >= 0 with a positive sum"
                )
        if self.streaming:
            raise ValueError(
                "streaming=True is not supported: rows are filtered by token length and mixed by count"
            )

    def mixture(self) -> DatasetMixtureConfig:
        """These flags as TRL's mixture: one :class:`PreferenceSet` per name, in ``datasets`` order."""
        fractions = self.mixture_fractions or [None] * len(self.datasets)
        located = {
            "dpo_mix_en": (
                self.dpo_mix_en_path,
                self.dpo_mix_en_file,
                self.dpo_mix_en_revision,
                self.dpo_mix_en_sha256,
            ),
            "saa": (self.saa_path, SAA_FILE, self.saa_revision, self.saa_sha256),
        }
        sets = []
        for name, fraction in zip(self.datasets, fractions, strict=True):
            path, data_files, revision, sha256 = located[name]
            sets.append(
                PreferenceSet(
                    path=path,
                    data_files=data_files,
                    fraction=fraction,
                    source=name,
                    revision=revision,
                    sha256=sha256,
                )
            )
        return DatasetMixtureConfig(datasets=sets, streaming=False, test_split_size=self.test_split_size)


@dataclass
class SycophancyORPOConfig(ORPOConfig):
    r"""
    [`~trl.experimental.orpo.ORPOConfig`] plus the paper's training setup.

    Parameters:
        > Loss

        response_only_nll (`bool`, *optional*, defaults to `True`):
            Compute ORPO's NLL term on response tokens only, averaged per example and then over the batch,
            as LLaMA-Factory (the paper's trainer) does. TRL's own NLL also covers the prompt, which here
            would train the model on the user's suggestion text. `False` restores TRL's term.

        > Batch

        effective_batch_size (`int`, *optional*):
            Examples per optimizer step over all processes. When set, `gradient_accumulation_steps` is
            derived as `effective_batch_size / (per_device_train_batch_size * processes)`, so a config
            gives the same optimisation on one GPU or eight; it must divide evenly. Unset:
            `gradient_accumulation_steps` is used as given (as in `ORPOConfig`).
    """

    response_only_nll: bool = field(
        default=True,
        metadata={
            "help": "NLL on response tokens only, as LLaMA-Factory computes it (TRL's includes the prompt)."
        },
    )
    effective_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Examples per optimizer step over all processes; derives gradient_accumulation_steps."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        launched = int(os.environ.get("WORLD_SIZE", "1"))
        if launched > 1 and self.world_size != launched:
            # accelerate's multi-GPU launcher starts the processes, but on a machine without GPUs they
            # only form one process group when the Trainer is told to use the CPU (gloo backend).
            raise RuntimeError(
                f"{launched} processes were launched but they joined a process group of {self.world_size}; "
                "on a machine without GPUs pass --use_cpu true so they train together over gloo"
            )
        if self.effective_batch_size is not None:
            per_step = self.train_batch_size * self.world_size
            if self.effective_batch_size % per_step:
                raise ValueError(
                    f"effective_batch_size={self.effective_batch_size} is not a multiple of "
                    f"per_device_train_batch_size ({self.per_device_train_batch_size}) x processes "
                    f"({self.world_size}) = {per_step}; change per_device_train_batch_size"
                )
            self.gradient_accumulation_steps = self.effective_batch_size // per_step
