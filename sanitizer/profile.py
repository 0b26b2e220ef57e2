"""Save and load a fitted sanitizer without executing code on load.

A profile is one zip file:

- ``profile.json``: format version, package version, the config the sanitizer was
  fitted with, the data contract, and for every check its name, severity,
  constructor options and learned state (attributes ending in ``_``), encoded as
  tagged JSON;
- ``arrays.npz``: numeric arrays of that state, read with ``allow_pickle=False``;
- ``models/*.skops``: scikit-learn estimators, loaded with skops only if every
  type they contain comes from scikit-learn, NumPy or SciPy.

No pickle is ever loaded, so a swapped profile file can at worst make a scan
wrong, not run code. Objects of the sanitizer's own classes are rebuilt through
their ``from_dict`` methods, and only classes defined in ``sanitizer.*``.
"""

from __future__ import annotations

import importlib
import inspect
import io
import json
import math
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sanitizer import __version__
from sanitizer.errors import ConfigError, InputError

if TYPE_CHECKING:
    from sanitizer.checks.base import Check
    from sanitizer.engine import Sanitizer

FORMAT_VERSION = 15  # 2: the outlier check's fitted tail; 3: the backdoor check's value-pair
# counts; 4: the outlier check's dependence score; 5: conditional_drift's calibration slope;
# 6: conditional_drift's held-out excess loss after fitted class offsets; 7: the label
# check's extreme level; 8: the backdoor check's value pairs by label, the label check's
# holdout rows (re-weighted to a shifted batch); 9: the duplicates check's conflict clusters;
# 10: the outlier check's rare flags, scored by frequency outside the mixture; 11: and its
# rare categories; 12: the backdoor check's reference rows kept for re-weighting to a shifted
# batch; 13: the label check's and conditional_drift's cross-fitting (every reference row
# calibrates, scored by the fold model fitted without it; the label check ranks batch rows
# among all but one random reference row of each label; conditional_drift keeps its fold
# models); 14: the outlier check's cross-fitting (fold models of mixture, rare values and
# dependence classifier; every reference row calibrates); 15: the outlier check's discrete
# columns and their values (a value off them is novel)
TRUSTED_MODEL_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.")


class _Writer:
    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.models: dict[str, bytes] = {}

    def encode(self, value: Any, key: str) -> Any:
        if value is None or isinstance(value, bool | str):
            return value
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, int | np.integer):
            return int(value)
        if isinstance(value, float | np.floating):
            v = float(value)
            return v if math.isfinite(v) else {"__float__": repr(v)}
        if isinstance(value, np.ndarray):
            if value.dtype.kind in "biuf":
                self.arrays[key] = value
                return {"__array__": key}
            return {
                "__objarray__": [self.encode(v, f"{key}.{i}") for i, v in enumerate(value.tolist())]
            }
        if isinstance(value, list):
            return [self.encode(v, f"{key}.{i}") for i, v in enumerate(value)]
        if isinstance(value, tuple):
            return {"__tuple__": [self.encode(v, f"{key}.{i}") for i, v in enumerate(value)]}
        if isinstance(value, set | frozenset):
            return {
                "__set__": [
                    self.encode(v, f"{key}.{i}") for i, v in enumerate(sorted(value, key=repr))
                ]
            }
        if isinstance(value, dict):
            return {
                "__dict__": [
                    [
                        self.encode(k, f"{key}[{i}]"),
                        self.encode(v, f"{key}.{k}" if isinstance(k, str) else f"{key}[{i}]v"),
                    ]
                    for i, (k, v) in enumerate(value.items())
                ]
            }
        module = type(value).__module__
        if module.startswith("sklearn."):
            import skops.io as sio

            self.models[key] = sio.dumps(value)
            return {"__sklearn__": key}
        if module.startswith("sanitizer.") and hasattr(value, "to_dict"):
            return {
                "__obj__": f"{module}:{type(value).__qualname__}",
                "data": self.encode(value.to_dict(), f"{key}.data"),
            }
        raise ConfigError(
            f"cannot save {key}: unsupported type {module}.{type(value).__qualname__}"
        )


class _Reader:
    def __init__(self, archive: zipfile.ZipFile, arrays: Any) -> None:
        self.archive = archive
        self.arrays = arrays

    def decode(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.decode(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "__float__" in value:
            return float(value["__float__"])
        if "__array__" in value:
            return np.asarray(self.arrays[value["__array__"]])
        if "__objarray__" in value:
            out = np.empty(len(value["__objarray__"]), dtype=object)
            out[:] = [self.decode(v) for v in value["__objarray__"]]
            return out
        if "__tuple__" in value:
            return tuple(self.decode(v) for v in value["__tuple__"])
        if "__set__" in value:
            return {self.decode(v) for v in value["__set__"]}
        if "__dict__" in value:
            return {_hashable(self.decode(k)): self.decode(v) for k, v in value["__dict__"]}
        if "__sklearn__" in value:
            return self._model(value["__sklearn__"])
        if "__obj__" in value:
            return _sanitizer_class(value["__obj__"]).from_dict(self.decode(value["data"]))
        raise InputError(f"profile: unknown tagged value {sorted(value)}")

    def _model(self, key: str) -> Any:
        return safe_model_loads(
            self.archive.read(f"models/{key}.skops"), what=f"profile model {key}"
        )


def safe_model_loads(data: bytes, *, what: str) -> Any:
    """Load a skops-serialised estimator if it holds only scikit-learn/NumPy/SciPy types."""
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:  # skops raises zip/json/key errors on garbage
        raise InputError(f"{what} is not a skops file ({exc})") from exc
    refused = [t for t in untrusted if not t.startswith(TRUSTED_MODEL_PREFIXES)]
    if refused:
        raise InputError(f"{what} contains untrusted types: {refused[:3]}")
    return sio.loads(data, trusted=untrusted)


def save_profile(sanitizer: Sanitizer, path: str | os.PathLike[str]) -> Path:
    """Write a fitted sanitizer to ``path`` (a zip file, written atomically)."""
    sanitizer._require_fitted()
    writer = _Writer()
    checks = []
    for i, (check, severity) in enumerate(sanitizer.checks_):
        key = f"c{i}.{check.name}"
        checks.append(
            {
                "name": check.name,
                "severity": severity,
                "options": writer.encode(_options(check), f"{key}.options"),
                "state": writer.encode(_state(check), f"{key}.state"),
            }
        )
    cfg = sanitizer.config
    document = {
        "format": FORMAT_VERSION,
        "sanitizer_version": __version__,
        "config": {
            "dataset": cfg.dataset,
            "label_column": cfg.label_column,
            "id_columns": list(cfg.id_columns),
            "ignore_columns": list(cfg.ignore_columns),
            "numeric_columns": list(cfg.numeric_columns),
            "categorical_columns": list(cfg.categorical_columns),
            "policy": {
                "mode": cfg.policy.mode,
                "alpha": cfg.policy.alpha,
                "screen_rows": cfg.policy.screen_rows,
            },
        },
        "contract": sanitizer.contract_.to_dict(),
        "checks": checks,
    }
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **writer.arrays)
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("profile.json", json.dumps(document, allow_nan=False))
        archive.writestr("arrays.npz", buffer.getvalue())
        for key, blob in writer.models.items():
            archive.writestr(f"models/{key}.skops", blob)
    os.replace(tmp, out)
    return out


def load_profile(path: str | os.PathLike[str]) -> Sanitizer:
    """Rebuild a fitted sanitizer from ``save_profile``'s file; refuses anything else."""
    from sanitizer.checks import create_check
    from sanitizer.config import PolicyConfig, SanitizerConfig
    from sanitizer.contract import DataContract
    from sanitizer.engine import Sanitizer

    p = Path(path)
    try:
        archive = zipfile.ZipFile(p)
    except FileNotFoundError as exc:
        raise InputError("profile does not exist", path=str(p)) from exc
    except (OSError, zipfile.BadZipFile) as exc:
        raise InputError(f"not a sanitizer profile ({exc})", path=str(p)) from exc
    with archive:
        try:
            document = json.loads(archive.read("profile.json"))
            arrays = np.load(io.BytesIO(archive.read("arrays.npz")), allow_pickle=False)
        except (KeyError, ValueError, OSError) as exc:
            raise InputError(f"not a sanitizer profile ({exc})", path=str(p)) from exc
        if document.get("format") != FORMAT_VERSION:
            raise InputError(
                f"profile format {document.get('format')!r} is not supported "
                f"(this version reads {FORMAT_VERSION}); refit with `sanitizer fit`",
                path=str(p),
            )
        reader = _Reader(archive, arrays)
        raw = document["config"]
        config = SanitizerConfig(
            label_column=raw["label_column"],
            dataset=raw["dataset"],
            id_columns=tuple(raw["id_columns"]),
            ignore_columns=tuple(raw["ignore_columns"]),
            numeric_columns=tuple(raw["numeric_columns"]),
            categorical_columns=tuple(raw["categorical_columns"]),
            policy=PolicyConfig(**raw["policy"]),
        )
        checks: list[tuple[Check, str]] = []
        for entry in document["checks"]:
            check = create_check(entry["name"], reader.decode(entry["options"]))
            for attr, value in reader.decode(entry["state"]).items():
                setattr(check, attr, value)
            checks.append((check, entry["severity"]))
    sanitizer = Sanitizer(config=config)
    sanitizer.contract_ = DataContract.from_dict(document["contract"])
    sanitizer.checks_ = checks
    return sanitizer


def _options(check: Check) -> dict[str, Any]:
    params = inspect.signature(type(check).__init__).parameters
    return {
        name: getattr(check, name) for name in params if name != "self" and hasattr(check, name)
    }


def _state(check: Check) -> dict[str, Any]:
    return {k: v for k, v in vars(check).items() if k.endswith("_") and not k.startswith("_")}


def _sanitizer_class(spec: str) -> Any:
    module, _, qualname = spec.partition(":")
    if not (module == "sanitizer" or module.startswith("sanitizer.")) or "." in qualname:
        raise InputError(f"profile names a class outside the sanitizer package: {spec!r}")
    cls = getattr(importlib.import_module(module), qualname, None)
    if cls is None or not hasattr(cls, "from_dict"):
        raise InputError(f"profile names an unknown class: {spec!r}")
    return cls


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
