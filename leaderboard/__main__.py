"""``syco-leaderboard`` (``python -m sycophancy_eval_kit.leaderboard``): build the static leaderboard,
publish it.

Recipes::

    # lm-eval runs (with --log_samples) of several models, all written under runs/
    syco-leaderboard build runs/ --out site/ --variants leaderboard.yaml
    syco-leaderboard build runs/ more-runs/ --out site/ --keep all      # show superseded runs too
    syco-leaderboard publish site/ --to /var/www/sycophancy              # any static host
    syco-leaderboard publish site/ --hf_repo my-org/sycophancy-leaderboard --dry_run
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from sycophancy_eval_kit.core import stats
from sycophancy_eval_kit.core.cli_flags import ArgumentParser
from sycophancy_eval_kit.leaderboard.cache import BuildCache, CacheError, default_cache_dir
from sycophancy_eval_kit.leaderboard.ingest import IngestError, ingest
from sycophancy_eval_kit.leaderboard.publish import REPO_TYPES, publish_to_dir, publish_to_hub
from sycophancy_eval_kit.leaderboard.site import SiteError, check_destination, write_site
from sycophancy_eval_kit.leaderboard.summary import summarize
from sycophancy_eval_kit.leaderboard.variants import VariantsError, load_variants


def make_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="syco-leaderboard", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    build = sub.add_parser("build", help="read lm-eval output folders and write the static site")
    build.add_argument(
        "results", nargs="+", type=Path, help="lm-eval --output_path folders (or results_*.json)"
    )
    build.add_argument("--out", required=True, type=Path, help="site folder (replaced atomically)")
    build.add_argument("--variants", type=Path, help="leaderboard.yaml mapping models to base + variant")
    build.add_argument(
        "--keep",
        choices=("newest", "all"),
        default="newest",
        help="repeated runs: newest wins, or show history",
    )
    build.add_argument(
        "--allow_sample", action="store_true", help="accept runs on the embedded sample data (demos only)"
    )
    build.add_argument("--strict", action="store_true", help="any skipped file or run is an error")
    build.add_argument("--title", default="Sycophancy leaderboard")
    build.add_argument("--resamples", type=int, default=stats.DEFAULT_RESAMPLES, help="bootstrap resamples")
    build.add_argument("--seed", type=int, default=stats.DEFAULT_SEED, help="bootstrap seed")
    build.add_argument(
        "--cache_dir", type=Path, help="build cache (default: .<out name>.cache beside --out; see README)"
    )
    build.add_argument("--no_cache", action="store_true", help="read and compute everything; keep no cache")

    publish = sub.add_parser(
        "publish", help="copy a built site to a folder or upload it to the Hugging Face Hub"
    )
    publish.add_argument("site", type=Path)
    where = publish.add_mutually_exclusive_group(required=True)
    where.add_argument("--to", type=Path, help="destination folder (replaced atomically)")
    where.add_argument("--hf_repo", metavar="ORG/NAME", help="Hugging Face repo to upload to")
    publish.add_argument(
        "--repo_type", choices=REPO_TYPES, default="space", help="static Space or dataset repo"
    )
    publish.add_argument("--dry_run", action="store_true", help="list what would be uploaded; upload nothing")
    return parser


def build(args: argparse.Namespace) -> int:
    if args.resamples < 100:
        raise SiteError(f"--resamples {args.resamples}: expected at least 100 (bootstrap resamples)")
    if args.seed < 0:
        raise SiteError(f"--seed {args.seed}: expected a non-negative integer (numpy's seed rule)")
    variants = load_variants(args.variants)
    check_destination(args.out, args.results)  # before anything is read or cached
    cache = None if args.no_cache else BuildCache(args.cache_dir or default_cache_dir(args.out))
    if cache is not None and cache.root.resolve().is_relative_to(args.out.resolve()):
        raise SiteError(f"--cache_dir {cache.root} is inside --out {args.out}, which each build replaces")
    ingested = ingest(
        args.results, keep=args.keep, allow_sample=args.allow_sample, strict=args.strict, cache=cache
    )
    for problem in ingested.problems:
        print(f"warning: {problem}", file=sys.stderr)
    if not ingested.runs:
        hint = (
            " (every run used the embedded sample data: pass --allow_sample)"
            if ingested.refused_sample
            else ""
        )
        raise IngestError(
            f"no usable sycophancy results under {', '.join(map(str, args.results))}{hint}; "
            "expected lm-eval --output_path folders written with --log_samples"
        )
    summary = summarize(
        ingested,
        variants,
        resamples=args.resamples,
        seed=args.seed,
        allow_sample=args.allow_sample,
        cache=cache,
    )
    files = write_site(summary, args.out, args.title, inputs=args.results, cache=cache)
    print(
        f"Read {len(ingested.runs)} task run(s) of {len(summary['models'])} model(s) from "
        f"{ingested.results_files} results file(s) ({len(ingested.problems)} warning(s))."
    )
    print(f"Site written to {args.out} ({len(files)} files); open {args.out / 'index.html'}")
    return 0


def publish(args: argparse.Namespace) -> int:
    if args.to is not None:
        checked = publish_to_dir(args.site, args.to)
        for rel in checked.unlisted:
            print(f"warning: {args.site / rel}: not in the build's manifest; not published", file=sys.stderr)
        print(f"Published {len(checked.files)} files to {args.to}")
        return 0
    try:
        ops = publish_to_hub(args.site, args.hf_repo, repo_type=args.repo_type, dry_run=args.dry_run)
    except SiteError:
        raise
    except Exception as err:  # offline, no token, no rights: any of huggingface_hub's errors
        print(
            f"error: the upload to {args.repo_type} {args.hf_repo} failed ({type(err).__name__}: {err}); "
            f"the site at {args.site} is unchanged: publish it again when the Hub is reachable",
            file=sys.stderr,
        )
        return 1
    if args.dry_run:
        for op in ops:
            print(op.path_in_repo)
        print(f"Dry run: would upload {len(ops)} files to {args.repo_type} {args.hf_repo}; nothing was sent.")
    else:
        print(f"Uploaded {len(ops)} operations to {args.repo_type} {args.hf_repo}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return build(args) if args.command == "build" else publish(args)
    except (IngestError, SiteError, VariantsError, CacheError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
