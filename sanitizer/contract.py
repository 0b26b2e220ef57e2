"""The structural data contract learned from the reference.

Before any check runs, a batch must have the reference's columns, a label from
the reference's label set, numbers where the reference has numbers, no infinite
values, and nulls only where the reference has nulls. A batch that breaks this
cannot be scored meaningfully: it is refused with an ``InputError`` listing every
problem (the CLI exits 2; a scheduled run quarantines it as unreadable). Finer
rules (ranges, category sets, anything a human adds) are the Great Expectations
suite's job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sanitizer.errors import ConfigError, InputError

if TYPE_CHECKING:
    import pandas as pd

    from sanitizer.config import SanitizerConfig

MAX_EXAMPLES = 3


@dataclass(frozen=True)
class DataContract:
    label: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    ids: tuple[str, ...]
    ignored: tuple[str, ...]
    columns: tuple[str, ...]
    label_classes: tuple[str, ...]
    nullable: tuple[str, ...]

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    @classmethod
    def from_reference(cls, reference: pd.DataFrame, config: SanitizerConfig) -> DataContract:
        import pandas as pd

        columns = [str(c) for c in reference.columns]
        if config.label_column not in columns:
            raise InputError(
                f"reference has no label column {config.label_column!r} "
                f"(columns: {_names(columns)})",
                reason="invalid",
            )
        declared = (
            set(config.id_columns)
            | set(config.ignore_columns)
            | set(config.numeric_columns)
            | set(config.categorical_columns)
        )
        missing = sorted(declared - set(columns))
        if missing:
            raise ConfigError(f"columns named in the config are not in the reference: {missing}")
        special = {config.label_column, *config.id_columns, *config.ignore_columns}
        numeric: list[str] = []
        categorical: list[str] = []
        for col in columns:
            if col in special:
                continue
            if col in config.numeric_columns:
                values = pd.to_numeric(reference[col], errors="coerce")
                bad = values.isna() & reference[col].notna()
                if bad.any():
                    raise InputError(
                        f"reference column {col!r} is configured numeric but holds "
                        f"{_examples(reference[col][bad])}",
                        reason="invalid",
                    )
                numeric.append(col)
            elif col in config.categorical_columns or not _is_numeric(reference[col]):
                categorical.append(col)
            else:
                numeric.append(col)
        label = reference[config.label_column]
        if label.isna().any():
            raise InputError(
                f"reference label column {config.label_column!r} has missing values",
                reason="invalid",
            )
        classes = tuple(sorted(set(label_keys(label))))
        num_frame = reference[numeric].apply(pd.to_numeric, errors="coerce")
        if len(numeric) and _isinf(num_frame).any().any():
            raise InputError("reference has infinite values", reason="invalid")
        nullable = tuple(c for c in columns if reference[c].isna().any())
        return cls(
            label=config.label_column,
            numeric=tuple(numeric),
            categorical=tuple(categorical),
            ids=tuple(config.id_columns),
            ignored=tuple(config.ignore_columns),
            columns=tuple(columns),
            label_classes=classes,
            nullable=nullable,
        )

    def validate(self, batch: pd.DataFrame, *, path: str | None = None) -> None:
        """Raise ``InputError`` naming every structural problem of ``batch``."""
        import pandas as pd

        problems: list[str] = []
        names = [str(c) for c in batch.columns]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise InputError(f"duplicate column names: {_names(dupes)}", path=path)
        if self.label not in names:
            raise InputError(
                f"missing label column {self.label!r} (columns: {_names(names)})",
                path=path,
                reason="invalid",
            )
        missing = [c for c in self.columns if c not in names]
        if missing:
            problems.append(f"missing columns {_names(missing)}")
        extra = [c for c in names if c not in self.columns]
        if extra:
            problems.append(f"unexpected columns {_names(extra)}")
        for col in self.numeric:
            if col not in names:
                continue
            raw = batch[col]
            values = pd.to_numeric(raw, errors="coerce")
            bad = values.isna() & raw.notna()
            if bad.any():
                problems.append(
                    f"column {col!r} must be numeric but holds {_examples(raw[bad])} "
                    f"({int(bad.sum())} rows)"
                )
                continue
            inf = _isinf(values)
            if inf.any():
                problems.append(f"column {col!r} has infinite values at rows {_rows(inf)}")
        for col in self.columns:
            if col in names and col not in self.nullable:
                nulls = batch[col].isna()
                if nulls.any():
                    problems.append(
                        f"column {col!r} has missing values at rows {_rows(nulls)} "
                        "(the reference has none)"
                    )
        label = batch[self.label]
        if label.notna().all():
            keys = label_keys(label)
            unseen = sorted(set(keys) - set(self.label_classes))
            if unseen:
                problems.append(
                    f"label {self.label!r} has values never seen in the reference: "
                    f"{_names(unseen[:MAX_EXAMPLES])}"
                )
        if problems:
            raise InputError("; ".join(problems), path=path, reason="invalid")

    def prepare(self, batch: pd.DataFrame, numeric: bool = True) -> pd.DataFrame:
        """A copy with numeric features as float64 (unless ``numeric`` is false: then
        ``numeric_columns`` holds them), categoricals as strings, labels as keys."""
        import pandas as pd

        out = pd.DataFrame(index=batch.index)
        for col in self.numeric if numeric else ():
            out[col] = pd.to_numeric(batch[col], errors="coerce").astype("float64")
        for col in self.categorical:
            out[col] = pd.Series(_texts(batch[col], str), index=batch.index, dtype=object)
        out[self.label] = label_keys(batch[self.label])
        return out

    def numeric_columns(self, batch: pd.DataFrame) -> list[Any]:
        """Each numeric feature as a float64 array (NaN where missing): a read-only view
        of the frame's own column where it is already float64, no copy."""
        import numpy as np
        import pandas as pd

        out = []
        for col in self.numeric:
            values = batch[col]
            if values.dtype == np.float64:  # numpy float64: NaN already marks missing
                out.append(values.to_numpy())
            else:
                numbers = pd.to_numeric(values, errors="coerce")
                out.append(numbers.to_numpy(dtype="float64", na_value=np.nan))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DataContract:
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        return cls(**fields)


def label_keys(label: pd.Series) -> list[str]:
    """Labels as strings, with integral floats written as integers (``1.0`` → ``"1"``)."""
    codes, keys = label_factors(label)
    return list(keys[codes].tolist())


def label_factors(label: pd.Series) -> tuple[Any, Any]:
    """``(codes, keys)``: the label keys of :func:`label_keys` as ``keys[codes]``, with
    ``keys`` one object array entry per distinct value (missing: ``"nan"``, last)."""
    import pandas as pd

    if _is_numeric(label):
        values = pd.to_numeric(label, errors="coerce")
        if (values.dropna() % 1 == 0).all():
            return _factors(values, lambda v: str(int(v)), missing="nan")
        return _factors(values, lambda v: repr(float(v)), missing="nan")
    return _factors(label, str, missing="nan")


def category_factors(values: pd.Series) -> tuple[Any, Any]:
    """``(codes, texts)`` of a categorical column as ``prepare`` writes it: ``texts[codes]``
    with one ``str`` per distinct value and ``None`` (last) where the value is missing."""
    return _factors(values, str, missing=None)


def _texts(values: pd.Series, text: Callable[[Any], str], missing: str | None = None) -> Any:
    """``text(v)`` of every value (``missing`` where absent) as an object array, computed
    once per distinct value: a million rows of a few categories cost a few strings."""
    codes, table = _factors(values, text, missing)
    return table[codes]


def _factors(
    values: pd.Series, text: Callable[[Any], str], missing: str | None = None
) -> tuple[Any, Any]:
    """Row codes into a table of ``text(v)`` per distinct value, ``missing`` last (code
    ``len(table) - 1``: a missing value's code indexes it, as a take does)."""
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    table = np.array([text(v) for v in uniques] + [missing], dtype=object)
    codes = np.asarray(codes, dtype=np.intp)
    codes[codes < 0] = len(table) - 1
    return codes, table


def _is_numeric(series: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


def _isinf(values: Any) -> Any:
    import numpy as np

    return np.isinf(values.astype("float64"))


def _rows(mask: pd.Series) -> str:
    positions = [int(i) for i in mask.to_numpy().nonzero()[0]]
    shown = ", ".join(map(str, positions[:MAX_EXAMPLES]))
    return shown + (f" and {len(positions) - MAX_EXAMPLES} more" if len(positions) > 3 else "")


def _examples(values: pd.Series) -> str:
    uniq = list(dict.fromkeys(str(v) for v in values))[:MAX_EXAMPLES]
    return ", ".join(repr(_short(v)) for v in uniq)


def _names(names: list[str]) -> str:
    return ", ".join(repr(_short(n)) for n in names)


def _short(text: str, limit: int = 40) -> str:
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[: limit - 1] + "…"
