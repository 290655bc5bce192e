"""Builds the Sycophancy Answer Assessment (SAA) preference set from BCT training data.

Library use::

    from saa_data import BuildConfig, build
    result = build(BuildConfig(out="saa/", bct="bct_non_cot.jsonl", sources="cot-transparency/data"))

Modules by role: ``inputs`` (pinned files, download, cache), ``suggestions`` (BCT's suggestion
sentences), ``parse`` (BCT rows), ``ground_truth`` (matching against the source questions), ``pairs``
(split and pair rule), ``screening`` (PII, offensive language), ``overlap`` (contamination), ``card``
(dataset card, LLaMA-Factory entry), ``builder`` (the pipeline), ``hub`` (upload), ``cli``.
"""

from sycophancy_eval_kit.saa_data.builder import BuildConfig, BuildResult, build

__all__ = ["BuildConfig", "BuildResult", "build"]
