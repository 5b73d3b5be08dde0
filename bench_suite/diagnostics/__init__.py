"""Checks of the code itself: ``doctor`` (a device's numbers against the CPU's and the plain
autograd loop), the oracle (the fused engine against the reference trainer) and the probes
that guard the code versions (tests/test_golden.py).
"""
