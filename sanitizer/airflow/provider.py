"""Provider metadata, found by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    from sanitizer import __version__

    return {
        "package-name": "airflow-training-sanitizer",
        "name": "Training Data Sanitizer",
        "description": (
            "Validates ML training batches with Great Expectations and data-poisoning "
            "checks, quarantines suspicious batches and gates retraining."
        ),
        "versions": [__version__],
    }
