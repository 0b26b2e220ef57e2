"""CLI commands of the quarantine store (``run``, ``quarantine ...``, ``reconcile``).

A thin layer over :mod:`sanitizer.quarantine.runner`, :mod:`.review` and
:mod:`.reconcile`. Exit codes follow ``sanitizer.cli``: 0 done (a run that
quarantined batches still completed), 2 bad input or usage, 1 internal error;
``reconcile`` exits 3 when problems remain that need a human.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sanitizer.errors import ConfigError, SanitizerError

if TYPE_CHECKING:
    from sanitizer.config import StorageConfig
    from sanitizer.quarantine.moves import Workspace

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_ATTENTION = 3
ENV_ROOT = "SANITIZER_STORAGE_ROOT"
ENV_LEDGER = "SANITIZER_LEDGER_URL"


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register the quarantine store's subcommands on the ``sanitizer`` parser."""
    run = sub.add_parser(
        "run",
        help="discover, scan and route new batches of the landing zone",
        description="Discover new files in landing/<dataset>/, claim, scan and route each to "
        "accepted/ or quarantine/. Exit 0 when the run completed, even if batches were "
        "quarantined.",
    )
    run.add_argument(
        "--config",
        metavar="FILE",
        action="append",
        required=True,
        help="dataset config (TOML) with a [storage] table; repeat for several datasets",
    )
    run.add_argument("--worker", help="worker name in the ledger (default: host:pid:random)")
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    run.set_defaults(handler=cmd_run)

    quarantine = sub.add_parser("quarantine", help="list, show, release or reject batches")
    qsub = quarantine.add_subparsers(title="quarantine commands", metavar="COMMAND")
    quarantine.set_defaults(handler=None)

    lst = qsub.add_parser("list", help="list batches (default: those in quarantine)")
    _add_storage_args(lst)
    lst.add_argument("--dataset", help="only this dataset")
    lst.add_argument(
        "--state",
        default="quarantined",
        help="landed, scanning, accepted, quarantined, released, rejected or all "
        "(default: quarantined)",
    )
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.set_defaults(handler=cmd_list)

    show = qsub.add_parser("show", help="manifest, failing checks, report and history")
    _add_storage_args(show)
    show.add_argument("batch", metavar="BATCH", help="batch id (or a unique prefix)")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=cmd_show)

    for name, verb in (("release", "move to accepted/"), ("reject", "move to rejected/ (kept)")):
        p = qsub.add_parser(name, help=f"{name} a quarantined batch: {verb}")
        _add_storage_args(p)
        p.add_argument("batch", metavar="BATCH", help="batch id (or a unique prefix)")
        p.add_argument("--actor", required=True, help="who decides (recorded in the ledger)")
        p.add_argument("--reason", required=True, help="why (recorded in the ledger)")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(handler=cmd_decide, decision=name)

    rec = sub.add_parser(
        "reconcile",
        help="bring the ledger and the zones back into agreement after a crash",
        description="Finish or undo interrupted moves. Exit 0 when ledger and zones agree, "
        "3 when problems remain that need a human.",
    )
    _add_storage_args(rec, repeat_config=True)
    rec.add_argument(
        "--stale-after",
        type=float,
        metavar="SECONDS",
        help="treat scan claims older than this as crashed (default: "
        "storage.claim_timeout_seconds; 0 only when no run is in progress)",
    )
    rec.add_argument("--json", action="store_true", help="print JSON")
    rec.set_defaults(handler=cmd_reconcile)


def _add_storage_args(p: argparse.ArgumentParser, *, repeat_config: bool = False) -> None:
    p.add_argument(
        "--config",
        metavar="FILE",
        action="append" if repeat_config else "store",
        help="dataset config (TOML) whose [storage] table names the root and ledger",
    )
    p.add_argument("--root", help=f"storage root (path or fsspec URL; or ${ENV_ROOT})")
    p.add_argument("--ledger-url", help=f"SQLAlchemy URL of the ledger (or ${ENV_LEDGER})")


# -- handlers ---------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from sanitizer.config import load_config
    from sanitizer.quarantine.runner import run_dataset

    configs = [load_config(path) for path in args.config]  # all valid before any work
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    for config in configs:
        try:
            results.append(run_dataset(config, worker=args.worker))
        except SanitizerError as exc:
            failures.append(f"dataset {config.dataset}: {exc}")
    if args.json:
        print(json.dumps({"datasets": results, "failures": failures}, indent=2))
    else:
        print(_run_table(results))
    for failure in failures:
        print(f"sanitizer: error: {' '.join(failure.split())}", file=sys.stderr)
    return EXIT_BAD_INPUT if failures else EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from sanitizer.quarantine.review import list_batches

    state = None if args.state == "all" else args.state
    with _workspace(args) as ws:
        rows = list_batches(ws, dataset=args.dataset, state=state)
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    header = ("batch", "dataset", "state", "reason", "failing checks", "file", "updated")
    table = [
        (
            r["id"],
            r["dataset"],
            r["state"],
            r["reason"] or "",
            ",".join(r["failing_checks"]),
            _clip(r["original_name"]),
            r["updated_at"] or "",
        )
        for r in rows
    ]
    print(_table(header, table) if table else f"no batches ({args.state})")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from sanitizer.quarantine.review import show_batch

    with _workspace(args) as ws:
        info = show_batch(ws, args.batch)
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    b = info["batch"]
    lines = [
        f"batch     {b['id']}  ({b['dataset']})",
        f"file      {b['original_name']}  ({b['size']} bytes, sha256 {b['sha256']})",
        f"state     {b['state']}",
        f"verdict   {b['verdict'] or '-'}  reason {b['reason'] or '-'}",
        f"failing   {', '.join(info['failing_checks']) or '-'}",
        f"message   {' '.join((b['message'] or '-').split())}",
        f"data      {b['path']}",
        f"report    {info['report'] or '-'}",
        "history:",
    ]
    for e in info["events"]:
        lines.append(
            f"  {e['at']}  {e['from_state'] or '-':>11} -> {e['to_state']:<11} "
            f"by {e['actor']}: {e['reason']}"
        )
    print("\n".join(lines))
    return EXIT_OK


def cmd_decide(args: argparse.Namespace) -> int:
    from sanitizer.quarantine.review import decide

    with _workspace(args) as ws:
        result = decide(ws, args.batch, args.decision, actor=args.actor, reason=args.reason)
    if args.json:
        print(json.dumps(result, indent=2))
    elif result["changed"]:
        print(f"batch {result['batch_id']}: {result['state']} -> {result['path']}")
    else:
        print(f"batch {result['batch_id']}: already {result['state']}; nothing changed")
    return EXIT_OK


def cmd_reconcile(args: argparse.Namespace) -> int:
    from sanitizer.config import load_config
    from sanitizer.quarantine.moves import Workspace
    from sanitizer.quarantine.reconcile import reconcile

    if args.stale_after is not None and args.stale_after < 0:
        raise ConfigError("--stale-after: must be >= 0")
    groups: dict[tuple[str, str], tuple[StorageConfig, list[str]]] = {}
    if args.config:
        for path in args.config:
            config = load_config(path)
            storage = _require_storage(config.storage, path)
            key = (storage.root, storage.effective_ledger_url)
            groups.setdefault(key, (storage, []))[1].append(config.dataset)
    else:
        storage = _storage_from_args(args)
        groups[(storage.root, storage.effective_ledger_url)] = (storage, [])
    results = []
    for storage, datasets in groups.values():
        ws = Workspace.open(storage)
        try:
            results.append(reconcile(ws, datasets=datasets or None, stale_after=args.stale_after))
        finally:
            ws.close()
    problems = [p for r in results for p in r["problems"]]
    if args.json:
        print(json.dumps({"results": results, "in_agreement": not problems}, indent=2))
    else:
        checked = sum(r["checked"] for r in results)
        for r in results:
            for a in r["actions"]:
                print(f"{a['batch_id']}: {a['action']}")
            for p in r["problems"]:
                print(f"{p['batch_id']}: PROBLEM: {p['problem']}")
        status = "ledger and zones agree" if not problems else f"{len(problems)} problem(s) left"
        print(f"reconciled {checked} batches: {status}")
    return EXIT_ATTENTION if problems else EXIT_OK


# -- helpers ----------------------------------------------------------------------


class _workspace:
    """``with _workspace(args) as ws``: open from --config/--root/env, close after."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ws: Workspace | None = None

    def __enter__(self) -> Workspace:
        from sanitizer.quarantine.moves import Workspace

        self.ws = Workspace.open(_storage_from_args(self.args))
        return self.ws

    def __exit__(self, *exc: object) -> None:
        if self.ws is not None:
            self.ws.close()


def _storage_from_args(args: argparse.Namespace) -> StorageConfig:
    from sanitizer.config import StorageConfig, load_config

    config_arg = args.config[0] if isinstance(args.config, list) else args.config
    if config_arg:
        storage = _require_storage(load_config(config_arg).storage, config_arg)
        if args.root or args.ledger_url:
            raise ConfigError("give either --config or --root/--ledger-url, not both")
        return storage
    root = args.root or os.environ.get(ENV_ROOT)
    ledger_url = args.ledger_url or os.environ.get(ENV_LEDGER) or None
    if not root:
        raise ConfigError(f"--config FILE or --root ROOT (or ${ENV_ROOT}) is required")
    if "://" not in root:
        root = os.path.abspath(root)
    return StorageConfig(root=root, ledger_url=ledger_url)


def _require_storage(storage: StorageConfig | None, path: str) -> StorageConfig:
    if storage is None:
        raise ConfigError(f"{path}: no [storage] table (storage.root is needed here)")
    return storage


def _run_table(results: Sequence[dict[str, Any]]) -> str:
    header = ("dataset", "batch", "file", "outcome", "reason", "failing checks")
    rows: list[tuple[str, ...]] = []
    for r in results:
        for b in r["batches"]:
            rows.append(
                (
                    r["dataset"],
                    b["batch_id"],
                    _clip(b["name"]),
                    b["outcome"],
                    b["reason"],
                    ",".join(b.get("failing_checks", [])),
                )
            )
        for d in r["duplicates"]:
            rows.append(
                (r["dataset"], d["batch_id"], _clip(d["name"]), "duplicate", d["action"], "")
            )
        for s in r["skipped"]:
            rows.append((r["dataset"], "-", _clip(s["name"]), "not picked up", s["reason"], ""))
    totals: dict[str, int] = {}
    for r in results:
        for k, v in r["counts"].items():
            totals[k] = totals.get(k, 0) + v
    total_line = ", ".join(f"{v} {k}" for k, v in sorted(totals.items())) or "no new batches"
    body = _table(header, rows) + "\n" if rows else ""
    return f"{body}run complete: {total_line}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
             for row in (header, *rows)]  # fmt: skip
    return "\n".join(lines)


def _clip(name: str, width: int = 40) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"
