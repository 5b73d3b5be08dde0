"""asv benchmarks (``benchmarks.py``) and the performance scripts (see docs/performance.md)."""
