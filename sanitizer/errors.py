"""One exception hierarchy; every message says what to do about it."""

from __future__ import annotations


class SanitizerError(ValueError):
    """Base class of every error the sanitizer raises on purpose."""


class ConfigError(SanitizerError):
    """The configuration (file or arguments) is invalid; the message names the key."""


class InputError(SanitizerError):
    """A data file cannot be read or does not fit the data contract.

    The CLI turns it into one line on stderr and exit code 2; a scheduled run
    quarantines the batch with reason ``unreadable``.
    """

    def __init__(self, message: str, *, path: str | None = None, reason: str = "unreadable"):
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {message}" if path else message)


class NotFittedError(SanitizerError, AttributeError):
    """A sanitizer or check was used before ``fit``."""
