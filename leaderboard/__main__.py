"""``syco-leaderboard`` (``python -m sycophancy_eval_kit.leaderboard``): build the static leaderboard,
publish it.

Recipes::

    # lm-eval runs (with --log_samples) of several models, all written under runs/
    syco-leaderboard build runs/ --out site/ --variants leaderboard.yaml
    syco-leaderboard build runs/ more-runs/ --out site/ --keep all      # show superseded runs too
    syco-leaderboard publish site/ --to /var/www/sycophancy              # any static host
    syco-leaderboard publish site/ --hf_repo my-org/sycophancy-leaderboard --dry_run
    # every question's outcome is in site.duckdb beside the site: ask it anything
    syco-leaderboard query site.duckdb "SELECT model, task, avg(flip_rate) FROM runs JOIN outcomes
        USING (run_id) GROUP BY ALL"
    syco-leaderboard export site.duckdb outcomes.parquet     # or .csv; --sql for any query
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from sycophancy_eval_kit.core import stats
from sycophancy_eval_kit.core.cli_flags import ArgumentParser
from sycophancy_eval_kit.leaderboard import store as stores
from sycophancy_eval_kit.leaderboard.ingest import VERSION, IngestError, ingest
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
        "--store", type=Path, help="the store: one DuckDB file (default: <out name>.duckdb beside --out)"
    )
    build.add_argument("--no_store", action="store_true", help="read and compute everything; keep no store")

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
    query = sub.add_parser("query", help="run SQL on a store and print the rows (tab-separated)")
    query.add_argument("store", type=Path, help="the .duckdb file a build wrote")
    query.add_argument("sql", help="a query over runs, outcomes (and files)")
    export = sub.add_parser("export", help="write a query's rows (default: every outcome) to Parquet or CSV")
    export.add_argument("store", type=Path, help="the .duckdb file a build wrote")
    export.add_argument("out", type=Path, help="a .parquet or .csv file")
    export.add_argument(
        "--sql", default=OUTCOMES_SQL, help="the rows to write (default: outcomes with their runs)"
    )
    return parser


#: what ``export`` writes by default: every question's outcome, with its run's model, task and sub-dataset
OUTCOMES_SQL = (
    "SELECT r.model, r.task, r.grader, r.subset, r.timestamp, o.* "
    "FROM outcomes o JOIN runs r USING (run_id) ORDER BY r.run_id, o.pos"
)


def _open(path: Path) -> stores.Store:
    if not path.is_file():
        raise stores.StoreError(
            f"{path}: no such store; build the leaderboard first (syco-leaderboard build)"
        )
    return stores.Store(path, VERSION)


def query(args: argparse.Namespace) -> int:
    store = _open(args.store)
    try:
        names, rows = store.query(args.sql)
    except Exception as err:  # DuckDB's own message says what is wrong with the SQL
        raise stores.StoreError(f"the query failed: {err}") from err
    print("\t".join(names))
    for row in rows:
        print("\t".join("" if v is None else str(v) for v in row))
    return 0


def export(args: argparse.Namespace) -> int:
    store = _open(args.store)
    try:
        store.export(args.sql, args.out)
    except stores.StoreError:
        raise
    except Exception as err:
        raise stores.StoreError(f"the export to {args.out} failed: {err}") from err
    print(f"wrote {args.out}")
    return 0


def build(args: argparse.Namespace) -> int:
    if args.resamples < 100:
        raise SiteError(f"--resamples {args.resamples}: expected at least 100 (bootstrap resamples)")
    if args.seed < 0:
        raise SiteError(f"--seed {args.seed}: expected a non-negative integer (numpy's seed rule)")
    variants = load_variants(args.variants)
    check_destination(args.out, args.results)  # before anything is read or stored
    path = None if args.no_store else (args.store or stores.default_path(args.out))
    if path is not None and path.resolve().is_relative_to(args.out.resolve()):
        raise SiteError(f"--store {path} is inside --out {args.out}, which each build replaces")
    store = stores.Store(path, VERSION)
    ingested = ingest(
        args.results, keep=args.keep, allow_sample=args.allow_sample, strict=args.strict, store=store
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
        store=store,
    )
    files = write_site(summary, args.out, args.title, inputs=args.results, store=store)
    store.save_derived()
    store.close()
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
    commands = {"build": build, "publish": publish, "query": query, "export": export}
    try:
        return commands[args.command](args)
    except (IngestError, SiteError, VariantsError, stores.StoreError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
