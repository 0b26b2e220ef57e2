"""Integration tests need PostgreSQL and Redis on loopback and the celery extra: the
``deployment_services`` fixture skips them, with the reason, when any is missing.

A failed test that used a ``deployment`` (anything with a ``.cluster``) prints the last
lines of every process log of that cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cluster import unavailable_reason


@pytest.fixture(scope="session")
def deployment_services() -> None:
    """Skip (with the reason) when PostgreSQL, Redis or the celery extra are missing."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"integration deployment unavailable: {reason}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(autouse=True)
def _process_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report = getattr(request.node, "report_call", None)
    cluster = getattr(request.node.funcargs.get("deployment"), "cluster", None)
    if report is not None and report.failed and cluster is not None:
        print(f"\nprocess logs in {cluster.logs}:\n{cluster.log_tails()}")
