"""The dataset card (``README.md`` with Hugging Face front matter) and the LLaMA-Factory entry.

Both are rendered from the build report only, with no clock or host details, so rebuilding from the
same inputs and seed gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

DATA_FILE = "saa.jsonl"
DATASET_NAME = "saa"

COLUMNS: dict[str, str] = {
    "id": "stable id of the BCT row the pair comes from (same in every build)",
    "instruction": "the BCT prompt, verbatim: question, suggestion sentence, options, instruction",
    "chosen": "the correct option, in the row's answer style",
    "rejected": "the named option when it is wrong, else a seeded random wrong option",
    "bct_index": "0-based line number in the BCT file",
    "source_dataset": "where the ground truth came from (names below)",
    "source_id": "the question's id in that source (ARC / OpenBookQA id, BBH file#idx)",
    "suggestion_polarity": "`for` or `against`: whether the sentence argues for the named option",
    "suggestion_reference": "`letter` or `text`: how the sentence names the option",
    "suggested_letter": "the option the sentence names (uppercase)",
    "correct_letter": "the ground-truth option (uppercase)",
    "rejected_letter": "the option in `rejected`",
    "suggestion_correct": "named option == ground truth (the paper's split)",
    "stance_correct": "the user is right: for the true option or against a wrong one (--polarity_aware)",
    "answer_style": "`continuation` (prompt ends `The best answer is: (`, answer `B) text`) or `full`",
}

CITATION = """@article{chua2024bias,
  title   = {Bias-Augmented Consistency Training Reduces Biased Reasoning in Chain-of-Thought},
  author  = {Chua, James and Rees, Edward and Batra, Hunar and Bowman, Samuel R. and Michael, Julian
             and Perez, Ethan and Turpin, Miles},
  journal = {arXiv preprint arXiv:2403.05518},
  year    = {2024}
}"""


def dataset_info(data_bytes: bytes) -> dict[str, Any]:
    """The LLaMA-Factory ``dataset_info.json`` entry (alpaca preference format)."""
    return {
        DATASET_NAME: {
            "file_name": DATA_FILE,
            "file_sha1": hashlib.sha1(data_bytes).hexdigest(),  # noqa: S324 (LLaMA-Factory's field)
            "formatting": "alpaca",
            "ranking": True,
            "columns": {"prompt": "instruction", "chosen": "chosen", "rejected": "rejected"},
        }
    }


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _size_category(n: int) -> str:
    return "n<1K" if n < 1000 else "1K<n<10K" if n < 10_000 else "10K<n<100K"


def render_card(records: Sequence[Mapping[str, Any]], report: Mapping[str, Any]) -> str:
    """The dataset card: what SAA is, how this copy was built, its counts, inputs and checks."""
    cfg = report["config"]
    split_key = "stance_correct" if cfg["polarity_aware"] else "suggestion_correct"
    by_source: Counter[tuple[str, bool]] = Counter((r["source_dataset"], r[split_key]) for r in records)
    sources = sorted({s for s, _ in by_source})
    source_rows = [
        [s, by_source[(s, True)], by_source[(s, False)], by_source[(s, True)] + by_source[(s, False)]]
        for s in sources
    ]
    source_rows.append(
        [
            "**total**",
            sum(r[split_key] for r in records),
            sum(not r[split_key] for r in records),
            len(records),
        ]
    )
    cells: Counter[tuple[str, bool]] = Counter(
        (r["suggestion_polarity"], r["suggestion_correct"]) for r in records
    )
    polarity_rows = [[p, cells[(p, True)], cells[(p, False)]] for p in ("for", "against")]
    styles = Counter(r["answer_style"] for r in records)
    funnel = report["counts"]
    screening, overlap = report["screening"], report["overlap"]
    inputs = report["inputs"]
    input_rows = [[i["name"], f"`{i['sha256']}`", i["matches_pinned"], i["origin"]] for i in inputs]
    mode = "polarity-aware" if cfg["polarity_aware"] else "default"
    split_rule = (
        "the user is right (a for-sentence naming the true option, or an against-sentence naming a wrong one)"
        if cfg["polarity_aware"]
        else "the named option is the ground truth, whatever the sentence's polarity (the paper's Table 1)"
    )
    front = "\n".join(
        [
            "---",
            "license: mit",
            "language:",
            "- en",
            "pretty_name: Sycophancy Answer Assessment (SAA)",
            "size_categories:",
            f"- {_size_category(len(records))}",
            "task_categories:",
            "- text-generation",
            "tags:",
            "- sycophancy",
            "- preference",
            "- dpo",
            "- orpo",
            "configs:",
            "- config_name: default",
            "  data_files:",
            "  - split: train",
            f"    path: {DATA_FILE}",
            "---",
        ]
    )
    excluded = funnel["excluded_no_ground_truth"]
    body = f"""
# Sycophancy Answer Assessment (SAA) preference set

{len(records)} preference pairs that teach a model to *assess* a user's suggested answer instead of
adopting it: the setup of *Navigating Alignment Pitfalls: Assessing Suggestions to Combat Sycophancy*.
Each prompt is a multiple-choice question from BCT's non-CoT training data (Chua et al. 2024) with one
inserted user suggestion naming an option, for or against it. **chosen** is always the correct option;
**rejected** is the suggested option when it is wrong, else a seeded random wrong option.

Built by `saa_data` (sycophancy-eval-kit): `{report["command"]}`

- split: {mode}; a pair counts as a *correct suggestion* when {split_rule}
- seed: {cfg["seed"]}; asked for {cfg["n_correct"]} correct- and {
        cfg["n_incorrect"]
    } incorrect-suggestion pairs
- answer styles: {
        styles.get("continuation", 0)
    } `continuation` (prompt ends `The best answer is: (`, answer `B) text`),
  {styles.get("full", 0)} `full` (answer `The best answer is: (B) text`), each following its BCT row

Load it with `datasets.load_dataset("json", data_files="{DATA_FILE}")`, or in LLaMA-Factory through
`dataset_info.json` (alpaca format, `ranking: true`).

## Counts

By source (correct / incorrect suggestion as used for the split):

{_table(["source_dataset", "correct", "incorrect", "total"], source_rows)}

By polarity and whether the named option is the ground truth (`suggestion_correct`):

{_table(["polarity", "named = truth", "named = wrong"], polarity_rows)}

From the BCT file to this set:

{
        _table(
            ["step", "rows"],
            [
                ["BCT rows parsed", funnel["parsed"]],
                ["repeats of an earlier prompt dropped (first kept)", funnel["duplicate_prompts_dropped"]],
                [
                    "no ground truth: stem not in the sources (e.g. ARC test split)",
                    excluded.get("no_source_match", 0),
                ],
                ["no ground truth: stem found with other options", excluded.get("option_set_mismatch", 0)],
                ["no ground truth: sources disagree", excluded.get("conflicting_answers", 0)],
                ["labelled", funnel["labelled"]],
                ["dropped by screening (--drop_flagged)", funnel["dropped_flagged"]],
                ["dropped for overlap with evaluation data (--exclude_overlap)", funnel["dropped_overlap"]],
                [
                    "eligible: correct / incorrect suggestion",
                    f"{funnel['eligible_correct']} / {funnel['eligible_incorrect']}",
                ],
                ["sampled", len(records)],
            ],
        )
    }

Sanity check of the ground truth: BCT's own answer (a model's answer to the unbiased prompt) agrees
with it on {funnel["bct_answer_agrees"]} of {funnel["labelled"]} labelled rows.

## Columns

{_table(["column", "meaning"], [[f"`{k}`", v] for k, v in COLUMNS.items()])}

`source_dataset` is one of: {", ".join(f"`{s}`" for s in report["source_datasets"])}.

## Screening and contamination

- PII and offensive language (`screening.json`): {screening["flagged_rows"]} of {screening["checked_rows"]}
  labelled rows flagged ({", ".join(f"{k}: {v}" for k, v in screening["hits_by_kind"].items()) or "no hits"});
  offensive-language detector: {screening["detectors"]["offensive"]}, threshold {
        screening["detectors"]["offensive_threshold"]
    }.
  {
        "Flagged rows were dropped before sampling."
        if cfg["drop_flagged"]
        else f"Not dropped; {funnel['selected_flagged']} of the sampled pairs are flagged."
    }
- Word {overlap["ngram"]}-gram overlap with the evaluation questions (`overlap.json`, Sharma et al.
  Answer + Are-You-Sure, source `{overlap["eval_data"]["source"]}`, {overlap["eval_questions"]} questions):
  {overlap["flagged_rows"]} of {overlap["checked_rows"]} labelled rows share an n-gram.
  {
        "Those rows were dropped before sampling."
        if cfg["exclude_overlap"]
        else f"Not dropped; {funnel['selected_overlap']} of the sampled pairs overlap."
    }

## Inputs

GitHub `raybears/cot-transparency` at commit `{report["commit"]}` (BCT file and ground-truth sources):

{_table(["file", "sha256", "matches pinned", "origin"], input_rows)}

## License and citation

MIT, as the BCT data it is built from (Copyright (c) 2023 Miles Turpin). The questions themselves come
from ARC (CC BY-SA 4.0), OpenBookQA (Apache-2.0) and BIG-Bench Hard (MIT); check their terms for your use.

```bibtex
{CITATION}
```
"""
    return front + "\n" + body


def dumps(obj: Any) -> str:
    """Stable JSON for reports: sorted keys, two-space indent, trailing newline."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
