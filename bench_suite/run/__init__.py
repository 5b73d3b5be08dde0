"""Running cells into a store: the runner (groups, data, trainers, checkpoints, records), the
plan and its cost, how cells group, provenance. Executors (bench_suite/executors) drive it.
"""
