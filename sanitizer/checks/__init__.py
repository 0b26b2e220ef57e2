"""Check families. Importing this package registers the built-in checks."""

from sanitizer.checks.backdoor import BackdoorCheck
from sanitizer.checks.base import (
    Check,
    CheckResult,
    create_check,
    get_check_class,
    registered_checks,
    validate_check_configs,
)
from sanitizer.checks.drift import ConditionalDriftCheck, DriftCheck
from sanitizer.checks.duplicates import DuplicatesCheck
from sanitizer.checks.impact import ImpactCheck
from sanitizer.checks.label_consistency import LabelConsistencyCheck
from sanitizer.checks.outliers import OutlierCheck
from sanitizer.checks.schema import SchemaCheck

__all__ = [
    "BackdoorCheck",
    "Check",
    "CheckResult",
    "ConditionalDriftCheck",
    "DriftCheck",
    "DuplicatesCheck",
    "ImpactCheck",
    "LabelConsistencyCheck",
    "OutlierCheck",
    "SchemaCheck",
    "create_check",
    "get_check_class",
    "registered_checks",
    "validate_check_configs",
]
