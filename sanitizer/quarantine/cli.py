"""CLI commands of the quarantine store (``run``, ``quarantine ...``, ``reconcile``)."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register the quarantine store's subcommands on the ``sanitizer`` parser."""
