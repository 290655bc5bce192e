"""``SycophancyORPOTrainer``: TRL's ORPOTrainer with the paper's NLL term, per-source metrics, NaN stop.

Three changes, each small and each switchable or inert when unused:

* **Response-only NLL** (``response_only_nll``, on by default). TRL's ORPO adds a cross-entropy over
  the whole chosen sequence, prompt included. LLaMA-Factory, which the paper used, takes
  ``-mean_over_examples(mean log p(response token))``. On SAA rows the prompt holds the user's
  suggestion, so TRL's term would train the model to produce the very suggestion text it should learn
  to assess. The replacement reuses TRL's own per-example average log-probabilities (the values its
  odds-ratio term already uses), so it costs nothing extra.
* **Per-source metrics.** With a ``source`` column (``dpo_mix_en`` / ``saa``), rewards, accuracies and
  log-odds are also logged as ``<source>/rewards/accuracies`` etc., summed across processes so every
  rank takes part in the same collective whatever its batch holds.
* **Non-finite loss stop.** A NaN or infinite loss raises :class:`NonFiniteLossError` naming the step and
  the batch's rows, before the backward pass can write NaNs into the weights.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F

from sycophancy_eval_kit.training.trl_orpo import ORPOTrainer, log1mexp

SOURCE_COLUMN = "source"
ROW_ID_COLUMN = "row_id"

#: per-example statistics summed per source, in this column order.
_STATS = ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "log_odds_chosen", "log_odds_ratio")


class NonFiniteLossError(RuntimeError):
    """The ORPO loss became NaN or infinite; training stops instead of corrupting the weights."""


def per_source_sums(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    source_index: torch.Tensor,
    n_sources: int,
    beta: float,
) -> torch.Tensor:
    """``[n_sources, len(_STATS) + 1]`` sums of each statistic per source; the last column is the count.

    The statistics are TRL's, per example: rewards are ``beta * logp`` (length-averaged log-probability
    of the response), accuracy is chosen reward > rejected reward, ``log_odds_chosen`` is the log odds
    ratio and ``log_odds_ratio`` its log-sigmoid. Means are sums / counts, so the denominator of every
    per-source metric is the number of that source's examples in the batch, over all processes.
    """
    chosen = chosen_logps.detach().float()
    rejected = rejected_logps.detach().float()
    log_odds = (chosen - rejected) - (log1mexp(chosen) - log1mexp(rejected))
    chosen_rewards, rejected_rewards = beta * chosen, beta * rejected
    per_example = torch.stack(
        [
            chosen_rewards,
            rejected_rewards,
            (chosen_rewards > rejected_rewards).float(),
            log_odds,
            F.logsigmoid(log_odds),
            torch.ones_like(chosen),
        ],
        dim=1,
    )
    one_hot = F.one_hot(source_index.to(per_example.device), n_sources).to(per_example.dtype)
    return one_hot.T @ per_example


def metrics_from_sums(sums: torch.Tensor, names: list[str], prefix: str = "") -> dict[str, float]:
    """Per-source means from :func:`per_source_sums` output; sources absent from the batch are skipped."""
    out: dict[str, float] = {}
    for row, name in zip(sums.tolist(), names, strict=True):
        count = row[-1]
        if count <= 0:
            continue
        values = dict(zip(_STATS, (v / count for v in row[:-1]), strict=True))
        for key, value in values.items():
            out[f"{prefix}{name}/{key}"] = value
        out[f"{prefix}{name}/rewards/margins"] = values["rewards/chosen"] - values["rewards/rejected"]
    return out


class SycophancyORPOTrainer(ORPOTrainer):
    """ORPOTrainer with response-only NLL, per-source metrics and a clear stop on a non-finite loss.

    Takes the same arguments as ``ORPOTrainer``; ``args`` is a ``SycophancyORPOConfig`` (a plain
    ``ORPOConfig`` works too: its missing ``response_only_nll`` counts as on).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names: set[str] = set()
        for dataset in (self.train_dataset, self.eval_dataset):
            for ds in dataset.values() if isinstance(dataset, dict) else [dataset]:
                if ds is not None and SOURCE_COLUMN in ds.column_names:
                    names.update(ds[SOURCE_COLUMN])
        self.source_names: list[str] = sorted(names)
        self._last_logps: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def response_only_nll(self) -> bool:
        return bool(getattr(self.args, "response_only_nll", True))

    def concatenated_forward(self, model, batch):
        """TRL's forward pass; with ``response_only_nll`` its NLL output is replaced (see module doc)."""
        outputs = super().concatenated_forward(model, batch)
        chosen_logps, rejected_logps = outputs[0], outputs[1]
        self._last_logps = (chosen_logps.detach(), rejected_logps.detach())
        if self.response_only_nll:
            # TRL's chosen_logps are per-example means over response tokens (labels mask the prompt).
            outputs = (*outputs[:4], -chosen_logps.mean(), *outputs[5:])
        return outputs

    def get_batch_loss_metrics(
        self, model, batch: dict[str, Any], train_eval: Literal["train", "eval"] = "train"
    ):
        loss, metrics = super().get_batch_loss_metrics(model, batch, train_eval=train_eval)
        sources = batch.get(SOURCE_COLUMN)
        if self.source_names and sources is not None and self._last_logps is not None:
            index = torch.tensor([self.source_names.index(s) for s in sources], dtype=torch.long)
            sums = per_source_sums(*self._last_logps, index, len(self.source_names), self.beta)
            sums = self.accelerator.reduce(sums.to(self.accelerator.device), reduction="sum")
            prefix = "eval_" if train_eval == "eval" else ""
            metrics.update(metrics_from_sums(sums.cpu(), self.source_names, prefix))
        self._last_logps = None
        return loss, metrics

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        result = super().compute_loss(
            model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )
        loss = result[0] if return_outputs else result
        if not torch.isfinite(loss.detach()).all():
            raise NonFiniteLossError(self._non_finite_message(loss, inputs))
        return result

    def _non_finite_message(self, loss: torch.Tensor, inputs: dict[str, Any]) -> str:
        stored = self._stored_metrics["train"]
        recent = {k: stored[k][-1] for k in ("nll_loss", "log_odds_ratio", "logps/chosen") if stored.get(k)}
        rows = inputs.get(ROW_ID_COLUMN) or ["(no row_id column)"]
        return (
            f"Non-finite ORPO loss ({loss.detach().float().item()}) at optimizer step "
            f"{self.state.global_step + 1} (epoch {self.state.epoch or 0:.2f}, process "
            f"{self.accelerator.process_index}); this batch's terms: {recent}; its rows: {list(rows)}. "
            f"Training stopped before the update; checkpoints already in {self.args.output_dir} are kept. "
            "Usual causes: a learning rate too high for the model, fp16 overflow (use bf16), or a row whose "
            "response is empty after truncation (training/data.py drops rows longer than max_length)."
        )
