"""Fixtures for the quarantine store: a storage root with a config, small generated
batches, a sanitizer fitted once per session, and a fresh PostgreSQL schema."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from sanitizer.config import SanitizerConfig, load_config
from sanitizer.samples import make_dataset, split

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN_URL = f"postgresql+psycopg2://postgres@{PG_HOST}:{PG_PORT}/test"


def pg_reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def q_parts() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Small disjoint reference (500 rows) and three clean batches (60 rows each)."""
    population = make_dataset(900, seed=11)
    ref, b1, b2, b3 = split(population, [500, 60, 60, 60], seed=11)
    return ref, b1, b2, b3


@pytest.fixture(scope="session")
def q_fitted(q_parts: tuple[pd.DataFrame, ...]):  # type: ignore[no-untyped-def]
    """One fitted sanitizer for the whole session (GX validation is the slow part)."""
    from sanitizer.engine import Sanitizer

    config = SanitizerConfig(label_column="label", id_columns=("record_id",), dataset="credit")
    sanitizer = Sanitizer(config=config).fit(q_parts[0])
    sanitizer.scan(q_parts[1])  # warm GX up once
    return sanitizer


@dataclass
class Env:
    """A storage root, its landing folder and a dataset config on disk."""

    base: Path
    root: Path
    config_path: Path

    @property
    def landing(self) -> Path:
        return self.root / "landing" / "credit"

    @property
    def config(self) -> SanitizerConfig:
        return load_config(self.config_path)

    def zone(self, zone: str) -> Path:
        return self.root / zone / "credit"

    def cli(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sanitizer.cli", *args],
            capture_output=True,
            text=True,
            cwd=self.base,
            timeout=timeout,
            env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})},
        )


def write_env(
    base: Path,
    reference: pd.DataFrame,
    *,
    ledger_url: str | None = None,
    extra_storage: str = "",
) -> Env:
    base.mkdir(parents=True, exist_ok=True)
    reference.to_csv(base / "reference.csv", index=False)
    ledger = f'ledger_url = "{ledger_url}"\n' if ledger_url else ""
    config_path = base / "credit.toml"
    config_path.write_text(
        f"""
[dataset]
name = "credit"
label_column = "label"
id_columns = ["record_id"]
reference = "reference.csv"

[storage]
root = "store"
settle_seconds = 0
{ledger}{extra_storage}
""",
        encoding="utf-8",
    )
    env = Env(base=base, root=base / "store", config_path=config_path)
    env.landing.mkdir(parents=True, exist_ok=True)
    return env


@pytest.fixture
def env(tmp_path: Path, q_parts: tuple[pd.DataFrame, ...]) -> Env:
    return write_env(tmp_path, q_parts[0])


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL schema for one test, dropped afterwards."""
    if not pg_reachable():
        pytest.skip(f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT}")
    import sqlalchemy as sa

    schema = f"sanitizer_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL at {PG_HOST}:{PG_PORT} refused the test login: {exc}")
    try:
        yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same ledger tests on a SQLite file and on a real PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    return str(request.getfixturevalue("pg_url"))
