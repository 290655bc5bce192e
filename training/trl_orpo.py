"""TRL's ORPO, imported in this one place, with a clear error when the installed TRL lacks it.

ORPO lives in ``trl.experimental`` in TRL 1.x, whose code TRL's maintainers promote or remove without
a deprecation cycle. The kit declares the TRL releases it was tested with (pyproject.toml); an install
outside them that no longer has ``trl.experimental.orpo`` gets this module's message, naming that
range, instead of a bare ``ModuleNotFoundError`` deep inside the trainer.
"""

from __future__ import annotations

import importlib.metadata

DISTRIBUTION = "sycophancy-eval-kit"


def supported_trl() -> str:
    """The TRL specifier the installed kit declares (``trl>=1.0,<2``), from its own metadata."""
    from packaging.requirements import Requirement

    try:
        requires = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return "trl (the range in pyproject.toml)"
    for line in requires:
        requirement = Requirement(line)
        if requirement.name == "trl" and requirement.marker is None:
            return f"trl{requirement.specifier}"
    return "trl"


try:
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer
    from trl.experimental.orpo.orpo_trainer import log1mexp
except ImportError as err:
    try:
        installed = importlib.metadata.version("trl")
    except importlib.metadata.PackageNotFoundError:
        installed = "not installed"
    raise ImportError(
        f"the ORPO trainer needs TRL's ORPO (trl.experimental.orpo), which TRL {installed} does not "
        f"provide ({err}). Install a TRL release the kit supports: pip install '{supported_trl()}'"
    ) from err

__all__ = ["ORPOConfig", "ORPOTrainer", "log1mexp", "supported_trl"]
