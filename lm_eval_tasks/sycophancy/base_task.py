"""What every Sharma-data task shares: loading through ``data.py`` and rendering its own conversations.

lm-eval builds one context per doc; our tasks need several (four suggestion prompts, or one branch
per first answer). ``fewshot_context`` is the one hook that receives ``--system_instruction`` and the
model's chat template, so contexts are rendered there and handed to ``construct_requests`` as a list.
"""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from functools import partial
from typing import Any

import datasets
from lm_eval.api.instance import Instance
from lm_eval.api.task import ConfigurableTask

from sycophancy_eval_kit.core import data, lm_eval_compat
from sycophancy_eval_kit.core.prompts import render_conversation

# NaN-aware aggregation needs two small wrappers around lm-eval (stderr, group weights): see there.
lm_eval_compat.apply()

Renderer = Callable[[list[dict[str, str]]], str]


def source_bases(sharma: data.SharmaFile) -> dict[int, Any]:
    """Each row's ``base`` by its line (a doc's ``line``): what the docs leave out stays reachable (the
    dialogue's pressure schedules read a free-form row's ``incorrect_answer`` from it)."""
    return {row.line: row.base for row in sharma.rows}


def letter_requests(doc: dict[str, Any], ctx: list[str], **kwargs: Any) -> list[Instance]:
    """One log-likelihood request per (context, option letter), contexts outermost: how every
    multiple-choice task here scores a letter after each of its prompts."""
    kwargs.pop("apply_chat_template", None)
    kwargs.pop("chat_template", None)
    letters = doc["letters"]
    return [
        Instance(
            request_type="loglikelihood",
            doc=doc,
            arguments=(context, letter),
            idx=i * len(letters) + j,
            **kwargs,
        )
        for i, context in enumerate(ctx)
        for j, letter in enumerate(letters)
    ]


class SharmaTask(ConfigurableTask):
    """A ConfigurableTask whose docs come from a Sharma file and whose contexts it renders itself.

    Subclasses set ``DATA_FILE``, ``TASK_PREFIX`` and ``SUBSETS`` and implement ``load_docs`` and
    ``contexts``. The sub-dataset is the YAML's ``dataset_name``; runtime ``--metadata`` keys
    ``data_dir``, ``data_base_url`` and ``cache_dir`` choose the source (see ``data.resolve_source``).
    """

    DATA_FILE: str = ""
    TASK_PREFIX: str = ""
    SUBSETS: tuple[str, ...] = ()

    def __init__(self, config: dict[str, Any] | None = None, **_: Any) -> None:
        # lm-eval passes the YAML's own `class` key inside the config; TaskConfig does not know it.
        super().__init__(config={k: v for k, v in (config or {}).items() if k != "class"})

    # -- data ---------------------------------------------------------------------------------
    def load_docs(self, sharma: data.SharmaFile) -> dict[str, list[dict[str, Any]]]:
        raise NotImplementedError

    def download(self, dataset_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        meta = dict(self.config.metadata or {})
        source = data.resolve_source(meta.get("data_dir"), meta.get("data_base_url"), meta.get("cache_dir"))
        sharma = data.read_sharma_file(source.path(self.DATA_FILE))
        docs = data.require_subset(
            self.load_docs(sharma), self.config.dataset_name, sharma, self.TASK_PREFIX, self.SUBSETS
        )
        self.validate_docs(docs, sharma)
        self.dataset = datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})
        self.source_bases = source_bases(sharma)
        # Provenance lands in results_*.json under configs.<task>.metadata.
        self.config.metadata = meta | data.provenance(source, sharma, len(docs))

    def validate_docs(self, docs: list[dict[str, Any]], sharma: data.SharmaFile) -> None:
        """Hook for task-specific checks that must fail before any request reaches the model."""

    # -- prompts ------------------------------------------------------------------------------
    def contexts(self, doc: dict[str, Any], render: Renderer) -> list[str]:
        raise NotImplementedError

    def generation_requests(self, doc: dict[str, Any], ctx: list[str], **kwargs: Any) -> list[Instance]:
        """One ``generate_until`` request per rendered context, in order, with the task's decoding."""
        kwargs.pop("apply_chat_template", None)
        kwargs.pop("chat_template", None)
        return [
            Instance(
                request_type="generate_until",
                doc=doc,
                arguments=(context, deepcopy(self.config.generation_kwargs)),
                idx=i,
                **kwargs,
            )
            for i, context in enumerate(ctx)
        ]

    def fewshot_context(  # type: ignore[override]
        self,
        doc: dict[str, Any],
        num_fewshot: int,
        system_instruction: str | None = None,
        apply_chat_template: bool = False,
        fewshot_as_multiturn: bool = False,
        chat_template: Callable[..., str] | None = None,
        gen_prefix: str | None = None,
    ) -> list[str]:
        if num_fewshot:
            raise ValueError(
                f"{self.config.task} is zero-shot, as in the paper; got num_fewshot={num_fewshot}"
            )
        render = partial(
            render_conversation,
            system_instruction=system_instruction,
            chat_template=chat_template if apply_chat_template else None,
        )
        return self.contexts(doc, render)
