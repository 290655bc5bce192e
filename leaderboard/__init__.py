"""Turns lm-eval sycophancy results into a static leaderboard with paired statistics."""
