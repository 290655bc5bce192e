"""``syco-saa build`` (``python -m sycophancy_eval_kit.saa_data build``): the command line over
:func:`sycophancy_eval_kit.saa_data.builder.build`.

Recipes::

    # the paper's 500 / 500 from the pinned cot-transparency files (downloaded once, sha256-checked)
    syco-saa build --out saa/
    # offline, from local copies; the polarity-aware variant; drop screened and overlapping rows
    syco-saa build --out saa_pa/ --bct bct_non_cot.jsonl --sources cot-transparency/data \\
        --polarity_aware --drop_flagged --exclude_overlap --eval_data_dir /path/to/sycophancy-eval
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from sycophancy_eval_kit.core.cli_flags import ArgumentParser, hub_repo_problem
from sycophancy_eval_kit.core.files import DataError
from sycophancy_eval_kit.saa_data.builder import BuildConfig, build
from sycophancy_eval_kit.saa_data.overlap import DEFAULT_NGRAM
from sycophancy_eval_kit.saa_data.screening import DEFAULT_OFFENSIVE_THRESHOLD


def make_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="saa_data", description="Build the SAA preference set from BCT data.")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build saa.jsonl, its dataset card and reports into --out")
    b.add_argument("--out", required=True, help="output folder (written atomically)")
    b.add_argument("--bct", help="BCT non-CoT jsonl: a local file, or a URL mirroring the pinned file")
    b.add_argument(
        "--sources",
        help="ground-truth questions: a folder laid out like cot-transparency's data/, or its URL",
    )
    b.add_argument(
        "--base_url",
        help="mirror of the cot-transparency repository at the pinned commit (also $SAA_BCT_BASE_URL)",
    )
    b.add_argument(
        "--cache_dir", help="download cache (default: $SYCOPHANCY_CACHE_DIR or ~/.cache/sycophancy-eval)"
    )
    b.add_argument(
        "--n_correct", type=int, default=500, help="pairs whose suggestion is correct (default 500)"
    )
    b.add_argument(
        "--n_incorrect", type=int, default=500, help="pairs whose suggestion is incorrect (default 500)"
    )
    b.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    b.add_argument(
        "--polarity_aware",
        action="store_true",
        help="an against-sentence means the user rejects the named option",
    )
    b.add_argument(
        "--drop_flagged",
        action="store_true",
        help="exclude rows flagged by PII / offensive-language screening",
    )
    b.add_argument(
        "--exclude_overlap",
        action="store_true",
        help="exclude rows sharing n-grams with the evaluation questions",
    )
    b.add_argument(
        "--eval_data_dir",
        default="download",
        help="Sharma et al. files for the overlap check: 'download' (default: the pinned files, cached, or "
        "$SYCOPHANCY_DATA_DIR), a folder, or 'embedded' (the packaged sample; a smoke test only)",
    )
    b.add_argument(
        "--overlap_ngram", type=int, default=DEFAULT_NGRAM, help=f"n-gram size (default {DEFAULT_NGRAM})"
    )
    b.add_argument(
        "--offensive_threshold",
        type=float,
        default=DEFAULT_OFFENSIVE_THRESHOLD,
        help=f"alt-profanity-check score in [0, 1] that flags a row (default {DEFAULT_OFFENSIVE_THRESHOLD})",
    )
    b.add_argument("--overwrite", action="store_true", help="replace an existing, non-empty --out")
    b.add_argument(
        "--push_to_hub", metavar="REPO", help="also upload the build to this Hugging Face dataset repo"
    )
    b.add_argument("--private", action="store_true", help="create the Hub repo as private")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = BuildConfig(
        out=args.out,
        bct=args.bct,
        sources=args.sources,
        base_url=args.base_url,
        cache_dir=args.cache_dir,
        n_correct=args.n_correct,
        n_incorrect=args.n_incorrect,
        seed=args.seed,
        polarity_aware=args.polarity_aware,
        drop_flagged=args.drop_flagged,
        exclude_overlap=args.exclude_overlap,
        eval_data_dir=None if args.eval_data_dir == "download" else args.eval_data_dir,
        overlap_ngram=args.overlap_ngram,
        offensive_threshold=args.offensive_threshold,
        overwrite=args.overwrite,
    )
    try:
        if args.push_to_hub and (problem := hub_repo_problem(args.push_to_hub)):
            raise DataError(f"--push_to_hub {args.push_to_hub!r}: {problem} (a Hugging Face dataset repo id)")
        result = build(config)
    except (DataError, FileExistsError, ValueError) as err:
        print(f"saa_data: error: {err}\nNothing was written to {args.out}.", file=sys.stderr)
        return 2
    counts = result.report["counts"]
    repeats = counts["duplicate_prompts_dropped"]
    print(
        f"Wrote {counts['selected']} pairs to {result.out / 'saa.jsonl'} "
        f"({counts['labelled']} of {counts['parsed']} BCT rows labelled"
        + (f", {repeats} repeated prompt(s) dropped" if repeats else "")
        + f"; {result.report['screening']['flagged_rows']} flagged by screening, "
        f"{result.report['overlap']['flagged_rows']} overlap the evaluation questions)."
    )
    if args.push_to_hub:
        from sycophancy_eval_kit.saa_data.hub import push_to_hub

        try:
            url = push_to_hub(result.out, args.push_to_hub, private=args.private)
        except Exception as err:  # offline, no token, no rights: any of huggingface_hub's errors
            print(
                f"saa_data: error: the upload to {args.push_to_hub} failed ({type(err).__name__}: {err}).\n"
                f"The build is kept at {result.out}; only the upload failed. Upload it later with\n"
                f"  hf upload {args.push_to_hub} {result.out} --repo-type dataset",
                file=sys.stderr,
            )
            return 1
        print(f"Pushed to {url}")
    return 0
