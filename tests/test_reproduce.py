"""The grid runner (``syco-reproduce``): the paper grid's dry run, a reduced toy grid end to end, resume.

These check that the pipeline runs and resumes, not the direction of any effect (docs/toy-world.md).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sycophancy_eval_kit import reproduce
from sycophancy_eval_kit.core.cli_flags import CommandError, run_main

REPO = Path(__file__).resolve().parents[1]

CONFIGS = REPO / "scripts" / "configs"
TOY = REPO / "examples" / "toy_world" / "toy.yaml"
PAPER_MODELS = ("mistral-7b-instruct-v0.2", "mistral-7b-instruct-v0.3", "gemma-7b-it", "falcon-7b-instruct")
VARIANTS = ("instruct", "aligned", "aligned-SAA")


def test_paper_dry_run_prints_every_command_and_runs_nothing(tmp_path, capsys) -> None:
    out = tmp_path / "paper"
    assert (
        reproduce.main(["--config", str(CONFIGS / "paper.yaml"), "--output_dir", str(out), "--dry_run"]) == 0
    )
    printed = capsys.readouterr().out
    assert not out.exists()  # nothing ran, nothing was written
    blocks = [b for b in printed.split("\n# ") if b.strip() and not b.lstrip("# ").startswith("judge:")]
    names = [b.lstrip("# ").splitlines()[0] for b in blocks]
    expected = ["saa"]
    for model in PAPER_MODELS:
        for variant in VARIANTS:
            if variant != "instruct":
                expected.append(f"train/{model}/{variant}")
            expected += [f"eval/{model}/{variant}", f"dialogue/{model}/{variant}"]
    expected.append("leaderboard")
    assert sorted(names) == sorted(expected)
    commands = {b.lstrip("# ").splitlines()[0]: b.splitlines()[1] for b in blocks}
    assert "-m sycophancy_eval_kit.saa_data build" in commands["saa"]
    train = commands["train/gemma-7b-it/aligned-SAA"]
    assert "accelerate launch" in train and "training/orpo.py" in train
    assert "training/configs/paper.yaml" in train and "--model_name_or_path google/gemma-7b-it" in train
    assert f"--datasets dpo_mix_en saa --saa_path {out / 'saa'}" in train
    assert "--datasets" not in commands["train/gemma-7b-it/aligned"]
    for model in PAPER_MODELS:
        evaluated = commands[f"eval/{model}/aligned"]
        assert f"peft={out / 'models' / model / 'aligned'}" in evaluated
        # graded as the paper graded: the judged tasks, the rule-graded one pass as a secondary column
        assert "--tasks sycophancy_answer_judged,sycophancy_answer,sycophancy_ays" in evaluated
        assert '"judge_model": "gpt-3.5-turbo-0125"' in evaluated
        dialogue = commands[f"dialogue/{model}/aligned"]
        assert "syco-dialogue" in dialogue and "--judge" in dialogue and "--tasks sycophancy_ays" in dialogue
        assert f"peft={out / 'models' / model / 'aligned'}" in dialogue
        assert "--apply_chat_template" in evaluated and "--log_samples" in evaluated
        assert "peft=" not in commands[f"eval/{model}/instruct"]
    assert f"--variants {out / 'leaderboard_variants.yaml'}" in commands["leaderboard"]
    assert f"build {out / 'results'} {out / 'dialogue'} " in commands["leaderboard"]
    assert "# judge: judge_model=gpt-3.5-turbo-0125, judge_mode=ours" in printed


def test_only_selects_one_cell(capsys) -> None:
    config = yaml.safe_load((CONFIGS / "paper.yaml").read_text())
    steps = reproduce.plan(config, Path("/nowhere"))
    names = [s.name for s in reproduce.select(steps, "gemma-7b-it/aligned")]
    assert names == [
        "saa",
        "train/gemma-7b-it/aligned",
        "eval/gemma-7b-it/aligned",
        "dialogue/gemma-7b-it/aligned",
        "leaderboard",
    ]
    with pytest.raises(SystemExit, match="no such MODEL/VARIANT"):
        reproduce.select(steps, "gemma-7b-it/typo")


def reduced_toy_config(out: Path) -> Path:
    """toy.yaml with a world and training small enough for a test (a minute or so)."""
    config = reproduce.load_config(TOY)
    config["output_dir"] = str(out)
    config["world"].update(n_train=3, n_eval=2, steps=20, hidden=32, layers=2, batch_size=8)
    config["training"]["launch"] = ["{python}"]  # one process: skip the accelerate launcher's start-up
    config["training"]["args"] = {"num_train_epochs": 1, "logging_steps": 1}
    path = out.parent / "toy_reduced.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int, str]:
    root = tmp_path_factory.mktemp("toy_grid")
    out = root / "out"
    config = reduced_toy_config(out)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = reproduce.main(["--config", str(config), "--progress_every", "5"])
    return config, out, code, buffer.getvalue()


@pytest.mark.toy_grid
def test_reduced_toy_grid_runs_end_to_end(toy_run) -> None:
    _, out, code, printed = toy_run
    assert code == 0, printed + "".join(p.read_text()[-3000:] for p in (out / "logs").glob("*.log"))
    world = out / "world"
    assert (world / "eval_data" / "answer.jsonl").is_file() and (
        world / "base-model" / "config.json"
    ).is_file()
    for variant in ("aligned", "aligned-SAA"):
        trained = out / "models" / "toy" / variant
        assert (trained / "adapter_config.json").is_file() and (trained / "train_summary.json").is_file()
    for variant in VARIANTS:
        results = list((out / "results" / "toy" / variant).rglob("results_*.json"))
        assert len(results) == 1, variant
        tasks = json.loads(results[0].read_text())["results"]
        assert {"sycophancy_answer_trivia_qa", "sycophancy_ays_aqua_mc"} <= set(tasks)
    manifest = json.loads((out / "manifest.json").read_text())
    assert {v["status"] for v in manifest.values()} == {"done"}
    assert len(manifest) == 1 + 2 + 3 + 1
    site = out / "site"
    assert (site / "index.html").is_file()
    text = " ".join(p.read_text(errors="replace") for p in site.rglob("*") if p.suffix in (".json", ".csv"))
    for variant in VARIANTS:  # every variant is on the leaderboard, placed under the one base model
        assert variant in text, variant
    assert "[done] leaderboard" in printed
    assert "s | " in printed  # progress lines of running steps


@pytest.mark.toy_grid
def test_rerun_skips_every_finished_step(toy_run, capsys) -> None:
    config, out, code, _ = toy_run
    assert code == 0
    before = (out / "manifest.json").read_text()
    assert reproduce.main(["--config", str(config)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("[skip]") == 7 and "[run ]" not in printed
    assert (out / "manifest.json").read_text() == before


def test_failed_step_stops_and_a_rerun_continues_from_it(tmp_path, capsys) -> None:
    """A step that fails once (a missing file, or a killed process): the run stops naming its log; the
    rerun skips what finished and runs the failed step and everything after it."""
    out = tmp_path / "grid"
    marker = tmp_path / "fixed"
    py = sys.executable

    def steps() -> list[reproduce.Step]:
        return [
            reproduce.Step("first", [py, "-c", f"open({str(out / 'a')!r}, 'w').write('a')"], out / "a"),
            reproduce.Step(
                "second",
                [py, "-c", f"import os, sys; os.path.exists({str(marker)!r}) or os.kill(os.getpid(), 9)"],
                out / "logs",
                after=["first"],
            ),
            reproduce.Step("third", [py, "-c", f"open({str(out / 'c')!r}, 'w').write('c')"], out / "c"),
        ]

    out.mkdir()
    assert reproduce.run(steps(), out) != 0
    printed = capsys.readouterr().out
    assert "[FAIL] second" in printed and str(out / "logs" / "second.log") in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["first"]["status"] == "done" and manifest["second"]["status"] == "failed"
    assert "third" not in manifest and not (out / "c").exists()

    marker.write_text("fixed")
    assert reproduce.run(steps(), out) == 0
    printed = capsys.readouterr().out
    assert "[skip] first" in printed and "[done] second" in printed and "[done] third" in printed
    assert (out / "c").is_file()

    (out / "a").unlink()  # an output gone: that step runs again even though its fingerprint matches
    assert reproduce.run(steps(), out) == 0
    assert "[done] first" in capsys.readouterr().out


# ------------------------------------------------------------------- stale results, typos, sharing
def _counting_step(name: str, out: Path, counter: Path, **kwargs) -> reproduce.Step:
    """A step whose command appends its name to ``counter`` and writes its output (a second of work)."""
    code = (
        f"import time; open({str(counter)!r}, 'a').write({name!r} + '\\n'); time.sleep(1); "
        f"open({str(out / name)!r}, 'w').write('done')"
    )
    return reproduce.Step(name, [sys.executable, "-c", code], out / name, **kwargs)


def test_a_step_is_done_again_when_its_data_model_or_code_change(tmp_path, capsys, monkeypatch) -> None:
    """Before, only the command line and the earlier steps counted: a rerun after every question of the
    data folder was edited printed ``[skip] eval/... (done, inputs unchanged)``."""
    out, counter = tmp_path / "grid", tmp_path / "ran"
    data_dir, model = tmp_path / "data", tmp_path / "model"
    data_dir.mkdir()
    (data_dir / "answer.jsonl").write_text("questions v1\n")
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights v1")

    def run() -> list[str]:
        step = _counting_step("eval", out, counter, inputs=[data_dir], models=[model])
        assert reproduce.run([step], out) == 0
        return counter.read_text().split() if counter.exists() else []

    out.mkdir()
    assert run() == ["eval"]
    assert run() == ["eval"] and "[skip] eval" in capsys.readouterr().out
    (data_dir / "answer.jsonl").write_text("questions v2\n")  # the questions edited
    assert run() == ["eval"] * 2
    (model / "model.safetensors").write_bytes(b"weights, retrained")  # new weights, same folder
    assert run() == ["eval"] * 3
    monkeypatch.setattr(reproduce, "code_digest", lambda: "other task code")
    assert run() == ["eval"] * 4


def test_the_plan_fingerprints_what_each_step_reads(tmp_path) -> None:
    config = reproduce.load_config(TOY)
    steps = {s.name: s for s in reproduce.plan(config, tmp_path / "out")}
    world = tmp_path / "out" / "world"
    evaluation = steps["eval/toy/aligned"]
    assert evaluation.inputs == [world / "eval_data"]  # the questions
    assert set(evaluation.models) == {world / "base-model", tmp_path / "out" / "models" / "toy" / "aligned"}
    assert evaluation.request_cache and steps["train/toy/aligned"].models == [world / "base-model"]
    assert world / "preferences" / "aligned.json" in steps["train/toy/aligned"].inputs


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["variants"]["aligned"].update(trian=c["variants"]["aligned"].pop("train")),
         "unknown key variants.aligned.trian (did you mean 'train'?)"),
        (lambda c: c["eval"].update(dialoge={"tasks": "sycophancy_ays"}),
         "unknown key eval.dialoge (did you mean 'dialogue'?)"),
        (lambda c: c["eval"].pop("tasks"), "missing key eval.tasks"),
        (lambda c: c["models"]["toy"].pop("base"), "missing key models.toy.base"),
        (lambda c: c.update(modles=c.pop("models")), "unknown key modles (did you mean 'models'?)"),
    ],
)  # fmt: skip
def test_a_misspelled_or_missing_config_key_is_named(tmp_path, edit, message) -> None:
    """Before: ``trian:`` evaluated the "aligned" variant as the untrained base model, ``dialoge:`` dropped
    the dialogue, and a missing key was a raw KeyError."""
    config = yaml.safe_load(TOY.read_text())
    edit(config)
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(CommandError, match=re.escape(f"{path}: {message}")):
        reproduce.main(["--config", str(path), "--dry_run"])


def test_bad_yaml_and_a_damaged_manifest_are_named(tmp_path, capsys) -> None:
    broken = tmp_path / "grid.yaml"
    broken.write_text("models:\n  toy: {base: x\nvariants: {}\n")
    assert run_main(reproduce.main, "syco-reproduce", ["--config", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"syco-reproduce: error: {broken}:3:") and "not valid YAML" in err

    out = tmp_path / "grid"
    out.mkdir()
    (out / "manifest.json").write_text('{"world": {"status": "done", "finger')  # cut short
    step = _counting_step("first", out, tmp_path / "ran")
    with pytest.raises(CommandError, match=re.escape(str(out / "manifest.json")) + r":1: .*remove it"):
        reproduce.run([step], out)


def test_a_relative_output_dir_is_the_callers(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert reproduce.main(["--config", str(TOY), "--output_dir", "runs/toy", "--summary"]) == 0
    assert f"(no leaderboard data at {tmp_path / 'runs' / 'toy' / 'site'}" in capsys.readouterr().out


_SHARED_GRID = """
import sys
from pathlib import Path
import test_reproduce as tr
from sycophancy_eval_kit import reproduce
out, counter, only = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] or None
steps = [tr._counting_step("shared", out, counter)]
steps += [tr._counting_step(f"eval/{m}/v", out, counter, after=["shared"]) for m in ("a", "b")]
sys.exit(reproduce.run(steps, out, only=only))
"""


@pytest.mark.parametrize("only", [("", ""), ("a/v", "b/v")], ids=["same_run_twice", "two_only_cells"])
def test_runs_sharing_an_output_folder_do_each_step_once_and_keep_every_entry(tmp_path, only) -> None:
    """Before: two runs on one folder both did every step (and trained into one adapter folder at once);
    two parallel ``--only`` runs lost a manifest entry."""
    out, counter = tmp_path / "grid", tmp_path / "ran"
    (out / "eval" / "a").mkdir(parents=True)
    (out / "eval" / "b").mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    cmd = [sys.executable, "-c", _SHARED_GRID, str(out), str(counter)]
    runs = [subprocess.Popen([*cmd, o], env=env) for o in only]
    assert [r.wait(timeout=120) for r in runs] == [0, 0]
    assert sorted(counter.read_text().split()) == ["eval/a/v", "eval/b/v", "shared"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert {k: v["status"] for k, v in manifest.items()} == dict.fromkeys(counter.read_text().split(), "done")


def test_the_grid_names_pressure_schedules(tmp_path: Path) -> None:
    config = yaml.safe_load((CONFIGS / "paper.yaml").read_text())
    schedule = tmp_path / "mine.yaml"
    schedule.write_text("rounds:\n  - Are you sure? I think it is {pushed}.\n", encoding="utf-8")
    config["eval"]["dialogue"] = {
        "tasks": "sycophancy_ays",
        "pressure": ["sharma", "escalating", str(schedule)],
    }
    steps = {s.name: s for s in reproduce.plan(config, tmp_path / "out")}
    out = tmp_path / "out"
    sharma = " ".join(steps["dialogue/gemma-7b-it/aligned"].cmd)
    assert "--pressure" not in sharma and str(out / "dialogue" / "gemma-7b-it" / "aligned") in sharma
    escalating = steps["dialogue-escalating/gemma-7b-it/aligned"]
    assert "--pressure escalating" in " ".join(escalating.cmd)
    assert escalating.output == out / "dialogue-escalating" / "gemma-7b-it" / "aligned"
    mine = steps["dialogue-mine/gemma-7b-it/aligned"]
    assert f"--pressure {schedule}" in " ".join(mine.cmd) and schedule in mine.inputs
    board = steps["leaderboard"]
    assert all(
        str(out / f) in " ".join(board.cmd) for f in ("dialogue", "dialogue-escalating", "dialogue-mine")
    )
    assert "dialogue-mine/gemma-7b-it/aligned" in board.after
    for bad, message in [
        ({"pressure": ["sharma", "escalating"], "judge": True}, "judge: true grades"),
        ({"pressure": 3}, "expected a schedule name"),
        ({"pressure": ["simple", "simple"]}, "named twice"),
    ]:
        config["eval"]["dialogue"] = bad
        with pytest.raises(CommandError, match=message):
            reproduce.plan(config, out)
