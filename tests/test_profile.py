from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from sanitizer import Sanitizer
from sanitizer.checks._features import FeatureEncoder
from sanitizer.checks.base import Check, CheckResult
from sanitizer.config import CheckConfig, PolicyConfig
from sanitizer.errors import ConfigError, InputError
from sanitizer.profile import load_profile, save_profile
from sanitizer.table import Table


class StatefulCheck(Check):
    """Learns state of every supported kind; scores rows with the learned model."""

    name = "stateful_in_test"

    def __init__(self, alpha: float = 0.01, k: int = 3) -> None:
        self.alpha = alpha
        self.k = k

    def fit(self, reference: Table) -> Self:
        self.encoder_ = FeatureEncoder.fit(reference)
        x = reference.encoded(self.encoder_)
        self.model_ = LogisticRegression(max_iter=200).fit(x, reference.labels)
        self.counts_ = {("a", 1): 2, "b": np.int64(5)}
        self.values_ = np.array(["x", None], dtype=object)
        self.limit_ = float("inf")
        self.seen_ = {"0", "1"}
        self.quantiles_ = np.linspace(0, 1, 5)
        return self

    def run(self, batch: Table) -> CheckResult:
        p = self.model_.predict_proba(batch.encoded(self.encoder_)).max(axis=1)
        return self.result("pass", "ok", row_scores=p)


def test_round_trip_gives_identical_reports(
    tmp_path: Path, reference: pd.DataFrame, clean_batch: pd.DataFrame
) -> None:
    s = Sanitizer(
        label_column="label",
        id_columns=("record_id",),
        checks={"stateful_in_test": CheckConfig()},
        policy=PolicyConfig(alpha=0.02, screen_rows=5000),
    ).fit(reference)
    path = save_profile(s, tmp_path / "p.zip")
    loaded = load_profile(path)
    assert loaded.config.policy == s.config.policy
    a, b = s.scan(clean_batch).to_dict(), loaded.scan(clean_batch).to_dict()
    for d in (a, b):
        d.pop("created_at")
        for c in d["checks"]:
            c["info"].pop("seconds")
    assert a == b
    check = next(c for c, _ in loaded.checks_ if c.name == "stateful_in_test")
    assert check.counts_ == {("a", 1): 2, "b": 5}
    assert check.limit_ == float("inf") and check.seen_ == {"0", "1"}
    assert list(check.values_) == ["x", None]
    assert check.alpha == next(c for c, _ in s.checks_ if c.name == "stateful_in_test").alpha


def test_profile_contains_no_pickle(tmp_path: Path, fitted: Sanitizer) -> None:
    path = save_profile(fitted, tmp_path / "p.zip")
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        json.loads(z.read("profile.json"))
    assert {"profile.json", "arrays.npz"} <= set(names)
    others = set(names) - {"profile.json", "arrays.npz"}
    assert all(n.startswith("models/") and n.endswith(".skops") for n in others), others


def test_default_checks_round_trip(
    tmp_path: Path, fitted: Sanitizer, clean_batch: pd.DataFrame
) -> None:
    """Every built-in check survives save/load: the loaded profile scans identically
    (a batch of the rows with the larger first feature, and that batch with flipped
    labels: the label check fails it and re-weights its holdout to it)."""
    from sanitizer import attacks

    loaded = load_profile(save_profile(fitted, tmp_path / "p.zip"))
    poisoned, _ = attacks.flip_labels_random(clean_batch, "label", 3, rate=0.1)
    first = fitted.contract_.numeric[0]
    shifted = clean_batch[clean_batch[first] > clean_batch[first].median()]
    shifted_flipped, _ = attacks.flip_labels_random(shifted, "label", 4, rate=0.1)
    for batch in (clean_batch, poisoned, shifted, shifted_flipped):
        a, b = _comparable(fitted.scan(batch).to_dict()), _comparable(loaded.scan(batch).to_dict())
        assert a == b
    label = next(c for c in loaded.scan(shifted_flipped).checks if c.name == "label_consistency")
    assert label.failed and label.info["calibration_effective_share"] is not None


def _comparable(d: dict) -> dict:
    d.pop("created_at")
    for c in d["checks"]:
        c["info"].pop("seconds")
    return d


def test_refuses_foreign_classes_and_garbage(tmp_path: Path, fitted: Sanitizer) -> None:
    path = save_profile(fitted, tmp_path / "p.zip")
    with zipfile.ZipFile(path) as z:
        doc = json.loads(z.read("profile.json"))
        arrays = z.read("arrays.npz")
    doc["checks"][0]["state"] = {
        "__dict__": [["suite_", {"__obj__": "os:system", "data": "rm -rf /"}]]
    }
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("profile.json", json.dumps(doc))
        z.writestr("arrays.npz", arrays)
    with pytest.raises(InputError, match="outside the sanitizer package"):
        load_profile(evil)
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a sanitizer profile"):
        load_profile(tmp_path / "junk.zip")
    with pytest.raises(InputError, match="does not exist"):
        load_profile(tmp_path / "none.zip")


def test_a_profile_of_another_format_is_refused_with_a_refit_hint(
    tmp_path: Path, fitted: Sanitizer
) -> None:
    """Older profiles predate state a check now keeps (format 2: the outlier check's
    fitted tail; 3: the backdoor check's value pairs; 4: the outlier check's dependence
    score; 5: conditional_drift's calibration slope; 6: its held-out excess loss
    after fitted class offsets; 7: the label check's extreme level; 8: the backdoor
    check's value pairs by label and the label check's holdout rows; 9: the duplicates
    check's conflict clusters; 10: the outlier check's rare flags): loading one must
    say "refit", not fail later on a missing attribute or compare a batch with
    differently computed held-out rows."""
    from sanitizer.profile import FORMAT_VERSION

    path = save_profile(fitted, tmp_path / "p.zip")
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    doc = json.loads(members["profile.json"])
    assert doc["format"] == FORMAT_VERSION == 15
    doc["format"] = 9
    members["profile.json"] = json.dumps(doc).encode()
    old = tmp_path / "old.zip"
    with zipfile.ZipFile(old, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(InputError, match=r"profile format 9 is not supported .*refit"):
        load_profile(old)


def test_unsupported_state_is_a_clear_error(tmp_path: Path, fitted: Sanitizer) -> None:
    check = fitted.checks_[0][0]
    check.weird_ = object()
    try:
        with pytest.raises(ConfigError, match=r"cannot save .*weird_"):
            save_profile(fitted, tmp_path / "p.zip")
    finally:
        del check.weird_


@pytest.mark.slow
def test_cli_fit_then_scan_with_profile(cli, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    res = cli(
        "fit",
        "--reference",
        "reference.csv",
        "--label-column",
        "label",
        "--out",
        "prof.zip",
        cwd=data_dir,
    )
    assert res.returncode == 0, res.stderr
    res = cli("scan", "schema_violation.csv", "--profile", "prof.zip", "--quiet", cwd=data_dir)
    assert res.returncode == 3, res.stderr
    res = cli(
        "scan", "clean.csv", "--profile", "prof.zip", "--reference", "reference.csv", cwd=data_dir
    )
    assert res.returncode == 2 and "drop --reference" in res.stderr
