"""`python -m bench_suite.executors JOBFILE ...`: a worker process of a parallel executor."""

import sys

from .worker import worker_main

sys.exit(worker_main())
