"""bench_suite: reproducibility harness for 'When Expressivity Meets Trainability:
Fewer than n Neurons Can Work' (Zhang, Zhang, Hong, Sun, Luo; NeurIPS 2021)."""

__version__ = "0.1.0"
