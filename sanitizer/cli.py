"""The ``sanitizer`` command.

Exit codes: 0 pass, 3 quarantine, 2 bad input or usage (one line on stderr),
1 internal error.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sanitizer import __version__
from sanitizer.errors import ConfigError, SanitizerError

if TYPE_CHECKING:
    import pandas as pd

    from sanitizer.config import SanitizerConfig
    from sanitizer.engine import Sanitizer

EXIT_PASS = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_QUARANTINE = 3

log = logging.getLogger("sanitizer")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="sanitizer: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return handler(args)
    except SanitizerError as exc:
        print(f"sanitizer: error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("sanitizer: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"sanitizer: internal error: {type(exc).__name__}: {_one_line(str(exc))} "
            "(rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sanitizer",
        description="Validate ML training batches against a GX suite and poisoning checks.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="verbose logs and tracebacks")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    scan = sub.add_parser(
        "scan",
        help="scan one batch file; exit 0 pass, 3 quarantine, 2 bad input",
        description="Scan BATCH against checks fitted on the trusted reference.",
    )
    scan.add_argument("batch", metavar="BATCH", help="batch file (.csv or .parquet)")
    _add_reference_args(scan)
    scan.add_argument("--suite", metavar="FILE", help="GX suite JSON (default: generated)")
    scan.add_argument(
        "--profile", metavar="FILE", help="fitted profile from `sanitizer fit` (skips fitting)"
    )
    scan.add_argument("--json-report", metavar="OUT", help="write the JSON report here")
    scan.add_argument("--html-report", metavar="OUT", help="write the HTML report here")
    scan.add_argument(
        "--flagged-csv", metavar="OUT", help="write the flagged rows as CSV (formulas neutralised)"
    )
    scan.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    scan.set_defaults(handler=cmd_scan)

    fit = sub.add_parser(
        "fit",
        help="fit the checks on trusted data once and save the profile",
        description="Fit every enabled check on the reference and save a profile that "
        "`sanitizer scan --profile` loads without refitting (no pickle: JSON, arrays, skops).",
    )
    _add_reference_args(fit)
    fit.add_argument("--suite", metavar="FILE", help="GX suite JSON (default: generated)")
    fit.add_argument("--out", required=True, metavar="FILE", help="profile file to write")
    fit.set_defaults(handler=cmd_fit)

    suite = sub.add_parser("suite", help="manage Great Expectations suites")
    suite_sub = suite.add_subparsers(title="suite commands", metavar="COMMAND")
    init = suite_sub.add_parser(
        "init",
        help="generate a suite from trusted reference data",
        description="Write a GX suite (JSON) generated from the reference; edit it afterwards.",
    )
    _add_reference_args(init)
    init.add_argument("--out", required=True, metavar="FILE", help="where to write the suite")
    init.add_argument("--name", help="suite name (default: the output file's stem)")
    init.add_argument(
        "--range-margin",
        type=float,
        help="widen numeric ranges by this share of the reference range (default 0.25)",
    )
    init.set_defaults(handler=cmd_suite_init)
    suite.set_defaults(handler=None)

    from sanitizer.quarantine.cli import add_commands

    add_commands(sub)
    return parser


def _add_reference_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reference", metavar="REF", help="trusted reference data (.csv/.parquet)")
    p.add_argument("--label-column", metavar="COL", help="name of the label column")
    p.add_argument("--config", metavar="FILE", help="dataset config (TOML)")


def _resolve_config(args: argparse.Namespace) -> tuple[SanitizerConfig, Path]:
    """Merge --config with --label-column/--reference; flags win over the file."""
    from dataclasses import replace

    from sanitizer.config import SanitizerConfig, load_config

    if args.config:
        config = load_config(args.config)
        if args.label_column:
            config = replace(config, label_column=args.label_column)
    elif args.label_column:
        config = SanitizerConfig(label_column=args.label_column)
    else:
        raise ConfigError("--label-column is required (or give --config with dataset.label_column)")
    reference = Path(args.reference) if args.reference else config.reference_path
    if reference is None:
        raise ConfigError("--reference is required (or set dataset.reference in --config)")
    return config, reference


def _fit_from_args(
    args: argparse.Namespace, batch: pd.DataFrame | None = None
) -> tuple[Sanitizer, pd.DataFrame]:
    from sanitizer.contract import DataContract
    from sanitizer.engine import Sanitizer
    from sanitizer.expectations import load_suite
    from sanitizer.io import read_table

    config, reference_path = _resolve_config(args)
    suite_path = args.suite or config.suite_path
    suite = load_suite(suite_path) if suite_path else None
    reference = read_table(reference_path)
    if batch is not None:
        # Refuse a structurally broken batch before paying for fitting the checks.
        DataContract.from_reference(reference, config).validate(batch, path=args.batch)
    return Sanitizer(config=config, suite=suite).fit(reference), reference


def cmd_fit(args: argparse.Namespace) -> int:
    from sanitizer.profile import save_profile

    sanitizer, _ = _fit_from_args(args)
    save_profile(sanitizer, args.out)
    names = ", ".join(check.name for check, _ in sanitizer.checks_)
    print(f"fitted {names} on {args.reference or 'the configured reference'}; profile: {args.out}")
    return EXIT_PASS


def cmd_scan(args: argparse.Namespace) -> int:
    from sanitizer.io import read_table
    from sanitizer.profile import load_profile

    if args.profile and (args.reference or args.suite or args.config):
        raise ConfigError(
            "--profile already holds the fitted reference: drop --reference/--suite/--config"
        )
    batch = read_table(args.batch)
    reference = None
    if args.profile:
        sanitizer = load_profile(args.profile)
    else:
        sanitizer, reference = _fit_from_args(args, batch)
    report = sanitizer.scan(batch, path=args.batch)
    if args.json_report:
        _write_text(args.json_report, report.to_json(indent=2) + "\n")
    if args.html_report:
        page = report.to_html(
            title=f"Scan of {Path(args.batch).name}",
            batch=batch,
            reference=reference,
            sanitizer=sanitizer,
            source=str(args.batch),
            sha256=hashlib.sha256(Path(args.batch).read_bytes()).hexdigest(),
        )
        _write_text(args.html_report, page)
    if args.flagged_csv:
        _write_text(args.flagged_csv, report.flagged_csv())
    if not args.quiet:
        print(f"{args.batch}: {report.summary()}")
    return EXIT_PASS if report.verdict == "pass" else EXIT_QUARANTINE


def cmd_suite_init(args: argparse.Namespace) -> int:
    from sanitizer.contract import DataContract
    from sanitizer.expectations import generate_suite, suite_to_json
    from sanitizer.io import read_table

    config, reference_path = _resolve_config(args)
    reference = read_table(reference_path)
    contract = DataContract.from_reference(reference, config)
    margin = (
        args.range_margin if args.range_margin is not None else config.suite_generation.range_margin
    )
    if not (0.0 <= margin <= 10.0):
        raise ConfigError(f"--range-margin: {margin} must be between 0 and 10")
    suite = generate_suite(
        reference,
        contract,
        name=args.name or Path(args.out).stem,
        range_margin=margin,
        range_mostly=config.suite_generation.range_mostly,
    )
    _write_text(args.out, suite_to_json(suite))
    print(f"wrote {len(suite['expectations'])} expectations to {args.out}")
    return EXIT_PASS


def _write_text(path: str, text: str) -> None:
    """Write atomically (temp file + rename), creating parent folders."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, p)
    except OSError as exc:
        raise ConfigError(f"{p}: cannot write ({exc.strerror or exc})") from exc


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    raise SystemExit(main())
