"""What ``pip install`` puts into site-packages: one namespace of ours (plus the start-up hook), every
package and data file the kit needs, and nothing a user's own folders can shadow or be shadowed by."""

from __future__ import annotations

import tomllib
import zipfile
from pathlib import Path

import pytest
from venvs import REPO, fresh_venv, pip_install, run_ok

from sycophancy_eval_kit.core import procs

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
NAMESPACE = "sycophancy_eval_kit"
HOOK_FILES = sorted(p.name for p in (REPO / "build_backend" / "site_packages").iterdir() if p.is_file())
SAA_FIXTURES = REPO / "tests" / "fixtures" / "saa"
LEADERBOARD_RUNS = REPO / "tests" / "fixtures" / "leaderboard" / "runs"
TRAINING_FIXTURES = REPO / "training" / "fixtures"
#: the design card's folders, as a user's own project might name its packages
GENERIC_NAMES = ("training", "leaderboard", "saa_data", "lm_eval_tasks")


def _package_dirs() -> dict[str, Path]:
    """Every package the distribution declares, with the source folder it comes from."""
    mapping = SETUPTOOLS["package-dir"]
    out = {}
    for name in SETUPTOOLS["packages"]:
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):  # the longest mapped prefix
            prefix = ".".join(parts[:cut])
            if prefix in mapping:
                out[name] = REPO / mapping[prefix] / Path(*parts[cut:])
                break
    return out


def test_every_folder_of_the_namespace_is_declared() -> None:
    """A new subpackage or data folder that pyproject does not list would be missing from the wheel."""
    declared = _package_dirs()
    assert all(folder.is_dir() for folder in declared.values()), declared
    roots = {declared[n] for n in declared if n == NAMESPACE or n.count(".") == 1}
    found = set()
    for root in roots:
        for folder in [root, *root.rglob("*")]:
            if folder.is_dir() and folder.name != "__pycache__" and any(
                f.is_file() and f.suffix != ".pyc" for f in folder.iterdir()
            ):
                found.add(folder)
    # folders of the clone only: fixtures that tests and the smoke config read by path
    clone_only = {TRAINING_FIXTURES, TRAINING_FIXTURES / "saa"}
    assert found - clone_only == set(declared.values()), (found - clone_only) ^ set(declared.values())


@pytest.mark.slow
def test_the_wheel_holds_one_namespace_and_the_hook(kit_wheel: Path) -> None:
    with zipfile.ZipFile(kit_wheel) as archive:
        names = archive.namelist()
    top = {n.split("/")[0] for n in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert top - dist_info == {NAMESPACE, *HOOK_FILES}, top
    inside = {n.removeprefix(f"{NAMESPACE}/") for n in names if n.startswith(f"{NAMESPACE}/")}
    for needed in (  # what the kit reads at run time, beside its modules
        "lm_eval_tasks/sycophancy/sycophancy_answer_trivia_qa.yaml",
        "lm_eval_tasks/sycophancy/_answer_template",
        "lm_eval_tasks/sycophancy/README.md",
        "core/sample_data/answer.jsonl",
        "core/sample_data/are_you_sure.jsonl",
        "leaderboard/templates/index.html",
        "leaderboard/static/leaderboard.css",
        "training/orpo.py",
        "training/configs/paper.yaml",
        "training/accelerate/single_gpu.yaml",
        "testing/tiny_models.py",
        "reproduce.py",
    ):
        assert needed in inside, needed
    assert not [n for n in inside if n.split("/")[0] in ("tests", "benchmarks", "examples", "scripts")]


@pytest.mark.slow
def test_a_users_own_folders_neither_shadow_the_kit_nor_are_shadowed(
    kit_wheel: Path, tiny_model: Path, tmp_path: Path
) -> None:
    """From a project with its own ``training/``, ``leaderboard/``, ``saa_data/`` and ``lm_eval_tasks/``
    packages (each raises when imported), the wheel's kit runs every part; the user's own imports
    still find the user's packages."""
    python = fresh_venv(tmp_path / "venv")
    pip_install(python, kit_wheel)
    project = tmp_path / "project"
    for name in GENERIC_NAMES:
        (project / name).mkdir(parents=True)
        (project / name / "__init__.py").write_text(f"raise RuntimeError('the user\\'s own {name}')\n")
    shadowed = procs.run_group([str(python), "-c", "import training"], timeout=60, cwd=project)
    assert "the user's own training" in shadowed.stderr  # the user's package comes first for the user

    saa = ["build", "--out", "saa", "--bct", SAA_FIXTURES / "bct_sample.jsonl", "--sources"]
    saa += [SAA_FIXTURES / "sources", "--n_correct", "4", "--n_incorrect", "3"]
    run_ok([python, "-m", f"{NAMESPACE}.saa_data", *saa], cwd=project, SYCOPHANCY_DATA_DIR="embedded")
    assert (project / "saa" / "saa.jsonl").is_file()

    lm_eval = [python, "-m", "lm_eval", "--model", "dummy", "--tasks", "sycophancy_answer_trivia_qa"]
    lm_eval += ["--limit", "2"]
    run_ok([*lm_eval, "--metadata", "data_dir=embedded"], cwd=project)

    board = ["build", LEADERBOARD_RUNS, "--out", "site", "--resamples", "200"]
    run_ok([python, "-m", f"{NAMESPACE}.leaderboard", *board], cwd=project)
    assert (project / "site" / "index.html").is_file()

    # the design card's `accelerate launch training/orpo.py`, the clone's script over the wheel's kit
    launch = [python, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    launch += [REPO / "training" / "orpo.py"]
    launch += ["--config", REPO / "training" / "configs" / "smoke.yaml", "--model_name_or_path", tiny_model]
    launch += ["--dpo_mix_en_path", TRAINING_FIXTURES / "dpo_mix_en_smoke.json"]
    launch += ["--saa_path", project / "saa"]
    launch += ["--output_dir", project / "adapter", "--max_steps", "1", "--report_to", "none"]
    run_ok(launch, cwd=project, timeout=300, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    assert (project / "adapter" / "adapter_config.json").is_file()
