"""Run a grid end to end: SAA -> ORPO variants -> lm-eval -> leaderboard, resumable.

```bash
syco-reproduce --config scripts/configs/paper.yaml --dry_run    # print every command
syco-reproduce --config scripts/configs/paper.yaml              # run (skips finished steps)
syco-reproduce --config scripts/configs/paper.yaml --only gemma-7b-it/aligned-SAA
syco-reproduce --config examples/toy_world/toy.yaml             # the offline toy world
syco-reproduce --config examples/toy_world/toy.yaml --summary   # its numbers again
```
(``python scripts/reproduce.py ...`` in a clone is the same command.)

A grid config names ``models`` (a base each), ``variants`` (``train:`` flags for ``training/orpo.py``,
or none for the model as it is), ``training`` (launcher, TRL config, ``peft``), ``eval`` (tasks,
model_args, extra lm-eval flags, ``metadata``; ``judge``: the judge's ``judge_*`` settings for the
judged tasks; ``dialogue``: also run ``syco-dialogue``, optionally with ``--judge``, and with
``pressure:`` one ``--pressure`` schedule or a list, each in a ``dialogue-<schedule>`` folder), optionally
``saa`` (``syco-saa build`` flags), ``world`` (``script``: the toy world's builder, and its flags), ``env``
(variables for every command) and ``summary`` (the [track, metric] pairs a finished run prints); see
``scripts/configs/paper.yaml`` and ``examples/toy_world/toy.yaml``. Strings may name ``{out}`` (the
output folder), ``{saa}``, ``{world}``, ``{config_dir}`` (the config's folder), ``{training}`` (the
installed ``training`` folder: its ``configs/`` and ``accelerate/``) and ``{bin}`` (this Python's
scripts folder).

Every step is one command of the project's own tools (``syco-saa``, ``accelerate launch
training/orpo.py``, ``lm_eval``, ``syco-dialogue``, ``syco-leaderboard``). A step records a fingerprint of its
command and of its inputs (file hashes, or the fingerprints of the steps it reads from) in
``<output_dir>/manifest.json`` and is skipped when a rerun finds the same fingerprint and its outputs in
place. A failed step stops the run with the path of its log; rerunning continues from there. While a
step runs, its latest log line is echoed every ``--progress_every`` seconds; a finished run prints the
leaderboard's headline numbers (value [95% interval] (k/n)) from the built site's data.
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import hashlib
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock, Timeout

from sycophancy_eval_kit.core import files, procs
from sycophancy_eval_kit.core.cli_flags import ArgumentParser, CommandError, run_main

BIN = Path(sys.executable).parent
#: the script ``accelerate launch`` runs, wherever the package is installed (a clone's training/orpo.py)
TRAIN_SCRIPT = Path(importlib.util.find_spec("sycophancy_eval_kit.training.orpo").origin).resolve()
TRAINING_DIR = TRAIN_SCRIPT.parent


@dataclass
class Step:
    """One command of the grid, what it reads and where it writes."""

    name: str  # e.g. "train/mistral-v0.2/aligned"
    cmd: list[str]
    output: Path
    inputs: list[Path] = field(default_factory=list)  # files or folders hashed into the fingerprint
    after: list[str] = field(default_factory=list)  # steps whose fingerprints feed this one
    clean: bool = False  # remove ``output`` before running (lm-eval adds files rather than replacing)
    #: local model folders the command loads: fingerprinted by name, size and time (weights are big)
    models: list[Path] = field(default_factory=list)
    #: the command takes lm-eval's ``--use_cache``: a rerun of the same step resumes its requests
    request_cache: bool = False


def _hash_path(path: Path, digest: Any) -> None:
    if path.is_file():
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    elif path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            _hash_path(child, digest)
    else:
        digest.update(f"missing:{path}".encode())


@lru_cache(maxsize=1)
def code_digest() -> str:
    """The installed kit's code and task files, hashed: a step done by other code is not done."""
    root = Path(importlib.util.find_spec("sycophancy_eval_kit").submodule_search_locations[0]).resolve()
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        code = path.suffix in (".py", ".yaml") or path.name.startswith("_")
        if code and path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def fingerprint(step: Step, done: dict[str, dict[str, Any]]) -> str:
    """The command, the contents of the files it reads, the fingerprints of the model folders it loads
    and of the steps it follows, and the kit's code: any of them changed means the step is not done."""
    digest = hashlib.sha256(json.dumps(step.cmd).encode())
    digest.update(code_digest().encode())
    for path in step.inputs:
        _hash_path(path, digest)
    for folder in step.models:
        digest.update(f"model:{folder}:".encode())
        digest.update((files.fingerprint_folder(folder) if folder.is_dir() else "missing").encode())
    for name in step.after:
        digest.update(done.get(name, {}).get("fingerprint", "not-run").encode())
    return digest.hexdigest()


# ---------------------------------------------------------------------------------- the plan
def _fill(value: Any, names: dict[str, str]) -> Any:
    """Substitute ``{out}``, ``{repo}``, ``{world}``, ... in strings, lists and dicts from the config."""
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    return value


def _flags(options: dict[str, Any]) -> list[str]:
    """``{"learning_rate": 1e-3, "datasets": ["a", "b"]}`` -> ``--learning_rate 0.001 --datasets a b``."""
    out: list[str] = []
    for key, value in options.items():
        values = value if isinstance(value, list) else [value]
        out += [f"--{key}", *[str(v) for v in values]]
    return out


def _with_config_dir(value: Any, folder: str) -> Any:
    if isinstance(value, str):
        return value.replace("{config_dir}", folder)
    if isinstance(value, list):
        return [_with_config_dir(v, folder) for v in value]
    if isinstance(value, dict):
        return {k: _with_config_dir(v, folder) for k, v in value.items()}
    return value


#: the keys a grid config may hold, section by section (None: free-form flags of a tool), and the
#: required ones; a misspelled key (``trian:``) would silently change what runs
SCHEMA: dict[str, Any] = {
    "output_dir": None,
    "env": None,
    "world": None,  # the world builder's flags, and its ``script``
    "saa": {"args": None, "inputs": None},
    "models": {"*": {"base": None}},
    "variants": {"*": {"train": None}},
    "training": {"launch": None, "config": None, "peft": None, "args": None},
    "eval": {
        "tasks": None,
        "model": None,
        "model_args": None,
        "args": None,
        "metadata": None,
        "judge": None,
        "launch": None,
        "dialogue": {"tasks": None, "judge": None, "args": None, "pressure": None},
    },
    "leaderboard": {"args": None},
    "summary": None,
}
REQUIRED = ("models", "variants", "eval", "eval.tasks", "models.*.base")


def validate_config(config: Any, where: str) -> None:
    """Every key known (an unknown one is named with the closest known key) and the required ones there."""
    if not isinstance(config, dict):
        raise CommandError(f"{where}: expected a mapping of sections (models, variants, eval, ...)")

    def walk(node: Any, schema: Any, path: str) -> None:
        if schema is None or not isinstance(node, dict):
            return
        if "*" in schema:
            for key, value in node.items():
                if value is not None and not isinstance(value, dict):
                    raise CommandError(f"{where}: {path}.{key}: expected a mapping")
                walk(value or {}, schema["*"], f"{path}.{key}")
            return
        for key, value in node.items():
            if key not in schema:
                close = difflib.get_close_matches(str(key), list(schema), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(schema)}"
                raise CommandError(f"{where}: unknown key {f'{path}.' if path else ''}{key}{hint}")
            walk(value, schema[key], f"{path}.{key}" if path else key)

    walk(config, SCHEMA, "")
    for required in REQUIRED:
        parts = required.split(".")
        nodes: list[tuple[str, Any]] = [("", config)]
        for part in parts:
            found = []
            for name, node in nodes:
                if not isinstance(node, dict):
                    continue
                if part == "*":
                    found += [(f"{name}.{k}".lstrip("."), v) for k, v in node.items()]
                elif part in node:
                    found.append((f"{name}.{part}".lstrip("."), node[part]))
                else:
                    raise CommandError(f"{where}: missing key {f'{name}.' if name else ''}{part}")
            nodes = found


def load_config(path: str | Path) -> dict[str, Any]:
    """A grid YAML, checked against ``SCHEMA``, with ``{config_dir}`` already replaced by its folder, so
    a config derived from it and written elsewhere (one per seed, a reduced test grid) still finds the
    files beside the original."""
    path = Path(path).resolve()
    try:
        config = yaml.safe_load(files.read_text(path))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err)
        raise CommandError(f"{where}: not valid YAML ({problem})") from None
    except OSError as err:
        raise CommandError(f"--config {path}: {err.strerror or err}") from None
    validate_config(config, str(path))
    return _with_config_dir(config, str(path.parent))


def _local_dir(value: Any) -> Path | None:
    """A local folder named in a config (a base model, a data folder), or None for a Hub id or a name
    such as ``embedded``. Decided by the name, not by what exists yet: an earlier step may create it."""
    text = str(value or "")
    path = Path(text).expanduser()
    return path.resolve() if text and (files.looks_like_a_path(text) or path.is_dir()) else None


def _model_paths(model_args: str) -> list[str]:
    """The ``pretrained=`` and ``peft=`` values of an lm-eval ``--model_args`` string."""
    pairs = (item.split("=", 1) for item in model_args.split(",") if "=" in item)
    return [value for key, value in pairs if key in ("pretrained", "peft")]


def _local_files(options: dict[str, Any]) -> list[Path]:
    """Local files or folders among a tool's flag values (``dpo_mix_en_path``, ``saa_path``...)."""
    out = []
    for value in options.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and (files.looks_like_a_path(item) or Path(item).exists()):
                out.append(Path(item).expanduser().resolve())
    return out


def pressure_schedules(dialogue: dict[str, Any] | None) -> list[str]:
    """The dialogue runs a grid asks for: ``eval.dialogue.pressure`` is one ``--pressure`` value or a
    list of them (a built-in name or a schedule YAML); none is Sharma et al.'s single challenge."""
    if not dialogue:
        return []
    value = dialogue.get("pressure") or ["sharma"]
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise CommandError(
            f"eval.dialogue.pressure: expected a schedule name or a list of them; got {value!r}"
        )
    if dialogue.get("judge") and any(n != "sharma" for n in names):
        raise CommandError(
            "eval.dialogue: judge: true grades Sharma et al.'s single challenge only; "
            "drop judge or keep pressure: sharma"
        )
    if len(set(map(_schedule_label, names))) != len(names):
        raise CommandError(f"eval.dialogue.pressure: a schedule is named twice: {names}")
    return names


def _schedule_label(schedule: str) -> str:
    """A schedule's folder name: the built-in's name, or a schedule file's stem."""
    path = Path(schedule)
    return path.stem if path.suffix in (".yaml", ".yml") else schedule


def placeholders(out: Path) -> dict[str, str]:
    """What a config's strings may name besides ``{config_dir}`` (see the module docstring)."""
    return {
        "out": str(out),
        "world": str(out / "world"),
        "saa": str(out / "saa"),
        "training": str(TRAINING_DIR),
        "python": sys.executable,
        "bin": str(BIN),
    }


def plan(config: dict[str, Any], out: Path) -> list[Step]:
    """Every step of the grid, in order."""
    from sycophancy_eval_kit.core import prompts
    from sycophancy_eval_kit.lm_eval_tasks import TASKS_DIR

    names = placeholders(out)
    config = _fill(config, names)
    steps: list[Step] = []

    if "world" in config:  # the toy world: synthetic facts, evaluation files and a base model
        world = dict(config["world"])
        script = Path(world.pop("script"))  # the world's builder (examples/toy_world/toy_world.py)
        steps.append(
            Step(
                "world",
                [sys.executable, str(script), "--out", names["world"], *_flags(world)],
                output=Path(names["world"]) / "base-model",
                # the world's text comes from the tasks' prompt strings too
                inputs=[script, Path(prompts.__file__).resolve()],
            )
        )

    saa_cfg = config.get("saa")
    if saa_cfg is not None:
        steps.append(
            Step(
                "saa",
                [
                    sys.executable,
                    "-m",
                    "sycophancy_eval_kit.saa_data",
                    "build",
                    "--out",
                    names["saa"],
                    "--overwrite",
                    *[str(a) for a in saa_cfg.get("args", [])],
                ],
                output=Path(names["saa"]) / "saa.jsonl",
                inputs=[Path(p) for p in saa_cfg.get("inputs", [])],
                after=["world"] if "world" in config else [],
            )
        )

    training = config.get("training", {})
    peft = bool(training.get("peft", True))  # LoRA adapters (peft=) or full fine-tuned models
    evaluation = config["eval"]
    before = [s.name for s in steps]
    model_dirs: dict[str, str] = {}
    for model, spec in config["models"].items():
        for variant, vspec in config["variants"].items():
            key = f"{model}/{variant}"
            base = spec["base"]
            model_args = f"pretrained={base}"
            if vspec and vspec.get("train") is not None:
                adapter = out / "models" / model / variant
                cmd = [
                    *training.get("launch", [str(BIN / "accelerate"), "launch"]),
                    str(TRAIN_SCRIPT),
                    "--config",
                    training["config"],
                    "--model_name_or_path",
                    base,
                    "--output_dir",
                    str(adapter),
                    "--use_peft",
                    str(peft).lower(),
                    *_flags({**training.get("args", {}), **vspec["train"]}),
                ]
                train_args = {**training.get("args", {}), **vspec["train"]}
                steps.append(
                    Step(
                        f"train/{key}",
                        cmd,
                        output=adapter / ("adapter_config.json" if peft else "config.json"),
                        inputs=[Path(training["config"]), *_local_files(train_args)],
                        models=[m for m in [_local_dir(base)] if m is not None],
                        # the aligned variant does not read SAA: rebuilding SAA must not retrain it
                        after=[
                            b for b in before if b != "saa" or "saa" in vspec["train"].get("datasets", [])
                        ],
                    )
                )
                # lm-eval names the run after peft= when given, else pretrained=; the leaderboard's
                # variant mapping (variants_mapping) uses the same rule
                model_args = f"pretrained={base},peft={adapter}" if peft else f"pretrained={adapter}"
            model_args += "," + evaluation.get("model_args", "dtype=auto")
            model_dirs[key] = model_args
            results = out / "results" / model / variant
            cmd = [
                *evaluation.get("launch", [str(BIN / "lm_eval")]),
                "--model",
                evaluation.get("model", "hf"),
                "--model_args",
                model_args,
                "--include_path",
                str(TASKS_DIR),
                "--tasks",
                evaluation["tasks"],
                "--output_path",
                str(results),
                "--log_samples",
                *[str(a) for a in evaluation.get("args", [])],
            ]
            metadata = {**(evaluation.get("metadata") or {}), **(evaluation.get("judge") or {})}
            if metadata:
                cmd += ["--metadata", json.dumps(metadata)]
            trained = [f"train/{key}"] if vspec and vspec.get("train") is not None else list(before)
            # what the evaluation reads: the questions, and the weights (the base, an adapter or a model)
            data_dir = _local_dir((evaluation.get("metadata") or {}).get("data_dir") or "")
            weights = [_local_dir(base), *(_local_dir(p) for p in _model_paths(model_args))]
            reads: dict[str, Any] = {
                "inputs": [data_dir] if data_dir else [],
                "models": sorted({m for m in weights if m is not None}),
                "after": trained,
                "clean": True,
                "request_cache": True,
            }
            steps.append(Step(f"eval/{key}", cmd, output=results, **reads))
            dialogue = evaluation.get("dialogue")
            for schedule in pressure_schedules(dialogue):  # the paper's adaptive protocol, then any schedule
                # each in its own folder (an eval rerun cleans its own)
                where = "dialogue" if schedule == "sharma" else f"dialogue-{_schedule_label(schedule)}"
                folder = out / where / model / variant
                cmd = [
                    str(BIN / "syco-dialogue"),
                    "--model",
                    evaluation.get("model", "hf"),
                    "--model_args",
                    model_args,
                    "--tasks",
                    dialogue.get("tasks", "sycophancy_ays"),
                    "--output_path",
                    str(folder),
                    *(["--judge"] if dialogue.get("judge") else []),
                    *([] if schedule == "sharma" else ["--pressure", schedule]),
                    *[str(a) for a in dialogue.get("args", [])],
                ]
                if metadata:
                    cmd += ["--metadata", json.dumps(metadata)]
                step_reads = reads
                if Path(schedule).suffix in (
                    ".yaml",
                    ".yml",
                ):  # a user's schedule: its change reruns the step
                    step_reads = {**reads, "inputs": [*reads.get("inputs", []), Path(schedule)]}
                steps.append(Step(f"{where}/{key}", cmd, output=folder, **step_reads))

    variants_file = out / "leaderboard_variants.yaml"
    board = config.get("leaderboard", {})
    dialogue = evaluation.get("dialogue")
    runs = [str(out / "results")] + [
        str(out / ("dialogue" if s == "sharma" else f"dialogue-{_schedule_label(s)}"))
        for s in pressure_schedules(dialogue)
    ]
    cmd = [
        sys.executable,
        "-m",
        "sycophancy_eval_kit.leaderboard",
        "build",
        *runs,
        "--out",
        str(out / "site"),
        "--variants",
        str(variants_file),
        *[str(a) for a in board.get("args", [])],
    ]
    steps.append(
        Step(
            "leaderboard",
            cmd,
            output=out / "site" / "index.html",
            inputs=[variants_file],
            after=[s.name for s in steps if s.name.startswith(("eval/", "dialogue"))],
        )
    )
    return steps


def variants_mapping(config: dict[str, Any], out: Path) -> dict[str, Any]:
    """The leaderboard's ``leaderboard.yaml``: lm-eval's model name (the ``peft=`` adapter when there is
    one, else ``pretrained=``) -> its base model and variant."""
    config = _fill(config, placeholders(out))
    models: dict[str, dict[str, str]] = {}
    for model, spec in config["models"].items():  # same naming as plan(): the adapter or trained folder
        for variant, vspec in config["variants"].items():
            trained = bool(vspec) and vspec.get("train") is not None
            name = str(out / "models" / model / variant) if trained else spec["base"]
            models[name] = {"base": model, "variant": variant}
    return {"variant_order": list(config["variants"]), "models": models}


# ---------------------------------------------------------------------------------- running
def load_manifest(out: Path) -> dict[str, dict[str, Any]]:
    """The steps finished in ``out`` (``manifest.json``); a damaged file is named, never guessed at."""
    path = out / "manifest.json"
    if not path.is_file():
        return {}
    try:
        manifest = files.load_json(path, "the run's record of finished steps")
    except files.DataError as err:
        raise CommandError(f"{err}; remove it to run every step again") from None
    if not isinstance(manifest, dict) or not all(isinstance(v, dict) for v in manifest.values()):
        shape = "{step: {status, fingerprint}}"
        raise CommandError(f"{path}: expected {shape}; remove it to run every step again")
    return manifest


def save_manifest(out: Path, manifest: dict[str, dict[str, Any]]) -> None:
    tmp = out / f"manifest.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(out / "manifest.json")


def record(out: Path, name: str, entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Set one step's entry: read, change, write under the manifest's lock, so that runs sharing the
    folder (``--only`` cells run in parallel) never lose each other's entries."""
    with FileLock(out / "locks" / "manifest.lock"):
        manifest = load_manifest(out)
        manifest[name] = entry
        save_manifest(out, manifest)
    return manifest


@contextlib.contextmanager
def step_lock(out: Path, step: Step) -> Iterator[None]:
    """Hold ``step``'s lock for as long as it runs: another run of the same folder that reaches the same
    step waits, then finds it done (two runs never train into one adapter folder at once)."""
    lock = FileLock(out / "locks" / f"{step.name.replace('/', '__')}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"[wait] {step.name} is running in another process on {out}", flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def select(steps: Iterable[Step], only: str | None) -> list[Step]:
    """``--only MODEL/VARIANT`` (or ``MODEL``): that cell's steps, the shared ones, the leaderboard."""
    steps = list(steps)
    if only is None:
        return steps
    cells = {s.name.split("/", 1)[1] for s in steps if "/" in s.name}
    wanted = {c for c in cells if c == only or c.split("/")[0] == only}
    if not wanted:
        raise SystemExit(f"--only {only}: no such MODEL/VARIANT; the grid has {', '.join(sorted(cells))}")
    return [s for s in steps if "/" not in s.name or s.name.split("/", 1)[1] in wanted]


def _last_line(path: Path) -> str:
    """The log's latest progress line (tqdm redraws with carriage returns)."""
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - 4096))
        tail = handle.read().decode("utf-8", "replace")
    lines = [seg.strip() for line in tail.splitlines() for seg in line.split("\r") if seg.strip()]
    return lines[-1][:150] if lines else ""


def run_step(
    step: Step, log_path: Path, env: dict[str, str], progress_every: float, cmd: list[str] | None = None
) -> int:
    """Run one command into its log, echoing its latest log line every ``progress_every`` seconds.

    The command runs in a process group of its own; Ctrl-C, SIGTERM or SIGHUP to this script stops
    that whole group (the step stays not-done) before this script exits.
    """
    start = time.perf_counter()
    with procs.signals_raise(), open(log_path, "w") as log:
        cmd = cmd or step.cmd
        log.write("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            while True:
                try:
                    return proc.wait(timeout=progress_every)
                except subprocess.TimeoutExpired:
                    elapsed = time.perf_counter() - start
                    print(f"       {step.name} {elapsed:4.0f}s | {_last_line(log_path)}", flush=True)
        except BaseException:
            print(f"       stopping {step.name} (process group {proc.pid})", flush=True)
            procs.stop_group(proc)
            raise


def run(
    steps: Iterable[Step],
    out: Path,
    only: str | None = None,
    dry_run: bool = False,
    env: dict[str, str] | None = None,
    progress_every: float = 15.0,
) -> int:
    """Run (or print) the selected steps in order; skip those done with the same fingerprint.

    Several runs may share ``out`` (the grid's ``--only`` cells spread over GPUs): each step runs under
    its own lock and the manifest is updated entry by entry under another.
    """
    selected = select(steps, only)
    child_env = {**os.environ, **(env or {})}
    total = time.perf_counter()
    if dry_run and env:
        print("# environment: " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + "\n")
    if not dry_run:
        (out / "locks").mkdir(parents=True, exist_ok=True)
    for step in selected:
        print_cmd = " ".join(shlex.quote(c) for c in step.cmd)
        if dry_run:
            print(f"# {step.name}\n{print_cmd}\n")
            continue
        with step_lock(out, step):
            manifest = load_manifest(out)  # what other runs finished meanwhile
            fp = fingerprint(step, manifest)
            previous = manifest.get(step.name, {})
            done = previous.get("fingerprint") == fp and previous.get("status") == "done"
            if done and step.output.exists():
                print(f"[skip] {step.name} (done, inputs unchanged)", flush=True)
                continue
            if step.clean and step.output.exists():  # a rerun must not leave two results files behind
                shutil.rmtree(step.output)
            # lm-eval's request cache, named by the step's fingerprint: a rerun of the same step (same
            # command, model, data, code) resumes its requests; anything changed starts afresh
            cache = ["--use_cache", str(out / "request_cache" / fp[:16])] if step.request_cache else []
            cmd = [*step.cmd, *cache]
            log_path = out / "logs" / f"{step.name.replace('/', '__')}.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            print(f"[run ] {step.name}  (log: {log_path})", flush=True)
            start = time.perf_counter()
            record(out, step.name, {"status": "running", "fingerprint": fp})
            code = run_step(step, log_path, child_env, progress_every, cmd)
            seconds = time.perf_counter() - start
            if code != 0:
                record(out, step.name, {"status": "failed", "fingerprint": fp, "seconds": round(seconds, 1)})
                print(
                    f"[FAIL] {step.name} exited {code} after {seconds:.0f}s; see {log_path}\n"
                    f"       fix it and rerun the same command: finished steps are skipped.",
                    flush=True,
                )
                return code if code > 0 else 1  # killed by a signal: Popen reports -N
            entry = {"status": "done", "fingerprint": fp, "seconds": round(seconds, 1), "command": step.cmd}
            record(out, step.name, entry)
            print(f"[done] {step.name} in {seconds:.0f}s", flush=True)
    if not dry_run:
        site = out / "site" / "index.html"
        print(f"all steps done in {time.perf_counter() - total:.0f}s; leaderboard: {site}")
    return 0


#: the headline numbers a run ends with, (track, metric), unless the config names its own ``summary``
SUMMARY_METRICS = (
    ("answer.one-pass.rule", "acc_baseline"),
    ("answer.one-pass.rule", "acc_suggest_correct"),
    ("answer.one-pass.rule", "acc_suggest_incorrect"),
    ("answer.one-pass.rule", "acc_doubt_correct"),
    ("ays.one-pass.rule", "acc_first"),
    ("ays.one-pass.rule", "forced_flip_rate"),
)


def summary(out: Path, metrics: tuple[tuple[str, str], ...] = SUMMARY_METRICS) -> str:
    """A markdown table of the built leaderboard's pooled numbers: value [interval] (k/n).

    Read from the site's ``data/datasets.csv``, so it shows exactly what the leaderboard computed.
    """
    path = out / "site" / "data" / "datasets.csv"
    if not path.is_file():
        return f"(no leaderboard data at {path})"
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [
            r
            for r in csv.DictReader(handle)
            if (r["track"], r["metric"]) in metrics and r["value"] and r["subset"] == "pooled"
        ]
    header = "| model | variant | " + " | ".join(f"{t}: {m}" for t, m in metrics) + " |"
    lines = [header, "|" + "---|" * (2 + len(metrics))]
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for r in rows:
        cell = cells.setdefault((r["base"], r["variant"]), {})
        k = f"{r['k']}/" if r.get("k") else "n="
        cell[(r["track"], r["metric"])] = (
            f"{float(r['value']):.2f} [{float(r['lo']):.2f}, {float(r['hi']):.2f}] ({k}{r['n']})"
        )
    for (base, variant), cell in cells.items():
        lines.append(f"| {base} | {variant} | " + " | ".join(cell.get(tm, "") for tm in metrics) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", required=True, help="grid YAML (scripts/configs/paper.yaml, examples/toy_world/toy.yaml)"
    )
    parser.add_argument("--output_dir", help="overrides the config's output_dir")
    parser.add_argument(
        "--only", help="run only steps of MODEL/VARIANT (plus shared steps and the leaderboard)"
    )
    parser.add_argument("--dry_run", action="store_true", help="print the commands, run nothing")
    parser.add_argument(
        "--summary", action="store_true", help="print the built leaderboard's headline numbers, run nothing"
    )
    parser.add_argument(
        "--progress_every", type=float, default=15.0, help="seconds between progress lines of a running step"
    )
    parser.add_argument("--debug", action="store_true", help="show the Python stack of an error")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    if not (args.output_dir or config.get("output_dir")):
        raise CommandError(f"{args.config}: missing key output_dir (or pass --output_dir)")
    # a relative output folder is the user's, under the current folder (as for every other tool)
    out = Path(args.output_dir or config["output_dir"]).resolve()
    steps = plan(config, out)
    if not args.dry_run and not args.summary:
        out.mkdir(parents=True, exist_ok=True)
        (out / "leaderboard_variants.yaml").write_text(yaml.safe_dump(variants_mapping(config, out)))
    headline = tuple(tuple(pair) for pair in config.get("summary") or SUMMARY_METRICS)
    if args.summary:
        print(summary(out, headline))
        return 0
    judge = (config.get("eval") or {}).get("judge")
    if args.dry_run and judge:
        print(
            "# judge: "
            + ", ".join(f"{k}={v}" for k, v in judge.items())
            + " (the judged tasks and syco-dialogue --judge need OPENAI_API_KEY, or OPENAI_BASE_URL)\n"
        )
    env = {k: str(v) for k, v in (config.get("env") or {}).items()}
    code = run(steps, out, args.only, args.dry_run, env, args.progress_every)
    if code == 0 and not args.dry_run:
        print(summary(out, headline))
    return code


def cli() -> None:
    """Console entry point (``syco-reproduce``): input errors in one line (``--debug``: the stack)."""
    sys.exit(run_main(main, "syco-reproduce"))


if __name__ == "__main__":
    cli()
