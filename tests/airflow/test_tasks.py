"""Airflow task helpers that need no Airflow run: the stored profile's content key."""

from __future__ import annotations

import pytest

from sanitizer import profile
from sanitizer.airflow.tasks import _profile_key
from sanitizer.config import SanitizerConfig


def test_profile_key_changes_with_the_profile_format(monkeypatch: pytest.MonkeyPatch) -> None:
    """A profile stored by a version that wrote another format must not be reused
    (loading it would be refused): the key, hence the stored path, changes."""
    config = SanitizerConfig(label_column="label", dataset="demo")
    key = _profile_key(config, ["b1", "b2"])
    assert key == _profile_key(config, ["b2", "b1"])  # history order does not matter
    assert key != _profile_key(config, ["b1"])
    monkeypatch.setattr(profile, "FORMAT_VERSION", profile.FORMAT_VERSION + 1)
    assert _profile_key(config, ["b1", "b2"]) != key
