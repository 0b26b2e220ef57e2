"""The ``[storage]`` table: defaults, path resolution, and an error naming every bad key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sanitizer.config import StorageConfig, config_from_dict, load_config
from sanitizer.errors import ConfigError

BASE = {"dataset": {"label_column": "label"}}


def _storage(table: dict[str, Any], base_dir: Path | None = None) -> StorageConfig:
    cfg = config_from_dict({**BASE, "storage": table}, base_dir=base_dir)
    assert cfg.storage is not None
    return cfg.storage


def test_no_storage_table_keeps_existing_behaviour() -> None:
    assert config_from_dict(BASE).storage is None


def test_defaults_and_relative_root(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "credit.toml"
    path.parent.mkdir()
    path.write_text('[dataset]\nlabel_column = "label"\n[storage]\nroot = "../store"\n')
    storage = load_config(path).storage
    assert storage is not None
    assert Path(storage.root) == (tmp_path / "store").absolute()
    assert storage.is_local
    assert storage.effective_ledger_url == f"sqlite:///{Path(storage.root) / 'ledger.sqlite'}"
    assert storage.max_file_bytes == 1024**3
    assert storage.settle_seconds == 60.0
    assert storage.ready_marker_suffix is None
    assert storage.claim_timeout_seconds == 3600.0


def test_full_table() -> None:
    storage = _storage(
        {
            "root": "s3://bucket/prefix",
            "ledger_url": "postgresql://sanitizer@db/ledger",
            "max_file_bytes": 1000,
            "settle_seconds": 5,
            "ready_marker_suffix": ".ready",
            "claim_timeout_seconds": 600,
        }
    )
    assert storage.root == "s3://bucket/prefix" and not storage.is_local
    assert storage.effective_ledger_url == "postgresql://sanitizer@db/ledger"
    assert (storage.max_file_bytes, storage.settle_seconds) == (1000, 5.0)


def test_file_url_root_gets_a_default_sqlite_ledger() -> None:
    storage = _storage({"root": "file:///data/store"})
    assert storage.effective_ledger_url == "sqlite:////data/store/ledger.sqlite"


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({}, "storage.root"),
        ({"root": ""}, "storage.root"),
        ({"root": 3}, "storage.root"),
        ({"root": "/s", "bucket": "x"}, "storage.bucket"),
        ({"root": "s3://b/p"}, "storage.ledger_url"),
        ({"root": "/s", "ledger_url": "ledger.db"}, "storage.ledger_url"),
        ({"root": "/s", "ledger_url": 5}, "storage.ledger_url"),
        ({"root": "/s", "max_file_bytes": 0}, "storage.max_file_bytes"),
        ({"root": "/s", "max_file_bytes": 1.5}, "storage.max_file_bytes"),
        ({"root": "/s", "max_file_bytes": True}, "storage.max_file_bytes"),
        ({"root": "/s", "settle_seconds": -1}, "storage.settle_seconds"),
        ({"root": "/s", "settle_seconds": "1"}, "storage.settle_seconds"),
        ({"root": "/s", "ready_marker_suffix": ""}, "storage.ready_marker_suffix"),
        ({"root": "/s", "ready_marker_suffix": "a/b"}, "storage.ready_marker_suffix"),
        ({"root": "/s", "ready_marker_suffix": 1}, "storage.ready_marker_suffix"),
        ({"root": "/s", "claim_timeout_seconds": 0}, "storage.claim_timeout_seconds"),
    ],
)
def test_invalid_storage_names_the_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config_from_dict({**BASE, "storage": table})


def test_storage_must_be_a_table() -> None:
    with pytest.raises(ConfigError, match="storage: must be a table"):
        config_from_dict({**BASE, "storage": "/data"})
