"""Let ``lm_eval --tasks sycophancy_answer`` find this package's tasks without ``--include_path``.

lm-eval 0.4.13 indexes its own task folder plus ``include_path`` and nothing else: it has no plugin
discovery (our ``lm_eval.tasks`` entry point is declared for the release that has). So the package
installs, at the top of site-packages, ``sycophancy_eval_kit_auto_include.pth`` and the module it imports,
``_sycophancy_eval_kit_trigger`` (both in ``build_backend/site_packages/``). The trigger waits on
``sys.meta_path``, importing nothing, until ``lm_eval.tasks`` is first imported; then
:func:`find_spec` loads lm-eval's module and :func:`patch` wraps ``TaskManager.__init__``. A process
that never imports lm-eval pays for that one small import at start-up and a string comparison per
import.

The wrapped ``TaskManager`` indexes our folder as if it were the first ``include_path``, so what
lm-eval documents stays true:

- ``include_defaults=False`` means "only the paths I give": nothing is added;
- an ``include_path`` that already covers our folder (or lies inside it) is left alone, so no task
  is indexed twice and no override warning is printed;
- the caller's ``include_path`` comes after ours, so its tasks win a name clash;
- if the installed lm-eval reads the ``lm_eval.tasks`` entry-point group itself, nothing is patched.

``SYCOPHANCY_AUTO_INCLUDE=0`` (or ``false``/``no``/``off``) switches it off, at start-up (no trigger)
or later (each ``TaskManager`` checks); ``--include_path "$(syco-tasks-path)"`` works either
way.
"""

from __future__ import annotations

import ast
import functools
import inspect
import logging
import os
import sys
from collections.abc import Callable
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Any

from sycophancy_eval_kit.lm_eval_tasks import TASKS_DIR

#: set to ``0`` to leave lm-eval's ``TaskManager`` untouched (the trigger reads it too).
ENV_VAR = "SYCOPHANCY_AUTO_INCLUDE"
#: the entry-point group this package declares; an lm-eval that reads it needs no hook.
ENTRY_POINT_GROUP = "lm_eval.tasks"
#: the public module that defines ``TaskManager``; the trigger waits for it.
TARGET = "lm_eval.tasks"
#: the class name of the trigger's finder, which this module takes off ``sys.meta_path``.
TRIGGER = "SycophancyAutoInclude"
#: the values of ``$SYCOPHANCY_AUTO_INCLUDE`` that mean off (any case, spaces ignored).
OFF_VALUES = ("0", "false", "no", "off")

log = logging.getLogger(__name__)


def enabled() -> bool:
    """False when ``$SYCOPHANCY_AUTO_INCLUDE`` says off."""
    return os.environ.get(ENV_VAR, "1").strip().lower() not in OFF_VALUES


def find_spec(name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
    """The trigger's ``find_spec`` for ``lm_eval.tasks``: the real finders' spec, patched once loaded.

    The trigger stays until the module is executed (a mere ``importlib.util.find_spec`` probe must
    not use it up). Returning ``None`` lets the import go on as if the hook were not there.
    """
    if not enabled():
        _remove_triggers()
        return None
    spec = _find_without_triggers(name, path, target)
    loader = spec.loader if spec is not None else None
    if loader is None or not hasattr(loader, "exec_module"):
        return None
    exec_module = loader.exec_module

    def exec_then_patch(module: ModuleType) -> None:
        _remove_triggers()
        exec_module(module)
        try:
            patch(module)
        except Exception:  # a hook that broke every lm-eval run would be worse than --include_path
            log.warning("could not patch TaskManager; pass --include_path %s", TASKS_DIR, exc_info=True)

    try:
        loader.exec_module = exec_then_patch  # type: ignore[method-assign]
    except AttributeError:  # a loader that refuses new attributes: leave lm-eval as it is
        return None
    return spec


def _find_without_triggers(name: str, path: Any, target: Any) -> ModuleSpec | None:
    # what importlib does, minus the triggers (asking importlib itself would recurse into them)
    for finder in list(sys.meta_path):
        find = getattr(finder, "find_spec", None)
        if not _is_trigger(finder) and find is not None:
            spec = find(name, path, target)
            if spec is not None:
                return spec
    return None


def _is_trigger(finder: object) -> bool:
    return type(finder).__name__ == TRIGGER


def _remove_triggers() -> None:
    sys.meta_path[:] = [finder for finder in sys.meta_path if not _is_trigger(finder)]


def patch(tasks_module: ModuleType) -> bool:
    """Wrap ``tasks_module.TaskManager.__init__`` so it indexes our folder; True if it is (now) wrapped."""
    manager = getattr(tasks_module, "TaskManager", None)
    init = getattr(manager, "__init__", None)
    if manager is None or init is None:
        log.warning("%s has no TaskManager; pass --include_path %s", tasks_module.__name__, TASKS_DIR)
        return False
    if getattr(init, "_sycophancy_auto_include", False):
        return True
    if lm_eval_reads_entry_points(tasks_module):
        log.debug("lm-eval reads the %r entry points itself; not patching TaskManager", ENTRY_POINT_GROUP)
        return False
    try:
        signature = inspect.signature(init)
    except (TypeError, ValueError):
        signature = None
    if signature is None or not {"include_path", "include_defaults"} <= set(signature.parameters):
        log.warning("TaskManager's signature is not 0.4.13's; pass --include_path %s", TASKS_DIR)
        return False
    manager.__init__ = _indexing_our_folder(init, signature)
    return True


def _indexing_our_folder(init: Callable[..., None], signature: inspect.Signature) -> Callable[..., None]:
    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        if enabled():
            args_ = bound.arguments
            args_["include_path"] = with_our_folder(args_["include_path"], args_["include_defaults"])
        init(*bound.args, **bound.kwargs)

    __init__._sycophancy_auto_include = True  # type: ignore[attr-defined]
    return __init__


def with_our_folder(include_path: Any, include_defaults: bool) -> Any:
    """The ``include_path`` to hand lm-eval: ours first, unless the caller excluded defaults or covers it."""
    if not include_defaults:
        return include_path
    if not include_path:
        paths: list[Any] = []
    elif isinstance(include_path, (list, tuple)):
        paths = list(include_path)
    else:
        paths = [include_path]
    if any(_overlaps(Path(p), TASKS_DIR) for p in paths):
        return include_path
    return [TASKS_DIR, *paths]


def _overlaps(path: Path, folder: Path) -> bool:
    # lm-eval globs **/*.yaml under each path, so an ancestor of our folder indexes it too
    path = path.expanduser().resolve()
    return path == folder or folder in path.parents or path in folder.parents


def lm_eval_reads_entry_points(tasks_module: ModuleType) -> bool:
    """Whether the installed lm-eval already reads the ``lm_eval.tasks`` entry-point group.

    0.4.13 does not. A release that does names the group beside an ``entry_points`` call, in its
    task package or in ``lm_eval/api/registry.py`` (where its registries live). The source is
    searched, not the loaded modules, because such code may sit in a module imported only when a
    ``TaskManager`` is built; comments do not count. Unreadable source counts as "no".
    """
    package = Path(tasks_module.__file__ or "").parent
    sources = [*sorted(package.glob("*.py")), package.parent / "api" / "registry.py"]
    return any(_names_group_and_calls_entry_points(path) for path in sources if path.is_file())


def _names_group_and_calls_entry_points(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
        if "entry_points" not in text or ENTRY_POINT_GROUP not in text:
            return False  # the common case, without parsing (registry.py alone is 20 kB)
        tree = ast.parse(text, filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return False
    names_group = calls_entry_points = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value == ENTRY_POINT_GROUP:
            names_group = True
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            calls_entry_points = calls_entry_points or called == "entry_points"
    return names_group and calls_entry_points
