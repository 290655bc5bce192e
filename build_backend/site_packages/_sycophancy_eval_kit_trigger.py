"""sycophancy-eval-kit's start-up trigger: ``lm_eval`` finds the sycophancy tasks without --include_path.

``sycophancy_eval_kit_auto_include.pth`` imports this module when Python starts, in every process of the
environment, so it imports nothing (``os`` and ``sys`` are loaded already) and only puts a finder on
``sys.meta_path`` that waits for ``import lm_eval.tasks``; that import is handed to
``sycophancy_eval_kit.lm_eval_tasks.auto_include``, which says why and how. It is a top-level module,
not part of the package, so that start-up does not import the package (which would also pin the
installed copy before the script's own folder is on ``sys.path``). ``SYCOPHANCY_AUTO_INCLUDE=0``
leaves it out.
"""

import os
import sys

ENV_VAR = "SYCOPHANCY_AUTO_INCLUDE"
OFF_VALUES = ("0", "false", "no", "off")
TARGET = "lm_eval.tasks"


class SycophancyAutoInclude:
    """A meta-path finder that answers for ``lm_eval.tasks`` only (and returns ``None`` for the rest)."""

    def find_spec(self, name, path=None, target=None):
        if name != TARGET:
            return None
        from sycophancy_eval_kit.lm_eval_tasks import auto_include

        return auto_include.find_spec(name, path, target)


if os.environ.get(ENV_VAR, "1").strip().lower() not in OFF_VALUES:
    sys.meta_path.insert(0, SycophancyAutoInclude())
