"""The quarantine commands through a real ``sanitizer`` subprocess."""

from __future__ import annotations

import json
from typing import Any


def test_run_list_show_release_reject_reconcile(env: Any, q_parts: Any) -> None:
    cfg = str(env.config_path)
    q_parts[1].to_csv(env.landing / "clean.csv", index=False)
    (env.landing / "garbage.csv").write_bytes(b"\xff\xfe\x00garbage")
    (env.landing / "broken.csv").write_text("a,b\n1,2,3\n")

    run = env.cli("run", "--config", cfg)
    assert run.returncode == 0, run.stderr  # quarantined batches do not fail the run
    lines = run.stdout.splitlines()
    assert lines[0].split() == [
        "dataset",
        "batch",
        "file",
        "outcome",
        "reason",
        "failing",
        "checks",
    ]
    outcome = {line.split()[2]: line.split()[3:5] for line in lines[1:-1]}
    assert outcome == {
        "clean.csv": ["accepted", "passed"],
        "garbage.csv": ["quarantined", "unreadable"],
        "broken.csv": ["quarantined", "unreadable"],
    }
    assert lines[-1] == "run complete: 1 accepted, 2 quarantined"

    again = env.cli("run", "--config", cfg, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["datasets"][0]["batches"] == []  # idempotent rerun

    listed = env.cli("quarantine", "list", "--config", cfg, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["original_name"]: r for r in json.loads(listed.stdout)}
    assert set(rows) == {"garbage.csv", "broken.csv"}
    garbage, broken = rows["garbage.csv"]["id"], rows["broken.csv"]["id"]
    every = env.cli("quarantine", "list", "--root", "store", "--state", "all")
    assert every.returncode == 0 and "clean.csv" in every.stdout and "accepted" in every.stdout

    shown = env.cli("quarantine", "show", garbage, "--config", cfg, "--json")
    info = json.loads(shown.stdout)
    assert info["manifest"]["reason"] == "unreadable"
    assert info["report"].endswith(f"quarantine/credit/{garbage}/report.html")
    assert [e["to_state"] for e in info["events"]] == ["landed", "scanning", "quarantined"]
    human = env.cli("quarantine", "show", broken[:6], "--config", cfg)
    assert human.returncode == 0 and "malformed CSV" in human.stdout and "history:" in human.stdout

    missing = env.cli("quarantine", "release", garbage, "--config", cfg, "--actor", "alice")
    assert missing.returncode == 2 and "--reason" in missing.stderr
    blank = env.cli(
        "quarantine", "reject", garbage, "--config", cfg, "--actor", "", "--reason", "x"
    )
    assert blank.returncode == 2 and blank.stderr.startswith("sanitizer: error:")

    rel = env.cli("quarantine", "release", garbage, "--config", cfg, "--actor", "alice",
                  "--reason", "known encoding issue")  # fmt: skip
    assert rel.returncode == 0, rel.stderr
    assert (env.zone("accepted") / garbage / "garbage.csv").exists()
    rej = env.cli("quarantine", "reject", broken, "--config", cfg, "--actor", "bob",
                  "--reason", "corrupt")  # fmt: skip
    assert rej.returncode == 0, rej.stderr
    assert (env.zone("rejected") / broken / "broken.csv").read_text() == "a,b\n1,2,3\n"
    refused = env.cli("quarantine", "release", broken, "--config", cfg, "--actor", "alice",
                      "--reason", "oops")  # fmt: skip
    assert refused.returncode == 2
    assert "cannot go from rejected to released" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

    rec = env.cli("reconcile", "--config", cfg)
    assert rec.returncode == 0, rec.stderr
    assert "ledger and zones agree" in rec.stdout


def test_run_failures_are_one_line_and_exit_2(env: Any) -> None:
    (env.landing / "x.csv").write_text("record_id,label\n1,0\n")
    (env.base / "reference.csv").unlink()  # the run cannot fit: the run itself failed
    failed = env.cli("run", "--config", str(env.config_path))
    assert failed.returncode == 2
    assert "reference.csv" in failed.stderr and "Traceback" not in failed.stderr
    # the claim was given back: the batch is still waiting, its file still in landing
    assert (env.landing / "x.csv").exists()

    no_config = env.cli("run", "--config", str(env.base / "missing.toml"))
    assert no_config.returncode == 2 and "does not exist" in no_config.stderr
    no_root = env.cli("quarantine", "list", env={"SANITIZER_STORAGE_ROOT": ""})
    assert no_root.returncode == 2 and "--root" in no_root.stderr
