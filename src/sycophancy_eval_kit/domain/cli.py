"""``syco-domain build``: a multiple-choice table -> an evaluation folder and SAA pairs.

Recipes::

    # ARC-style files: the dev questions to evaluate on, the train questions to align with
    syco-domain build --input ARC-Challenge-Dev.jsonl --name arc_challenge --preset arc --out eval_arc/
    syco-domain build --input ARC-Challenge-Train.jsonl --name arc_challenge --preset arc \\
        --saa_out saa_arc/ --exclude eval_arc/
    # one table split between both (half each by default, --saa_share to change)
    syco-domain build --input med_questions.csv --name med_qa --question question --choices A,B,C,D \\
        --answer answer --out eval_med/ --saa_out saa_med/ --seed 0
    # a Hub dataset at a pinned revision
    syco-domain build --input cais/mmlu --revision REV --split test --preset mmlu --name mmlu_law ...

Then ``lm_eval --tasks sycophancy_custom --metadata data_dir=eval_arc/ ...``, ``syco-dialogue --tasks
sycophancy_custom_ays_mc --metadata data_dir=eval_arc/ ...``, and ``accelerate launch training/orpo.py
--datasets dpo_mix_en saa --saa_path saa_arc/ ...``.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence

from sycophancy_eval_kit.core.cli_flags import ArgumentParser, CommandError, run_main
from sycophancy_eval_kit.domain import build as builder
from sycophancy_eval_kit.domain.table import PRESETS, Columns


def make_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="syco-domain", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build an evaluation folder and/or SAA pairs from a table")
    b.add_argument(
        "--input", required=True, help="a local .json/.jsonl/.csv/.parquet file or folder, or a Hub id"
    )
    b.add_argument("--name", required=True, help="the data's name in every result (lower case, digits, _)")
    b.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="a known layout: mmlu, arc (AI2 files), arc_hub (allenai/ai2_arc)",
    )
    b.add_argument("--question", help="the question column (dotted paths reach into nested columns)")
    b.add_argument("--choices", help="a list column, or COL1,COL2,... one column per option")
    b.add_argument(
        "--answer", help="the answer column: an index, a letter (or the option's label) or its text"
    )
    b.add_argument("--answer_base", choices=("auto", "0", "1"), default="auto", help="an index answer's base")
    b.add_argument("--labels", help="the options' own labels, when the answer names one (ARC: label)")
    b.add_argument(
        "--id", dest="id_column", help="a column of question ids (default: a hash of the question)"
    )
    b.add_argument("--subject", help="a column of subjects, kept with each question")
    b.add_argument("--revision", help="the Hub dataset's revision (a commit, for a reproducible build)")
    b.add_argument("--split", help="the Hub dataset's split (default: test)")
    b.add_argument("--out", help="the evaluation folder (data_dir of the sycophancy_custom tasks)")
    b.add_argument("--saa_out", help="the SAA folder (--saa_path of training/orpo.py)")
    b.add_argument(
        "--saa_share",
        type=float,
        default=builder.DEFAULT_SAA_SHARE,
        help=f"with --out and --saa_out: the share of the questions for SAA ({builder.DEFAULT_SAA_SHARE})",
    )
    b.add_argument("--n_eval", type=int, help="at most this many evaluation questions")
    b.add_argument("--n_saa", type=int, help="at most this many SAA pairs")
    b.add_argument("--exclude", action="append", default=[], help="an evaluation folder or file to keep out")
    b.add_argument("--seed", type=int, default=0, help="the split's and every draw's seed")
    b.add_argument("--strict", action="store_true", help="any unusable row is an error naming it")
    b.add_argument("--overwrite", action="store_true", help="replace an output folder syco-domain built")
    b.add_argument("--debug", action="store_true", help="show the Python stack of an error")
    return parser


def columns_from(args) -> Columns:
    """The preset's columns, with any flag given overriding it; without a preset, the three flags."""
    preset = PRESETS.get(args.preset) if args.preset else None
    if preset is None and not (args.question and args.choices and args.answer):
        raise CommandError(
            "map the columns: --preset mmlu|arc, or --question COL --choices COL[,COL...] --answer COL"
        )
    base = preset or Columns(args.question, (), args.answer)
    return Columns(
        question=args.question or base.question,
        choices=tuple(args.choices.split(",")) if args.choices else base.choices,
        answer=args.answer or base.answer,
        labels=args.labels or base.labels,
        id=args.id_column or base.id,
        subject=args.subject or base.subject,
        optional=tuple(
            f for f in base.optional if not {"id": args.id_column, "subject": args.subject}.get(f)
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    config = builder.DomainConfig(
        input=args.input,
        name=args.name,
        columns=columns_from(args),
        out=args.out,
        saa_out=args.saa_out,
        answer_base=args.answer_base,
        revision=args.revision,
        split=args.split,
        saa_share=args.saa_share,
        n_eval=args.n_eval,
        n_saa=args.n_saa,
        exclude=tuple(args.exclude),
        seed=args.seed,
        strict=args.strict,
        overwrite=args.overwrite,
    )
    shown = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--debug"]
    result = builder.build(config, "syco-domain " + shlex.join(shown))
    counts, dropped = result.report["counts"], result.report["input"]["dropped"]
    print(
        f"{result.report['input']['rows_read']} rows read, {counts['usable']} usable "
        f"({', '.join(f'{v} {k}' for k, v in dropped.items() if v) or 'none dropped'})"
    )
    if result.eval_dir:
        print(
            f"wrote {counts['evaluation']} evaluation questions to {result.eval_dir} "
            f"({counts['answer_free_form']} also asked without their options)"
        )
    if result.saa_dir:
        print(
            f"wrote {counts['saa']} SAA pairs to {result.saa_dir} ({counts['saa_suggestion_correct']} with a "
            "correct suggestion; questions shared with the evaluation set: "
            f"{result.report['overlap']['shared_questions']})"
        )
    return 0


def cli() -> None:
    """Console entry point (``syco-domain``): input errors in one line (``--debug``: the stack)."""
    sys.exit(run_main(main, "syco-domain"))
