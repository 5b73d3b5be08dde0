"""Seed derivation: every seed comes from (task, repetition, stream), never from the method.

So within one repetition every method sees the same data / random labels (stream ``data``),
the same batch order (stream ``order``) and the same Gaussian draws for W0 and V0 (stream
``init``): MLI methods share the first half of W0 with the LeCun-init methods, which share all
of it with each other. That makes method comparisons paired.
"""

from __future__ import annotations

import hashlib

STREAMS = ("data", "init", "order")


def derive_seed(task: str, repetition: int, stream: str) -> int:
    if stream not in STREAMS:
        raise ValueError(f"unknown seed stream {stream!r}; valid: {', '.join(STREAMS)}")
    digest = hashlib.sha256(f"bench_suite/{task}/{repetition}/{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def seeds_for(task: str, repetition: int) -> dict[str, int]:
    return {"repetition": repetition, **{s: derive_seed(task, repetition, s) for s in STREAMS}}
