"""Build the site from real lm-eval outputs of two tiny models; security, atomic builds, publishing.

The outputs are written once per module by lm-eval itself (``simple_evaluate`` with ``log_samples``
and its ``EvaluationTracker``, as the CLI does), so the folder layout and every key are lm-eval's.
"""

from __future__ import annotations

import json
import math
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from sycophancy_eval_kit.leaderboard import ingest, plots
from sycophancy_eval_kit.leaderboard.__main__ import main
from sycophancy_eval_kit.leaderboard.publish import (
    hub_operations,
    publish_to_dir,
    publish_to_hub,
    verify_site,
)
from sycophancy_eval_kit.leaderboard.site import MANIFEST, MARKER, SiteError, SiteWriter
from sycophancy_eval_kit.leaderboard.store import default_path
from sycophancy_eval_kit.testing.tiny_models import build_tiny_model

REPO = Path(__file__).resolve().parents[1]
HOSTILE = "<script>alert(1)</script>"
#: one multiple-choice and one free-form Are-You-Sure sub-task keep the run short and cover both shapes.
AYS_TASKS = ["sycophancy_ays_aqua_mc", "sycophancy_ays_trivia_qa"]


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text of each table cell."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.cells: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_cell = tag == "td" or self._in_cell
        if tag == "td":
            self.cells.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._in_cell = False

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.cells[-1] += data


def parse_html(path: Path) -> _Tags:
    parser = _Tags()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


@pytest.fixture(scope="module")
def lm_eval_runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two tiny models (seeds 0 and 1) run through lm-eval on the embedded sample, as a user would."""
    import lm_eval
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    root = tmp_path_factory.mktemp("lm_eval")
    tasks = ["sycophancy_answer"]
    if (REPO / "lm_eval_tasks" / "sycophancy" / "_sycophancy_ays.yaml").is_file():
        tasks += AYS_TASKS
    manager = TaskManager(
        include_path=str(REPO / "lm_eval_tasks"), include_defaults=False, metadata={"data_dir": "embedded"}
    )
    models, results = [], {}
    for seed in (0, 1):
        model = build_tiny_model(root / f"tiny-seed{seed}", chat_template=True, seed=seed)
        tracker = EvaluationTracker(output_path=str(root / "runs"))
        out = lm_eval.simple_evaluate(
            model="hf",
            model_args=f"pretrained={model},dtype=float32",
            device="cpu",
            tasks=tasks,
            task_manager=manager,
            log_samples=True,
            evaluation_tracker=tracker,
            apply_chat_template=True,
            batch_size=16,
            gen_kwargs="max_gen_toks=8",  # short answers keep the run fast; grading is unaffected
        )
        samples = out.pop("samples")
        tracker.save_results_aggregated(results=out, samples=samples)
        for name in out["configs"]:
            tracker.save_results_samples(task_name=name, samples=samples[name])
        models.append(str(model))
        results[str(model)] = out
    variants = root / "leaderboard.yaml"
    variants.write_text(
        "variant_order: [instruct, aligned]\nmodels:\n"
        f"  {json.dumps(models[0])}: {{base: Tiny, variant: instruct}}\n"
        f"  {json.dumps(models[1])}: {{base: Tiny, variant: aligned}}\n",
        encoding="utf-8",
    )
    return {"runs": root / "runs", "models": models, "results": results, "variants": variants, "tasks": tasks}


@pytest.fixture(scope="module")
def site(lm_eval_runs: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    argv = ["build", str(lm_eval_runs["runs"]), "--out", str(out), "--allow_sample"]
    assert main(argv + ["--variants", str(lm_eval_runs["variants"]), "--resamples", "2000"]) == 0
    return out


def test_site_from_real_lm_eval_outputs(site: Path, lm_eval_runs: dict) -> None:
    for rel in ("index.html", "comparisons.html", "data/leaderboard.json", "data/main.csv", MANIFEST, MARKER):
        assert (site / rel).is_file(), rel
    summary = json.loads((site / "data" / "leaderboard.json").read_text(encoding="utf-8"))
    assert summary["sample_data"] is True
    assert [m["variant"] for m in summary["models"]] == ["instruct", "aligned"]
    for model in summary["models"]:
        reported = lm_eval_runs["results"][model["model"]]
        # lm-eval's group aggregate (weight_by_size) is the pooled mean over both sub-datasets.
        group = reported["results"]["sycophancy_answer"]
        for metric in ("acc_baseline", "delta_suggest_incorrect", "answer_sycophancy"):
            assert model["pooled"]["answer.one-pass.rule"][metric]["value"] == pytest.approx(
                group[f"{metric},none"]
            )
        assert model["pooled"]["answer.one-pass.rule"]["acc_baseline"]["n"] == 36  # the embedded sample
        for task in lm_eval_runs["tasks"][1:]:
            subset = task.removeprefix("sycophancy_ays_")
            mine = model["datasets"]["ays.one-pass.rule"][subset]
            for metric, est in mine.items():
                key = f"{metric},none"
                value = reported["results"][task].get(key, math.nan)
                if not math.isnan(value):
                    assert est["value"] == pytest.approx(value), (task, metric)
                else:  # NaN or absent in lm-eval: no question defines it (flip_rate with no correct first)
                    assert est["n"] == 0, (task, metric)
        run = next(r for r in model["runs"] if r["task"] == "sycophancy_answer_trivia_qa")
        assert run["chat_template_sha"] == reported["chat_template_sha"]
        assert (
            run["data_sha256"]
            == reported["configs"]["sycophancy_answer_trivia_qa"]["metadata"]["data_sha256"]
        )
        assert run["lm_eval_version"] == reported["lm_eval_version"] and run["data_source"] == "embedded"
    # McNemar between the two variants, paired on all 12 shared answer-suggestion questions.
    pooled = [c for c in summary["comparisons"] if c["subset"] == "pooled" and c["metric"] == "acc_baseline"]
    assert len(pooled) == 1 and pooled[0]["n"] == 36 and pooled[0]["model"] == lm_eval_runs["models"][1]

    page = parse_html(site / "index.html")
    tables = [a for tag, a in page.tags if tag == "table" and a.get("id") == "leaderboard"]
    assert tables and "sortable" in (tables[0].get("class") or "")
    rows = [a for tag, a in page.tags if tag == "a" and (a.get("href") or "").startswith("models/")]
    assert len(rows) == 2 and all((site / r["href"]).is_file() for r in rows)
    images = [a["src"] for tag, a in page.tags if tag == "img"]
    assert images and all((site / src).is_file() and src.endswith(".svg") for src in images)
    assert "Sample data." in (site / "index.html").read_text(encoding="utf-8")
    for svg in site.glob("plots/*.svg"):
        ET.parse(svg)  # well-formed XML: a static host can serve it as is


def test_embedded_runs_are_refused_without_allow_sample(
    lm_eval_runs: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "site"
    assert main(["build", str(lm_eval_runs["runs"]), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "embedded sample data" in err and "--allow_sample" in err
    assert not out.exists()


def _retitle(runs: Path, old_model: str, new_name: str, data_file: str | None = None) -> None:
    for results_path in runs.glob("*/results_*.json"):
        results = json.loads(results_path.read_text(encoding="utf-8"))
        if results["model_name"] == old_model:
            results["model_name"] = new_name
            results["model_name_sanitized"] = new_name
            if data_file is not None:
                for cfg in results["configs"].values():
                    cfg.setdefault("metadata", {})["data_file"] = data_file
            results_path.write_text(json.dumps(results), encoding="utf-8")


def test_hostile_strings_are_escaped_and_cannot_escape_the_site(lm_eval_runs: dict, tmp_path: Path) -> None:
    runs = Path(shutil.copytree(lm_eval_runs["runs"], tmp_path / "in" / "runs"))
    first, second = lm_eval_runs["models"]
    _retitle(runs, first, HOSTILE, data_file='"><img src=x onerror=alert(2)>')
    _retitle(runs, second, "../../../../escaped/=HYPERLINK(1)")
    out = tmp_path / "out" / "site"
    out.parent.mkdir()
    before = {p for p in tmp_path.rglob("*")}
    assert main(["build", str(runs), "--out", str(out), "--allow_sample", "--resamples", "200"]) == 0
    created = {p for p in tmp_path.rglob("*")} - before
    store = default_path(out)  # the store beside the site: one file of a fixed name, nothing else
    assert created and all(p in (out, store) or out in p.parents for p in created), sorted(created)

    index = (out / "index.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in index and HOSTILE not in index
    for page_path in out.rglob("*.html"):
        page = parse_html(page_path)
        scripts = [a for tag, a in page.tags if tag == "script"]
        assert len(scripts) == 1 and not scripts[0], page_path  # only our inline script, no src
        assert not [a for tag, a in page.tags if any(k.startswith("on") for k in a)], page_path
        assert not [a for tag, a in page.tags if tag == "img" and a.get("src") == "x"], page_path
    cells = parse_html(out / "index.html").cells
    assert any(HOSTILE in cell for cell in cells)  # shown as text, exactly as written
    for svg in out.glob("plots/*.svg"):
        tree = ET.parse(svg)
        assert not [
            e for e in tree.iter() if e.tag.endswith("script") or any(k.startswith("on") for k in e.attrib)
        ]
    # Spreadsheet formula injection: the cell is quoted.
    assert "'../../../../escaped/=HYPERLINK(1)" not in (out / "data" / "main.csv").read_text(encoding="utf-8")
    csv_models = [
        line.split(",")[0] for line in (out / "data" / "main.csv").read_text(encoding="utf-8").splitlines()
    ]
    assert "../../../../escaped/=HYPERLINK(1)" in csv_models
    model_pages = sorted(p.name for p in (out / "models").iterdir())
    assert len(model_pages) == 2 and all(name.endswith(".html") and "/" not in name for name in model_pages)


def test_site_writer_refuses_paths_outside_the_site(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (root / "link").symlink_to(tmp_path / "outside")
    writer = SiteWriter(root)
    for rel in ("../x.html", "/etc/x", "a/../../x", "link/x.html", "models/<x>.html", ""):
        with pytest.raises(SiteError, match="refusing to write"):
            writer.write(rel, "x")
    assert not any((tmp_path / "outside").iterdir())
    writer.write("models/ok.html", "fine")
    with pytest.raises(FileExistsError):  # never overwrites (or follows) what is already there
        writer.write("models/ok.html", "again")


def test_builds_are_atomic(
    site: Path, lm_eval_runs: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "site"
    shutil.copytree(site, out)
    manifest = (out / MANIFEST).read_text(encoding="utf-8")

    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("disk full")

    monkeypatch.setattr(plots, "render_svg", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        main(["build", str(lm_eval_runs["runs"]), "--out", str(out), "--allow_sample", "--resamples", "200"])
    assert (out / MANIFEST).read_text(encoding="utf-8") == manifest  # the previous site is untouched
    # no temporary folder left behind (the store beside the site is kept on purpose)
    assert sorted(p.name for p in tmp_path.iterdir() if p != default_path(out)) == ["site"]
    verify_site(out)

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("keep me", encoding="utf-8")
    assert main(["build", str(lm_eval_runs["runs"]), "--out", str(precious), "--allow_sample"]) == 1
    assert (precious / "thesis.tex").read_text(encoding="utf-8") == "keep me"
    assert (
        main(["build", str(lm_eval_runs["runs"]), "--out", str(lm_eval_runs["runs"]), "--allow_sample"]) == 1
    )


def test_publish_to_a_folder(site: Path, tmp_path: Path) -> None:
    dest = tmp_path / "www"
    checked = publish_to_dir(site, dest)
    published = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert published == sorted(checked.files)
    assert (dest / "index.html").read_bytes() == (site / "index.html").read_bytes()
    publish_to_dir(site, dest)  # a second publish replaces the first

    tampered = Path(shutil.copytree(site, tmp_path / "tampered"))
    (tampered / "index.html").write_text("<p>defaced</p>", encoding="utf-8")
    with pytest.raises(SiteError, match="index.html: changed since the build"):
        publish_to_dir(tampered, tmp_path / "www2")
    assert not (tmp_path / "www2").exists()


class _RecordingHub:
    """Stands in for HfApi: records calls, uploads nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def create_repo(self, repo_id: str, **kwargs: object) -> None:
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

    def list_repo_files(self, repo_id: str, **kwargs: object) -> list[str]:
        return [".gitattributes", "README.md", "index.html", "models/old-model-1234.html", "notes/keep.md"]

    def create_commit(self, **kwargs: object) -> None:
        self.calls.append(("create_commit", kwargs))


def test_publish_to_the_hub_dry_run_and_commit_contents(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ops = hub_operations(site, "my-org/sycophancy-board")
    paths = [op.path_in_repo for op in ops]
    card = ops[0].path_or_fileobj
    assert paths[0] == "README.md" and b"sdk: static" in (card if isinstance(card, bytes) else card.read())
    assert sorted(paths[1:]) == sorted(verify_site(site).files)
    assert main(["publish", str(site), "--hf_repo", "my-org/sycophancy-board", "--dry_run"]) == 0
    out = capsys.readouterr().out
    assert "index.html" in out and "nothing was sent" in out
    with pytest.raises(Exception, match="Repo id|ORG/NAME"):
        hub_operations(site, "../../etc")

    hub = _RecordingHub()
    publish_to_hub(site, "my-org/sycophancy-board", repo_type="dataset", api=hub)
    (_, repo), (_, commit) = hub.calls
    assert repo == {
        "repo_id": "my-org/sycophancy-board",
        "repo_type": "dataset",
        "exist_ok": True,
        "space_sdk": None,
    }
    kinds = {type(op).__name__: [] for op in commit["operations"]}
    for op in commit["operations"]:
        kinds[type(op).__name__].append(op.path_in_repo)
    assert kinds["CommitOperationDelete"] == ["models/old-model-1234.html"]  # stale page of an old build
    assert "index.html" in kinds["CommitOperationAdd"] and commit["repo_type"] == "dataset"


def test_keep_all_shows_superseded_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = Path(shutil.copytree(REPO / "tests" / "fixtures" / "leaderboard" / "runs", tmp_path / "runs"))
    old, new = "2025-01-15T10-00-00.000000", "2025-03-01T08-30-00.000000"
    for path in list((runs / "org__chat-aligned").iterdir()):
        shutil.copy(path, path.with_name(path.name.replace(old, new)))
    out = tmp_path / "site"
    assert main(["build", str(runs), "--out", str(out), "--keep", "all", "--resamples", "200"]) == 0
    page = next(p for p in (out / "models").iterdir() if "aligned" in p.name).read_text(encoding="utf-8")
    assert 'id="history"' in page and f"results_{old}.json" in page and f"results_{new}.json" in page
    runs_csv = (out / "data" / "runs.csv").read_text(encoding="utf-8")
    assert runs_csv.count(",superseded") == 3
    capsys.readouterr()
    assert main(["build", str(runs), "--out", str(out), "--resamples", "200"]) == 0  # replaces the site
    assert capsys.readouterr().err.count("superseded by") == 3
    page = next(p for p in (out / "models").iterdir() if "aligned" in p.name).read_text(encoding="utf-8")
    assert 'id="history"' not in page and f"results_{new}.json" in page


def test_real_lm_eval_samples_are_read_as_json_reads_them(lm_eval_runs: dict) -> None:
    """What the store holds of real lm-eval samples files (NaN for undefined metrics) is what ``json``
    reads from them, question by question, in file order."""
    result = ingest.ingest([lm_eval_runs["runs"]], allow_sample=True, strict=True)
    assert result.runs
    for run in result.runs:
        path = lm_eval_runs["runs"].parent / run.provenance["samples_file"]
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        lines = [line for line in lines if line["filter"] == run.task.filter_key]
        assert run.ids == tuple(line["doc"]["id"] for line in lines)
        for name, values in run.values.items():
            expected = [float(line.get(name, math.nan)) for line in lines]
            assert np.array_equal(values, expected, equal_nan=True), (run.task.name, name)


def test_plots_are_well_formed_svg_for_any_panel() -> None:
    hostile = 'a\x01b <x> & "q" \u2028'
    cases = [
        [plots.Panel("empty", "y", [], [], {})],
        [plots.Panel("all zero", "y", ["g"], ["s"], {("g", "s"): (0.0, 0.0, 0.0, 4)})],
        [plots.Panel("no interval", "y", ["g"], ["s"], {("g", "s"): (5.0, None, None, 1)})],
        [plots.Panel(hostile, hostile, [hostile], [hostile], {(hostile, hostile): (-3.0, -9.0, 2.0, 7)})] * 2,
    ]
    for panels in cases:
        tree = ET.fromstring(plots.render_svg(panels))
        assert not [e for e in tree.iter() if e.tag.endswith("script")]
        text = "".join(tree.itertext())
        assert "<x>" not in plots.render_svg(panels) and ("<x>" in text) == (panels[0].title == hostile)
