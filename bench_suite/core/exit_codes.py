"""The process exit codes of every command, defined once (docs/runner.md, docs/checks.md).

`run`: 0 every cell done, 1 some cell failed (error, diverged, interrupted, lost), 3 nothing
failed but some cells were skipped (no data), 69 the cluster stopped answering (sysexits'
EX_UNAVAILABLE), 75 stopped early by a time budget, checkpointed (sysexits' EX_TEMPFAIL: run
the same command again). `check`: 0 nothing failed unexpectedly, 1 an unexpected FAIL, 3 with
--strict only: nothing failed but something undecided.
Every command: 2 bad input or an internal error (one line), 130 Ctrl-C, 143 SIGTERM (handled as
Ctrl-C: `timeout`, `kill`), 141 its output's reader left (`| head`).
"""

OK = 0
FAILED = 1  # run: a cell errored, diverged, was interrupted or lost
USAGE = 2  # bad input (one line on stderr), or an unexpected internal error
SKIPPED = 3  # run: nothing failed, but some cells were skipped (their data is not there)
CLUSTER_LOST = 69  # run: the Dask scheduler / SLURM controller stopped answering; finished records kept
STOPPED = 75  # run: stopped early (time budget, request_stop), checkpointed: run the same command again
INTERRUPTED = 130  # Ctrl-C
TERMINATED = 143  # 128 + SIGTERM: stopped as by Ctrl-C (finished and interrupted cells recorded)
BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports it: the reader of stdout left (`| head`)

CHECK_PASS = 0  # nothing failed unexpectedly (INCONCLUSIVE / SKIPPED rows too, unless --strict)
CHECK_FAIL = 1  # at least one (unexpected) FAIL
CHECK_UNDECIDED = 3  # --strict: no FAIL, but something INCONCLUSIVE or SKIPPED (or nothing to check)
