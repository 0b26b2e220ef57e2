"""Fault injection for crash tests: die hard at a named step of a move.

Set ``SANITIZER_FAULT_STEP`` to one of :data:`STEPS` (optionally
``step:N`` to die at the N-th time the step is reached) and the process
calls ``os._exit(FAULT_EXIT_CODE)`` there: no ``finally`` blocks, no
flushing, no rollback, like a killed worker. Unset in production.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

ENV_VAR = "SANITIZER_FAULT_STEP"
FAULT_EXIT_CODE = 86
#: The named steps of a lossless move, in order.
STEPS: tuple[str, ...] = (
    "after_claim",
    "after_copy",
    "after_verify",
    "after_record",
    "after_remove",
)
_seen: dict[str, int] = {}


def fault_point(step: str) -> None:
    """Exit the process immediately if ``SANITIZER_FAULT_STEP`` names this step."""
    wanted = os.environ.get(ENV_VAR)
    if not wanted:
        return
    name, _, nth = wanted.partition(":")
    if name != step:
        return
    _seen[step] = _seen.get(step, 0) + 1
    if _seen[step] >= (int(nth) if nth else 1):
        log.warning("fault injection: exiting at %s", step)
        os._exit(FAULT_EXIT_CODE)
