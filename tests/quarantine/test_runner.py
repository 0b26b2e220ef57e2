"""A run end to end in-process: routing, bad files, hostile names, idempotent reruns,
re-uploads, files still being written, and operator decisions."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sanitizer.config import SanitizerConfig
from sanitizer.quarantine.errors import TransitionError
from sanitizer.quarantine.moves import Workspace
from sanitizer.quarantine.reconcile import reconcile
from sanitizer.quarantine.review import reject_batch, release_batch, show_batch
from sanitizer.quarantine.runner import run_dataset


def snapshot(env: Any) -> dict[str, Any]:
    """Every file under the root (bytes hash) and every ledger row and event."""
    files = {
        str(p.relative_to(env.root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(env.root.rglob("*"))
        if p.is_file() and not p.name.startswith("ledger.sqlite")
    }
    ws = _ws(env)
    try:
        rows = [b.to_dict() for b in ws.ledger.batches()]
        events = {b["id"]: [e.to_dict() for e in ws.ledger.events(b["id"])] for b in rows}
    finally:
        ws.close()
    return {"files": files, "batches": rows, "events": events}


def _run(env: Any, fitted: Any, **storage: Any) -> dict[str, Any]:
    config: SanitizerConfig = env.config
    if storage:
        assert config.storage is not None
        config = replace(config, storage=replace(config.storage, **storage))
    return run_dataset(config, sanitizer=fitted, worker="test-worker")


def _by_name(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["name"]: b for b in result["batches"]}


def _ws(env: Any) -> Workspace:
    assert env.config.storage is not None
    return Workspace.open(env.config.storage)


def test_run_routes_every_batch_and_keeps_bytes(env: Any, q_fitted: Any, q_parts: Any) -> None:
    _, b1, b2, b3 = q_parts
    b1.to_csv(env.landing / "clean.csv", index=False)
    bad = b2.copy()
    bad.loc[3, "x0"] = 1e6
    bad.to_csv(env.landing / "poisoned.csv", index=False)
    (env.landing / "garbage.csv").write_bytes(b"\xff\xfe\x00\x01not a table")
    (env.landing / "notes.txt").write_text("hello")
    b3.drop(columns=["x1"]).to_parquet(env.landing / "missing_column.parquet", index=False)
    originals = {p.name: p.read_bytes() for p in env.landing.iterdir()}

    result = _run(env, q_fitted)
    got = _by_name(result)
    assert {n: (b["outcome"], b["reason"]) for n, b in got.items()} == {
        "clean.csv": ("accepted", "passed"),
        "poisoned.csv": ("quarantined", "checks_failed"),
        "garbage.csv": ("quarantined", "unreadable"),
        "notes.txt": ("quarantined", "unreadable"),
        "missing_column.parquet": ("quarantined", "unreadable"),
    }
    assert result["counts"] == {"accepted": 1, "quarantined": 4}
    assert list(env.landing.iterdir()) == []
    assert got["poisoned.csv"]["failing_checks"] == ["schema"]

    for name, b in got.items():
        zone = "accepted" if b["outcome"] == "accepted" else "quarantine"
        folder = env.zone(zone) / b["batch_id"]
        manifest = json.loads((folder / "manifest.json").read_text())
        data = folder / manifest["data_file"]
        assert data.read_bytes() == originals[name]  # byte for byte
        assert manifest["sha256"] == hashlib.sha256(originals[name]).hexdigest()
        assert manifest["size"] == len(originals[name])
        assert manifest["original_name"] == name
        assert manifest["original_path"].endswith(f"landing/credit/{name}")
        assert manifest["verdict"] == ("pass" if zone == "accepted" else "quarantine")
        assert {"landed_at", "scanned_at", "verified_at", "failing_checks"} <= set(manifest)
        assert (folder / "report.json").exists() and (folder / "report.html").exists()
    # the InputError message is kept for operators
    manifest = json.loads(
        (
            env.zone("quarantine") / got["missing_column.parquet"]["batch_id"] / "manifest.json"
        ).read_text()
    )
    assert "x1" in manifest["message"]
    report = json.loads(
        (env.zone("quarantine") / got["garbage.csv"]["batch_id"] / "report.json").read_text()
    )
    assert report["verdict"] == "quarantine" and report["reason"] == "unreadable"

    ws = _ws(env)
    try:
        info = show_batch(ws, got["poisoned.csv"]["batch_id"])
        assert [(e["from_state"], e["to_state"]) for e in info["events"]] == [
            (None, "landed"),
            ("landed", "scanning"),
            ("scanning", "quarantined"),
        ]
        assert info["report"].endswith("report.html")
        assert info["manifest"]["failing_checks"] == ["schema"]
    finally:
        ws.close()


def test_rerun_and_reupload_change_nothing(env: Any, q_fitted: Any, q_parts: Any) -> None:
    b1 = q_parts[1]
    b1.to_csv(env.landing / "b1.csv", index=False)
    b1.to_csv(env.landing / "b1_copy_same_run.csv", index=False)
    first = _run(env, q_fitted)
    assert first["counts"] == {"accepted": 1}
    assert [d["action"] for d in first["duplicates"]] == [
        "removed from landing (identical content already stored)"
    ]
    before = snapshot(env)

    again = _run(env, q_fitted)
    assert again["batches"] == [] and again["duplicates"] == []
    assert snapshot(env) == before  # zones and ledger untouched

    # the same bytes re-uploaded under another name: recognised, not scanned again
    (env.landing / "renamed.csv").write_bytes(
        (env.zone("accepted") / first["batches"][0]["batch_id"] / "b1.csv").read_bytes()
    )
    third = _run(env, q_fitted)
    assert third["batches"] == []
    assert third["duplicates"][0]["batch_id"] == first["batches"][0]["batch_id"]
    assert not (env.landing / "renamed.csv").exists()
    ws = _ws(env)
    try:
        assert len(ws.ledger.batches()) == 1
        assert (
            "re-upload renamed.csv removed"
            in ws.ledger.events(first["batches"][0]["batch_id"])[-1].reason
        )
    finally:
        ws.close()


def test_too_large_and_unreadable_need_no_fit(env: Any, q_parts: Any) -> None:
    q_parts[1].to_csv(env.landing / "big.csv", index=False)
    (env.landing / "empty.csv").write_bytes(b"")
    # no sanitizer passed and a reference that does not exist: fitting would fail the run
    os.remove(env.base / "reference.csv")
    result = _run(env, None, max_file_bytes=100)
    got = _by_name(result)
    assert got["big.csv"]["reason"] == "too_large" and got["big.csv"]["outcome"] == "quarantined"
    assert got["empty.csv"]["reason"] == "unreadable"


def test_hostile_names_and_links_never_escape(env: Any, q_fitted: Any, tmp_path: Path) -> None:
    secret = tmp_path / "outside_secret.csv"
    secret.write_text("record_id,x0\n1,2\n")
    os.symlink(secret, env.landing / "link.csv")
    os.symlink(tmp_path, env.landing / "dir_link")
    (env.landing / "subdir").mkdir()
    hostile = ["esc\x1b[2Jname.csv", "nl\nname.csv", "L" * 230 + ".csv"]
    for i, name in enumerate(hostile):
        (env.landing / name).write_text(f"a,b\n1,{i}\n")

    result = _run(env, q_fitted)
    assert {b["reason"] for b in result["batches"]} == {"unsafe_name"}
    assert len(result["batches"]) == len(hostile)
    assert {s["reason"] for s in result["skipped"]} == {"symlink", "directory"}
    for b in result["batches"]:
        assert b["name"].isprintable()
        folder = env.zone("quarantine") / b["batch_id"]
        names = sorted(p.name for p in folder.iterdir())
        assert names == ["data.csv", "manifest.json", "report.html", "report.json"]
        assert (folder / "data.csv").read_text().startswith("a,b\n1,")
    # links are left alone, their targets are never copied or touched
    assert (env.landing / "link.csv").is_symlink() and secret.read_text().startswith("record_id")
    assert sorted(p.name for p in env.root.rglob("*") if p.is_file() and "outside" in p.name) == []
    # nothing was written outside the storage root
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "credit.toml",
        "outside_secret.csv",
        "reference.csv",
        "store",
    ]


def test_files_still_being_written_are_not_picked_up(env: Any, q_fitted: Any, q_parts: Any) -> None:
    q_parts[1].to_csv(env.landing / "fresh.csv", index=False)
    result = _run(env, q_fitted, settle_seconds=300)
    assert result["batches"] == []
    assert result["skipped"] == [{"name": "fresh.csv", "reason": "still_writing"}]
    old = time.time() - 600
    os.utime(env.landing / "fresh.csv", (old, old))
    assert _run(env, q_fitted, settle_seconds=300)["counts"] == {"accepted": 1}


def test_ready_marker_convention(env: Any, q_fitted: Any, q_parts: Any) -> None:
    q_parts[1].to_csv(env.landing / "b.csv", index=False)
    result = _run(env, q_fitted, ready_marker_suffix=".ready")
    assert result["skipped"] == [{"name": "b.csv", "reason": "not_ready"}]
    (env.landing / "b.csv.ready").write_text("")
    result = _run(env, q_fitted, ready_marker_suffix=".ready")
    assert result["counts"] == {"accepted": 1}
    assert list(env.landing.iterdir()) == []  # the marker went with the file


def test_release_and_reject_move_folders_and_record_decisions(
    env: Any, q_fitted: Any, q_parts: Any
) -> None:
    (env.landing / "one.csv").write_text("not,a\ntable")
    (env.landing / "two.csv").write_bytes(b"\x00\x01")
    q_parts[1].to_csv(env.landing / "ok.csv", index=False)
    got = _by_name(_run(env, q_fitted))
    one, two, ok = got["one.csv"]["batch_id"], got["two.csv"]["batch_id"], got["ok.csv"]["batch_id"]
    ws = _ws(env)
    try:
        with pytest.raises(TransitionError, match="actor"):
            release_batch(ws, one, actor="", reason="fine")
        with pytest.raises(TransitionError, match="reason"):
            reject_batch(ws, one, actor="alice", reason="  ")
        with pytest.raises(TransitionError, match="only quarantined batches"):
            release_batch(ws, ok, actor="alice", reason="already accepted")

        released = release_batch(ws, one, actor="alice", reason="checked by hand")
        assert released["state"] == "released" and released["changed"]
        assert not (env.zone("quarantine") / one).exists()
        manifest = json.loads((env.zone("accepted") / one / "manifest.json").read_text())
        assert manifest["decision"]["actor"] == "alice"
        assert manifest["state"] == "released"
        assert (env.zone("accepted") / one / "report.html").exists()

        rejected = reject_batch(ws, two, actor="bob", reason="corrupt upload")
        assert rejected["state"] == "rejected"
        assert (env.zone("rejected") / two / "two.csv").read_bytes() == b"\x00\x01"

        # retries change nothing; the opposite decision is refused
        before = snapshot(env)
        assert release_batch(ws, one, actor="alice", reason="again")["changed"] is False
        assert reject_batch(ws, two, actor="bob", reason="again")["changed"] is False
        assert snapshot(env) == before
        with pytest.raises(TransitionError, match="cannot go from rejected to released"):
            release_batch(ws, two, actor="alice", reason="changed my mind")
        last = ws.ledger.events(one)[-1]
        assert (last.from_state, last.to_state, last.actor, last.reason) == (
            "quarantined",
            "released",
            "alice",
            "checked by hand",
        )
    finally:
        ws.close()


def test_a_frame_written_through_parquet_scans_the_same(
    env: Any, q_fitted: Any, q_parts: Any
) -> None:
    frame: pd.DataFrame = q_parts[2]
    frame.to_parquet(env.landing / "b.parquet", index=False)
    assert _run(env, q_fitted)["counts"] == {"accepted": 1}


def test_remote_root_through_fsspec(tmp_path: Path, q_fitted: Any, q_parts: Any) -> None:
    """A non-local fsspec root (``memory://``, standing in for s3/gcs): files are read
    through fsspec into a temporary copy and parsed by the same reader."""
    import uuid

    import fsspec

    from sanitizer.config import StorageConfig

    root = f"memory://sanitizer-{uuid.uuid4().hex[:8]}"
    fs = fsspec.filesystem("memory")
    fs.pipe_file(f"{root}/landing/credit/clean.csv", q_parts[1].to_csv(index=False).encode())
    fs.pipe_file(f"{root}/landing/credit/bad.csv", b"\x00\x01")
    storage = StorageConfig(
        root=root, ledger_url=f"sqlite:///{tmp_path / 'ledger.sqlite'}", settle_seconds=0
    )
    config = replace(q_fitted.config, storage=storage)
    result = run_dataset(config, sanitizer=q_fitted, worker="remote")
    got = _by_name(result)
    assert got["clean.csv"]["outcome"] == "accepted"
    assert got["bad.csv"]["reason"] == "unreadable"
    assert got["clean.csv"]["path"].startswith("memory://")
    assert not fs.exists(f"{root}/landing/credit/clean.csv")
    assert (
        fs.cat_file(f"{root}/quarantine/credit/{got['bad.csv']['batch_id']}/bad.csv") == b"\x00\x01"
    )
    ws = Workspace.open(storage)
    try:
        assert release_batch(ws, got["bad.csv"]["batch_id"], actor="a", reason="r")["changed"]
        assert reconcile(ws, stale_after=0)["in_agreement"]
    finally:
        ws.close()
        fs.rm(root.removeprefix("memory://"), recursive=True)


def test_a_file_removed_after_discovery_does_not_stop_the_run(env: Any, q_fitted: Any) -> None:
    from sanitizer.quarantine.runner import discover, process_batch

    (env.landing / "gone.csv").write_bytes(b"\x00 one")
    (env.landing / "stays.csv").write_bytes(b"\x00 two")
    ws = _ws(env)
    try:
        found = discover(ws, env.config)
        (env.landing / "gone.csv").unlink()
        results = {
            r["name"]: r
            for r in (process_batch(ws, env.config, i, worker="w") for i in found["pending"])
        }
        assert results["gone.csv"]["outcome"] == "skipped"
        assert results["stays.csv"]["outcome"] == "quarantined"
        assert ws.ledger.get(results["gone.csv"]["batch_id"]).claimed_at is None
        problems = reconcile(ws, stale_after=0)["problems"]
        assert [p["batch_id"] for p in problems] == [results["gone.csv"]["batch_id"]]
    finally:
        ws.close()


def test_a_scan_that_raises_is_quarantined_as_scan_error(env: Any, q_parts: Any) -> None:
    class Exploding:
        def scan(self, frame: pd.DataFrame, *, path: str | None = None) -> Any:
            raise RuntimeError("check blew up")

    q_parts[1].to_csv(env.landing / "a.csv", index=False)
    q_parts[2].to_csv(env.landing / "b.csv", index=False)
    result = run_dataset(env.config, sanitizer=Exploding(), worker="w")  # type: ignore[arg-type]
    assert {b["reason"] for b in result["batches"]} == {"scan_error"}
    assert result["counts"] == {"quarantined": 2}  # the first failure did not stop the run
    manifest = json.loads(
        (env.zone("quarantine") / result["batches"][0]["batch_id"] / "manifest.json").read_text()
    )
    assert manifest["message"] == "RuntimeError: check blew up"


def test_a_retried_task_routes_the_batch_its_dead_try_had_claimed(
    env: Any, q_fitted: Any, q_parts: Any
) -> None:
    """A worker died after claiming (and half-copying) a batch; the scheduler retried the
    task elsewhere. With the default hour-long claim timeout the retry used to find the
    batch claimed and leave it ``scanning``; as the same task it takes the claim over."""
    from sanitizer.quarantine.runner import discover, process_batch

    q_parts[1].to_csv(env.landing / "clean.csv", index=False)
    task = "airflow-task:5eed:"
    ws = _ws(env)
    try:
        (batch_id,) = discover(ws, env.config)["pending"]
        assert ws.ledger.claim(batch_id, worker=task + "try1:dead:1", stale_after=3600)
        stray = env.zone("quarantine") / batch_id
        stray.mkdir(parents=True)
        (stray / "clean.csv").write_bytes(b"half a copy")  # the dead try got this far
        other = process_batch(ws, env.config, batch_id, sanitizer=q_fitted, worker="another")
        assert other["outcome"] == "skipped"  # a different task still waits for the claim
        retry = process_batch(
            ws,
            env.config,
            batch_id,
            sanitizer=q_fitted,
            worker=task + "try2:alive:2",
            take_over_prefix=task,
        )
        assert retry["outcome"] == "accepted"
        assert ws.ledger.get(batch_id).state == "accepted"
        assert not stray.exists() and not (env.landing / "clean.csv").exists()
        assert (env.zone("accepted") / batch_id / "clean.csv").read_bytes() == (
            q_parts[1].to_csv(index=False).encode()
        )
        assert [e.to_state for e in ws.ledger.events(batch_id)] == [
            "landed", "scanning", "scanning", "accepted",
        ]  # fmt: skip
    finally:
        ws.close()
