from __future__ import annotations

import subprocess
import sys


def test_import_is_light() -> None:
    """DAG files and `sanitizer --help` must not pay for pandas, sklearn or GX."""
    code = (
        "import sys, sanitizer, sanitizer.cli, sanitizer.airflow.provider;"
        "heavy = [m for m in ('pandas', 'sklearn', 'great_expectations', 'scipy') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == ""


def test_public_api_names() -> None:
    import sanitizer

    assert sanitizer.Sanitizer.__name__ == "Sanitizer"
    assert sanitizer.ScanReport.__name__ == "ScanReport"
    assert issubclass(sanitizer.InputError, sanitizer.SanitizerError)
    assert issubclass(sanitizer.SanitizerError, ValueError)
