"""The interface every check implements, the result type they all return, and the registry."""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

import numpy as np

from sanitizer.errors import ConfigError, NotFittedError

if TYPE_CHECKING:
    from sanitizer.config import CheckConfig, Severity
    from sanitizer.table import Table

Status = Literal["pass", "fail", "warn", "error"]
STATUSES: tuple[str, ...] = ("pass", "fail", "warn", "error")

_REGISTRY: dict[str, type[Check]] = {}


@dataclass(frozen=True)
class CheckResult:
    """What one check says about one batch.

    ``row_scores`` (0..1, higher = more suspicious) and ``row_flags`` are aligned
    with the batch's rows by position; ``row_reasons`` maps a row position to the
    reasons it was flagged. The constructor validates all of it, so a check cannot
    hand the engine malformed results silently.
    """

    name: str
    status: Status
    message: str
    statistic: float | None = None
    p_value: float | None = None
    threshold: float | None = None
    row_scores: np.ndarray | None = None
    row_flags: np.ndarray | None = None
    row_reasons: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    severity: Severity = "quarantine"
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"{self.name}: status {self.status!r} not in {STATUSES}")
        for attr in ("statistic", "p_value", "threshold"):
            value = getattr(self, attr)
            if value is not None and math.isnan(value):
                raise ValueError(f"{self.name}: {attr} is NaN")
        if self.p_value is not None and not (0.0 <= self.p_value <= 1.0):
            raise ValueError(f"{self.name}: p_value {self.p_value} outside [0, 1]")
        if self.row_scores is not None:
            scores = np.asarray(self.row_scores, dtype=float)
            if scores.ndim != 1 or not np.all(np.isfinite(scores)):
                raise ValueError(f"{self.name}: row_scores must be a finite 1-d array")
            if scores.size and (scores.min() < 0.0 or scores.max() > 1.0):
                raise ValueError(f"{self.name}: row_scores must lie in [0, 1]")
            object.__setattr__(self, "row_scores", scores)
        if self.row_flags is not None:
            flags = np.asarray(self.row_flags, dtype=bool)
            if flags.ndim != 1:
                raise ValueError(f"{self.name}: row_flags must be a 1-d array")
            if self.row_scores is not None and flags.shape != self.row_scores.shape:
                raise ValueError(f"{self.name}: row_flags and row_scores differ in length")
            object.__setattr__(self, "row_flags", flags)
            bad = [r for r in self.row_reasons if not (0 <= r < flags.size)]
            if bad:
                raise ValueError(f"{self.name}: row_reasons name rows outside the batch: {bad[:5]}")

    @property
    def flagged_rows(self) -> int:
        return 0 if self.row_flags is None else int(self.row_flags.sum())

    @property
    def failed(self) -> bool:
        """True when this result, at its severity, sends the batch to quarantine."""
        return self.status in ("fail", "error")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "severity": self.severity,
            "statistic": _json_number(self.statistic),
            "p_value": _json_number(self.p_value),
            "threshold": _json_number(self.threshold),
            "flagged_rows": self.flagged_rows,
            "message": self.message,
            "info": _json_safe(dict(self.info)),
        }

    @classmethod
    def error(cls, name: str, exc: BaseException, severity: Severity) -> CheckResult:
        return cls(
            name=name,
            status="error",
            message=f"check raised {type(exc).__name__}: {exc}",
            severity=severity,
        )


class Check(ABC):
    """A poisoning or contract check: ``fit`` on trusted data, ``run`` on a batch.

    Subclasses set ``name`` (registered automatically) and ``default_severity``.
    ``__init__`` stores options only; learned state goes in attributes ending in
    ``_``, set by ``fit``. ``screenable = True`` declares a statistical test that is
    as valid on a uniform random sample of a large batch as on the whole (the
    engine's screen, ``policy.screen_rows``); the default, ``False``, gives the
    check every row (the schema: one null breaks the contract; a custom rule
    check).
    """

    name: ClassVar[str]
    default_severity: ClassVar[Severity] = "quarantine"
    description: ClassVar[str] = ""
    screenable: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if inspect.isabstract(cls):
            return
        name = cls.__dict__.get("name")
        if not isinstance(name, str) or not name.isidentifier():
            raise TypeError(f"{cls.__name__} must define a class attribute `name` (identifier)")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise TypeError(f"check name {name!r} is already registered by {_REGISTRY[name]}")
        _REGISTRY[name] = cls

    @abstractmethod
    def fit(self, reference: Table) -> Self:
        """Learn from the trusted reference."""

    @abstractmethod
    def run(self, batch: Table) -> CheckResult:
        """Judge a batch that passed the data contract's structural validation."""

    def _require_fitted(self, *attrs: str) -> None:
        missing = [a for a in attrs if not hasattr(self, a)]
        if missing:
            raise NotFittedError(
                f"{type(self).__name__} is not fitted yet; call fit(reference) before run(batch)"
            )

    def result(self, status: Status, message: str, **fields: Any) -> CheckResult:
        return CheckResult(name=self.name, status=status, message=message, **fields)


def registered_checks() -> dict[str, type[Check]]:
    """Name → class for every registered check (importing the built-in ones)."""
    import sanitizer.checks  # noqa: F401  (registers the built-ins)

    return dict(sorted(_REGISTRY.items()))


def get_check_class(name: str) -> type[Check]:
    checks = registered_checks()
    try:
        return checks[name]
    except KeyError:
        raise ConfigError(
            f"unknown check {name!r}; valid checks: {', '.join(checks) or '(none)'}"
        ) from None


def create_check(name: str, options: Mapping[str, Any] | None = None) -> Check:
    cls = get_check_class(name)
    options = dict(options or {})
    params = inspect.signature(cls.__init__).parameters
    accepted = {
        p for p, spec in params.items() if p != "self" and spec.kind is spec.KEYWORD_ONLY
    } | {p for p, spec in params.items() if p != "self" and spec.kind is spec.POSITIONAL_OR_KEYWORD}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(
            f"checks.{name}.{unknown[0]}: unknown option "
            f"(options of {name}: {', '.join(sorted(accepted)) or 'none'})"
        )
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"checks.{name}: {exc}") from exc


def validate_check_configs(configs: Mapping[str, CheckConfig]) -> None:
    """Fail early, naming the key, on unknown checks or options."""
    for name, cfg in configs.items():
        create_check(name, cfg.options)


def _json_number(value: float | None) -> float | str | None:
    if value is None:
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return float(value)


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, str | bytes):
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if isinstance(value, Sequence | np.ndarray | set | frozenset):
        return [_json_safe(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return _json_number(float(value)) if math.isfinite(value) or math.isinf(value) else None
    if value is None:
        return None
    return str(value)
