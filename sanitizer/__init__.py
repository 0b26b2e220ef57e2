"""Training-data sanitizer: GX contracts and poisoning checks for ML training batches.

Heavy dependencies (pandas, scikit-learn, Great Expectations) load lazily, so
``import sanitizer`` is cheap for DAG files and the CLI's ``--help``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sanitizer.errors import ConfigError, InputError, NotFittedError, SanitizerError

if TYPE_CHECKING:
    from sanitizer.checks.base import Check, CheckResult
    from sanitizer.engine import Sanitizer
    from sanitizer.report import ScanReport

__version__ = "0.1.0"

__all__ = [
    "Check",
    "CheckResult",
    "ConfigError",
    "InputError",
    "NotFittedError",
    "Sanitizer",
    "SanitizerError",
    "ScanReport",
    "__version__",
]

_LAZY = {
    "Sanitizer": "sanitizer.engine",
    "ScanReport": "sanitizer.report",
    "Check": "sanitizer.checks.base",
    "CheckResult": "sanitizer.checks.base",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sanitizer' has no attribute {name!r}")
