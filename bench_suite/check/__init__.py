"""Checking results against the paper: the reference rows (``baselines/``), which records count,
one scorer per kind of check, verdicts. It reads the store and never imports the runner.
"""
