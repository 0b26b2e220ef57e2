"""Check families. Importing this package registers the built-in checks."""

from sanitizer.checks.base import (
    Check,
    CheckResult,
    create_check,
    get_check_class,
    registered_checks,
    validate_check_configs,
)
from sanitizer.checks.schema import SchemaCheck

__all__ = [
    "Check",
    "CheckResult",
    "SchemaCheck",
    "create_check",
    "get_check_class",
    "registered_checks",
    "validate_check_configs",
]
