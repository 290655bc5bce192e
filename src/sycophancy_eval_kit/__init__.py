"""sycophancy-eval-kit: measure sycophancy inside lm-eval, build the SAA preference set, align with ORPO.

One import namespace for everything the distribution installs. The repository keeps the folders its
users know (``lm_eval_tasks/sycophancy``, ``training``, ``saa_data``, ``leaderboard``); packaging maps
each of them into this namespace (``pyproject.toml``, ``[tool.setuptools.package-dir]``), so an installed
kit never puts a generic top-level name such as ``training`` into site-packages. What the parts share
lives in ``core``; the adaptive dialogue in ``dialogue``; test doubles and the real-model helper in
``testing``; the paper grid's runner in ``reproduce``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sycophancy-eval-kit")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
