"""What every entry point shares: file layer, the Sharma-format loader and writer, prompts, answer
reading, grading, the metric registry, aggregation, statistics, the judge and child-process groups.

Nothing here imports the lm-eval task folder, the leaderboard, ``saa_data`` or ``training``.
"""
