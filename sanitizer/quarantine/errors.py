"""Errors of the quarantine store; all are ``SanitizerError`` so the CLI prints one line."""

from __future__ import annotations

from sanitizer.errors import SanitizerError


class LedgerError(SanitizerError):
    """The ledger database cannot be reached or has an unexpected schema."""


class BatchNotFoundError(SanitizerError):
    """No batch (or more than one) matches the given id or id prefix."""


class TransitionError(SanitizerError):
    """A state change the ledger refuses (not an allowed transition, or lost a race)."""


class UnsafePathError(SanitizerError):
    """A file or dataset name that could escape its zone."""


class StoreError(SanitizerError):
    """A copy could not be verified, or the zones disagree with the ledger."""
