"""Sanitizer: fit checks on trusted reference data, scan batches into ScanReports."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from sanitizer.config import CheckConfig, PolicyConfig, SanitizerConfig, load_config
from sanitizer.errors import ConfigError, InputError, NotFittedError

if TYPE_CHECKING:
    import pandas as pd

    from sanitizer.checks.base import Check, CheckResult
    from sanitizer.contract import DataContract
    from sanitizer.report import ScanReport

log = logging.getLogger(__name__)

#: Checks that run when the config does not switch them off.
DEFAULT_CHECKS: tuple[str, ...] = ("schema",)


class Sanitizer:
    """Validate training batches against a data contract and poisoning checks.

    >>> s = Sanitizer(label_column="label").fit(reference_df)   # doctest: +SKIP
    >>> report = s.scan(batch_df)                              # doctest: +SKIP
    >>> report.verdict                                         # doctest: +SKIP
    'pass'
    """

    def __init__(
        self,
        label_column: str | None = None,
        *,
        config: SanitizerConfig | None = None,
        suite: dict[str, Any] | None = None,
        **config_fields: Any,
    ) -> None:
        if config is None:
            if label_column is None:
                raise ConfigError("label_column is required (or pass config=...)")
            config = SanitizerConfig(label_column=label_column, **config_fields)
        elif label_column is not None or config_fields:
            raise ConfigError("pass either config=... or label_column and options, not both")
        self.config = config
        self.suite = suite

    @classmethod
    def from_config(cls, path: str | os.PathLike[str]) -> Self:
        """Build from a TOML config; its suite file (if any) is loaded now."""
        from sanitizer.expectations import load_suite

        config = load_config(path)
        suite = load_suite(config.suite_path) if config.suite_path else None
        return cls(config=config, suite=suite)

    # -- fitting -----------------------------------------------------------------

    def fit(self, reference: pd.DataFrame) -> Self:
        """Learn the data contract and fit every enabled check on trusted data."""
        from sanitizer.contract import DataContract
        from sanitizer.table import Table

        if len(reference) == 0:
            raise InputError("reference has no rows")
        contract = DataContract.from_reference(reference, self.config)
        table = Table(reference, contract)
        checks: list[tuple[Check, str]] = []
        for name, cfg in self._enabled_checks():
            check = self._build_check(name, cfg)
            severity = cfg.severity or check.default_severity
            started = time.perf_counter()
            check.fit(table)
            log.debug("fitted %s in %.3fs", name, time.perf_counter() - started)
            checks.append((check, severity))
        self.contract_: DataContract = contract
        self.checks_: list[tuple[Check, str]] = checks
        return self

    def _enabled_checks(self) -> list[tuple[str, CheckConfig]]:
        names = list(DEFAULT_CHECKS) + [n for n in self.config.checks if n not in DEFAULT_CHECKS]
        out = []
        for name in names:
            cfg = self.config.check_config(name)
            if cfg.enabled:
                out.append((name, cfg))
        if not out:
            raise ConfigError("checks: every check is disabled; enable at least one")
        return out

    def _build_check(self, name: str, cfg: CheckConfig) -> Check:
        from sanitizer.checks import create_check

        options = dict(cfg.options)
        if name == "schema":
            options.setdefault("suite", self.suite)
            options.setdefault("range_margin", self.config.suite_generation.range_margin)
        return create_check(name, options)

    # -- scanning ----------------------------------------------------------------

    def scan(self, batch: pd.DataFrame, *, path: str | None = None) -> ScanReport:
        """Scan one batch. Structural contract violations raise ``InputError``;
        a check that raises is recorded as ``error`` and quarantines the batch."""
        import numpy as np
        import pandas as pd

        from sanitizer.checks.base import CheckResult
        from sanitizer.report import ScanReport
        from sanitizer.table import Table

        if not hasattr(self, "checks_"):
            raise NotFittedError("Sanitizer is not fitted yet; call fit(reference) before scan()")
        if len(batch) == 0:
            raise InputError("batch has no rows", path=path)
        self.contract_.validate(batch, path=path)
        table = Table(batch, self.contract_)
        results: list[CheckResult] = []
        for check, severity in self.checks_:
            started = time.perf_counter()
            try:
                result = check.run(table)
                if len(result.row_scores if result.row_scores is not None else batch) != len(batch):
                    raise ValueError("row_scores length does not match the batch")
            except Exception as exc:  # a broken check must not crash the scan
                log.warning("check %s raised %s: %s", check.name, type(exc).__name__, exc)
                log.debug("traceback of check %s", check.name, exc_info=True)
                result = CheckResult.error(check.name, exc, severity)  # type: ignore[arg-type]
            result = _apply_severity(result, severity)
            results.append(
                replace(result, info={**result.info, "seconds": time.perf_counter() - started})
            )

        n = len(batch)
        scores = np.zeros(n)
        flags = np.zeros(n, dtype=bool)
        reasons: dict[int, list[str]] = {}
        for r in results:
            if r.row_scores is not None:
                scores = np.maximum(scores, r.row_scores)
            if r.row_flags is not None and r.severity == "quarantine":
                flags |= r.row_flags
                for pos in np.flatnonzero(r.row_flags):
                    reasons.setdefault(int(pos), []).extend(
                        r.row_reasons.get(int(pos), (f"{r.name}: flagged",))
                    )
        failed = any(r.failed for r in results)
        index = batch.index
        flagged_pos = np.flatnonzero(flags)
        flagged = batch.iloc[flagged_pos].copy()
        flagged["reasons"] = [tuple(reasons.get(int(p), ())) for p in flagged_pos]
        return ScanReport(
            verdict="quarantine" if failed else "pass",
            checks=results,
            row_scores=pd.Series(scores, index=index, name="score"),
            flagged=flagged,
            dataset=self.config.dataset,
            mode=self.config.policy.mode,
        )

    @property
    def policy(self) -> PolicyConfig:
        return self.config.policy


def _apply_severity(result: CheckResult, severity: str) -> CheckResult:
    """A failing check of severity ``warn`` is reported as ``warn`` and does not quarantine."""
    status = result.status
    if severity == "warn" and status == "fail":
        status = "warn"
    return replace(result, status=status, severity=severity)  # type: ignore[arg-type]


def scan_file(
    batch_path: str | os.PathLike[str], sanitizer: Sanitizer
) -> tuple[pd.DataFrame, ScanReport]:
    """Read a batch file and scan it (errors name the file)."""
    from sanitizer.io import read_table

    frame = read_table(batch_path)
    return frame, sanitizer.scan(frame, path=str(Path(batch_path)))
