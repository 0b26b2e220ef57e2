"""Airflow local settings of the integration deployment (on every component's PYTHONPATH).

A Celery worker imports the scan's heavy libraries once, before its pool forks. Airflow
3's supervisor forks the task process from the pool process (no exec), so every task
inherits pandas, scikit-learn and Great Expectations instead of importing them again
(about 9 s per scan task on this 2-core machine, against 3.5 s of actual work).
docs/deploy.md shows the same file for a production deployment.
"""

from __future__ import annotations

import importlib
import sys

__all__: list[str] = []  # Airflow copies every public name of this module into its settings

PRELOAD = ("pandas", "sklearn", "great_expectations", "sanitizer.engine", "sanitizer.profile")


def _is_celery_worker(argv: list[str]) -> bool:
    return "celery" in argv and "worker" in argv


if _is_celery_worker(sys.argv):
    for _module in PRELOAD:
        importlib.import_module(_module)
