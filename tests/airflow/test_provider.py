from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sanitizer.airflow.provider import get_provider_info


def test_provider_info_matches_airflow_schema() -> None:
    from airflow.providers_manager import _create_provider_info_schema_validator

    info = get_provider_info()
    _create_provider_info_schema_validator().validate(info)
    assert info["package-name"] == "airflow-training-sanitizer"


@pytest.mark.slow
def test_airflow_lists_the_package_as_a_provider(tmp_path: Path) -> None:
    code = (
        "import json; from airflow.providers_manager import ProvidersManager;"
        "p = ProvidersManager().providers.get('airflow-training-sanitizer');"
        "print(json.dumps(p.data if p else None))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "AIRFLOW_HOME": str(tmp_path)},
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout.strip().splitlines()[-1])
    assert data["name"] == "Training Data Sanitizer"
