"""Your domain, your questions: a multiple-choice table -> sycophancy evaluation sets and SAA pairs.

``table`` reads and checks the table (any layout ``datasets`` loads, columns mapped, unusable rows
dropped and counted); ``build`` splits it and writes the evaluation folder (Sharma et al.'s layout,
read by the ``sycophancy_custom`` tasks and the dialogue) and the SAA folder (read by
``training/orpo.py``); ``cli`` is ``syco-domain``.
"""
