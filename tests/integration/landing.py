"""Batches for a deployment test: a dataset config and a mix of clean, poisoned and
malformed files, generated at run time with the project's own sample and attack
generators (sanitizer.samples, sanitizer.attacks — the recipes of sanitizer.demo).

Every batch comes with the outcome the sanitizer promises for it, so a test can
compare what the deployment did with what it should have done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sanitizer import attacks
from sanitizer.samples import make_dataset, split

DATASET = "fleet"
LABEL = "label"

#: The dataset config the deployment runs. The storage root and the ledger are *not*
#: the real ones: the Airflow variable ``sanitizer_storage_root`` and the connection
#: ``sanitizer_ledger`` must override them, as in a production deployment.
CONFIG = """\
[dataset]
name = "{name}"
label_column = "label"
id_columns = ["record_id"]
reference = "reference.csv"

[storage]
root = "not-the-deployment-root"   # replaced by the Airflow variable sanitizer_storage_root
settle_seconds = 0
claim_timeout_seconds = {claim_timeout}

[airflow]
schedule = "none"   # runs are triggered through the REST API
review = false      # quarantined batches wait for an operator in the ledger, not in a task
retries = {retries}

{training}
"""
TRAINING = '[training]\nholdout = "holdout.csv"\n'
NO_TRAINING = "[training]\nenabled = false   # no retrain DAG\n"


@dataclass(frozen=True)
class Batch:
    """One landed file and what must become of it."""

    name: str
    kind: str  # clean | label_flips | truth_serum | backdoor | outliers | schema | malformed
    expected: str  # accepted | quarantined
    reason: str  # the ledger's reason: passed | checks_failed | unreadable


@dataclass
class Fleet:
    """A dataset for the deployment: config folder, reference, and a pool of clean rows."""

    configs: Path
    reference: pd.DataFrame
    pool: list[pd.DataFrame]
    name: str = DATASET

    @property
    def config_path(self) -> Path:
        return self.configs / f"{self.name}.toml"

    def take(self, n: int) -> list[pd.DataFrame]:
        """``n`` clean parts no earlier batch used (rows never repeat across batches)."""
        if n > len(self.pool):
            raise ValueError(f"asked for {n} clean parts, {len(self.pool)} left")
        out, self.pool = self.pool[:n], self.pool[n:]
        return out


def write_fleet(
    configs: Path,
    *,
    rows: int = 400,
    parts: int = 60,
    seed: int = 31,
    retries: int = 2,
    claim_timeout: float = 3600.0,
    name: str = DATASET,
    training: bool = True,
) -> Fleet:
    """Reference (3000 rows), holdout (1000) and ``parts`` disjoint clean parts of
    ``rows`` rows; the config file in ``configs``."""
    population = make_dataset(4000 + rows * parts, seed=seed)
    reference, holdout, *pool = split(population, [3000, 1000] + [rows] * parts, seed=seed)
    configs.mkdir(parents=True, exist_ok=True)
    reference.to_csv(configs / "reference.csv", index=False)
    holdout.to_csv(configs / "holdout.csv", index=False)
    (configs / f"{name}.toml").write_text(
        CONFIG.format(
            name=name,
            retries=retries,
            claim_timeout=claim_timeout,
            training=TRAINING if training else NO_TRAINING,
        ),
        encoding="utf-8",
    )
    return Fleet(configs=configs, reference=reference, pool=pool, name=name)


def _schema_violation(clean: pd.DataFrame, seed: int) -> pd.DataFrame:
    broken = clean.copy()
    broken.loc[broken.index[:2], "x1"] = 250.0 + seed  # far outside anything the reference has
    broken.loc[broken.index[2], "region"] = "atlantis"  # a category the reference never had
    return broken


def land_mixed(
    fleet: Fleet, landing: Path, *, tag: str, clean: int = 12, copies: int = 2
) -> list[Batch]:
    """Write ``clean`` clean batches, ``copies`` batches of each of five attacks (label
    flips, Truth Serum replicas, a backdoor trigger, in-range outliers, a schema
    violation) and two malformed files into ``landing`` (names start with ``tag``);
    returns what each should become."""
    landing.mkdir(parents=True, exist_ok=True)
    ref = fleet.reference
    batches: list[Batch] = []
    for i, frame in enumerate(fleet.take(clean)):
        name = f"{tag}_clean_{i:02d}.{'parquet' if i % 3 == 2 else 'csv'}"
        _write(frame, landing / name)
        batches.append(Batch(name, "clean", "accepted", "passed"))
    poisoned: list[tuple[str, Callable[[pd.DataFrame, int], pd.DataFrame]]] = [
        ("label_flips", lambda f, s: attacks.flip_labels_random(f, LABEL, s, rate=0.10)[0]),
        (
            "truth_serum",
            lambda f, s: attacks.truth_serum_replicas(f, LABEL, s, reference=ref, rate=0.02)[0],
        ),
        (
            "backdoor",
            lambda f, s: attacks.backdoor_trigger(f, LABEL, s, reference=ref, rate=0.03)[0],
        ),
        (
            "outliers",
            lambda f, s: attacks.in_range_outliers(f, LABEL, s, reference=ref, rate=0.04)[0],
        ),
        ("schema", _schema_violation),
    ]
    parts = fleet.take(copies * len(poisoned))
    for j, (kind, attack) in enumerate(poisoned * copies):
        name = f"{tag}_{kind}_{j // len(poisoned)}.csv"
        _write(attack(parts[j], 100 + j), landing / name)
        batches.append(Batch(name, kind, "quarantined", "checks_failed"))
    # the tag is in the bytes too: a batch is its content, and each run lands new ones
    (landing / f"{tag}_malformed_ragged.csv").write_text(f"record_id,x0,label\n1,0.5,1\n2,{tag}\n")
    (landing / f"{tag}_malformed_truncated.parquet").write_bytes(b"PAR1\x00\x01" + tag.encode())
    batches += [
        Batch(f"{tag}_malformed_ragged.csv", "malformed", "quarantined", "unreadable"),
        Batch(f"{tag}_malformed_truncated.parquet", "malformed", "quarantined", "unreadable"),
    ]
    return batches


def land_clean(fleet: Fleet, landing: Path, *, tag: str, count: int) -> list[Batch]:
    """``count`` clean CSV batches (the throughput benchmark's load)."""
    landing.mkdir(parents=True, exist_ok=True)
    out = []
    for i, frame in enumerate(fleet.take(count)):
        name = f"{tag}_clean_{i:03d}.csv"
        _write(frame, landing / name)
        out.append(Batch(name, "clean", "accepted", "passed"))
    return out


def _write(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name("." + path.name)  # hidden while being written: discover skips it
    if path.suffix == ".parquet":
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False)
    tmp.rename(path)
