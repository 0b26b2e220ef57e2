"""Shared fixtures: sample data generated at run time, written to real files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sanitizer.config import SanitizerConfig
from sanitizer.samples import make_dataset, split

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def population() -> pd.DataFrame:
    return make_dataset(4000, seed=7)


@pytest.fixture(scope="session")
def parts(population: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Disjoint reference (2000 rows) and two clean batches (400 rows each)."""
    ref, b1, b2 = split(population, [2000, 400, 400], seed=7)
    return ref, b1, b2


@pytest.fixture(scope="session")
def reference(parts: tuple[pd.DataFrame, ...]) -> pd.DataFrame:
    return parts[0]


@pytest.fixture(scope="session")
def clean_batch(parts: tuple[pd.DataFrame, ...]) -> pd.DataFrame:
    return parts[1]


@pytest.fixture(scope="session")
def config() -> SanitizerConfig:
    return SanitizerConfig(label_column="label", id_columns=("record_id",))


@pytest.fixture(scope="session")
def fitted(reference: pd.DataFrame, config: SanitizerConfig):  # type: ignore[no-untyped-def]
    from sanitizer.engine import Sanitizer

    return Sanitizer(config=config).fit(reference)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory, parts: tuple[pd.DataFrame, ...]) -> Path:
    """Real files: reference.csv, clean.csv, clean.parquet, schema_violation.csv."""
    d = tmp_path_factory.mktemp("data")
    ref, b1, _ = parts
    ref.to_csv(d / "reference.csv", index=False)
    b1.to_csv(d / "clean.csv", index=False)
    b1.to_parquet(d / "clean.parquet", index=False)
    bad = b1.copy()
    bad.loc[5, "x0"] = 1e6  # far outside the reference range
    bad.loc[9, "region"] = "atlantis"  # category never seen
    bad.to_csv(d / "schema_violation.csv", index=False)
    return d


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``sanitizer`` command in a subprocess (also the ``cli`` fixture)."""
    return subprocess.run(
        [sys.executable, "-m", "sanitizer.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


@pytest.fixture
def cli():  # type: ignore[no-untyped-def]
    return run_cli
