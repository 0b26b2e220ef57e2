"""The DAGs through a real embedded Airflow (SQLite metadata DB) with ``dag.test()``.

Each scenario runs in a subprocess (tests/dags/run_dag.py) against one migrated
AIRFLOW_HOME, with its own config folder, storage root and SMTP server on loopback.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import pandas as pd
import pytest

from sanitizer.samples import make_dataset, split

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("airflow_home")
    res = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=_env(home, home / "no-configs"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return home


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Mailbox]]:
    from aiosmtpd.controller import Controller

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, box
    finally:
        controller.stop()


def _env(home: Path, configs: Path, smtp_port: int | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "SANITIZER_CONFIG_DIR": str(configs),
        "GX_ANALYTICS_ENABLED": "false",
    }
    if smtp_port:
        env["AIRFLOW_CONN_SMTP_DEFAULT"] = json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": smtp_port,
                "extra": {
                    "disable_tls": True,
                    "disable_ssl": True,
                    "from_email": "sanitizer@example.com",
                },
            }
        )
    return env


def _dataset(
    tmp: Path, name: str, *, review: bool, extra: str = ""
) -> tuple[Path, Path, list[pd.DataFrame]]:
    configs, root = tmp / "configs", tmp / "storage"
    landing = root / "landing" / name
    landing.mkdir(parents=True)
    configs.mkdir()
    ref, clean, bad, spare = split(make_dataset(3200, seed=9), [2000, 400, 400, 400], seed=9)
    ref.to_csv(configs / "reference.csv", index=False)
    (configs / f"{name}.toml").write_text(
        f'[dataset]\nname = "{name}"\nlabel_column = "label"\nid_columns = ["record_id"]\n'
        'reference = "reference.csv"\n\n'
        f'[storage]\nroot = "{root}"\nsettle_seconds = 0\n\n'
        f"[airflow]\nreview = {str(review).lower()}\nretries = 0\n\n"
        '[alerts]\nemail_to = ["ops@example.com"]\n' + extra
    )
    return configs, root, [clean, bad, spare]


def _run(
    home: Path, configs: Path, dag_id: str, port: int | None, respond: str | None = None
) -> dict:
    cmd = [sys.executable, "-m", "sanitizer.airflow.dagtest", dag_id] + (
        ["--respond", respond] if respond else []
    )
    res = subprocess.run(
        cmd, env=_env(home, configs, port), capture_output=True, text=True, timeout=900
    )
    lines = [line for line in res.stdout.splitlines() if line.startswith('{"import_errors"')]
    assert res.returncode == 0 and lines, res.stderr[-4000:]
    out = json.loads(lines[-1])
    assert out["import_errors"] == {}
    return out


def _python(home: Path, configs: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter against this Airflow home and config folder."""
    return subprocess.run(
        [sys.executable, "-c", code],
        env=_env(home, configs),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _ledger(root: Path) -> dict[str, tuple[str, str]]:
    with sqlite3.connect(root / "ledger.sqlite") as conn:
        rows = conn.execute("SELECT original_name, id, state FROM sanitizer_batches").fetchall()
    return {name: (batch_id, state) for name, batch_id, state in rows}


def _actors(root: Path, batch_id: str) -> list[tuple[str, str, str]]:
    with sqlite3.connect(root / "ledger.sqlite") as conn:
        return conn.execute(
            "SELECT to_state, actor, reason FROM sanitizer_events WHERE batch_id = ? ORDER BY id",
            (batch_id,),
        ).fetchall()


def test_dag_files_parse_without_heavy_imports(airflow_home: Path, tmp_path: Path) -> None:
    configs, _, _ = _dataset(tmp_path, "parse", review=True)
    code = (
        "import sys, time; t = time.time();"
        "from airflow.dag_processing.dagbag import DagBag; from airflow import settings;"
        "bag = DagBag(dag_folder=settings.DAGS_FOLDER);"
        "heavy = [m for m in ('pandas', 'sklearn', 'great_expectations', 'scipy', 'pyarrow') if m in sys.modules];"
        "import json; print(json.dumps({'dags': sorted(bag.dag_ids), 'errors': list(bag.import_errors), 'heavy': heavy}))"
    )
    res = _python(airflow_home, configs, code)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out == {"dags": ["retrain_parse", "sanitize_parse"], "errors": [], "heavy": []}


def test_broken_config_does_not_hide_other_datasets(airflow_home: Path, tmp_path: Path) -> None:
    configs, _, _ = _dataset(tmp_path, "good", review=False)
    (configs / "broken.toml").write_text("[dataset\nname=")
    (configs / "evil.toml").write_text('[dataset]\nname = "../../etc"\nlabel_column = "y"\n')
    code = (
        "from airflow.dag_processing.dagbag import DagBag; from airflow import settings;"
        "bag = DagBag(dag_folder=settings.DAGS_FOLDER); print(sorted(bag.dag_ids), len(bag.import_errors))"
    )
    res = _python(airflow_home, configs, code)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == "['retrain_good', 'sanitize_good'] 0"
    logs = res.stdout + res.stderr  # Airflow's logging may write to either
    assert "skipping" in logs and "broken.toml" in logs and "evil.toml" in logs


def test_sanitize_routes_alerts_and_feeds_retraining(
    airflow_home: Path, tmp_path: Path, smtp
) -> None:  # type: ignore[no-untyped-def]
    port, box = smtp
    configs, root, (clean, bad, _) = _dataset(tmp_path, "credit", review=False)
    landing = root / "landing" / "credit"
    clean.to_csv(landing / "clean.csv", index=False)
    bad = bad.copy()
    bad.loc[[4, 8], "x1"] = 1e6
    bad.to_csv(landing / "schema_violation.csv", index=False)
    (landing / "malformed.csv").write_text("record_id,x0,label\n1,0.5\n")

    out = _run(airflow_home, configs, "sanitize_credit", port)
    assert out["state"] == "success", out
    ledger = _ledger(root)
    assert {n: s for n, (_, s) in ledger.items()} == {
        "clean.csv": "accepted",
        "schema_violation.csv": "quarantined",
        "malformed.csv": "quarantined",
    }
    assert list((root / "landing" / "credit").iterdir()) == []
    clean_id = ledger["clean.csv"][0]
    assert (root / "accepted" / "credit" / clean_id / "clean.csv").exists()
    bad_id = ledger["schema_violation.csv"][0]
    assert {p.name for p in (root / "quarantine" / "credit" / bad_id).iterdir()} == {
        "schema_violation.csv", "report.json", "report.html", "manifest.json",
    }  # fmt: skip
    assert out["events"] == [
        {
            "asset": "sanitizer_accepted_credit",
            "extra": {
                "dataset": "credit",
                "batch_id": clean_id,
                "name": "clean.csv",
                "rows": 400,
                "via": "scan",
            },
            "task": "publish_accepted",
        }
    ]
    # one mail per quarantined batch, saying what failed and how to decide
    subjects = sorted(str(m["Subject"]) for m in box.messages)
    assert len(subjects) == 2 and all("credit" in s and "quarantined" in s for s in subjects)
    mail = next(m for m in box.messages if "schema_violation.csv" in str(m["Subject"]))
    text = _body(mail)
    assert "expect_column_values_to_be_between(x1)" in text
    assert f"sanitizer quarantine release {bad_id}" in text
    assert mail["To"] == "ops@example.com"

    # a rerun with nothing new changes nothing and emits nothing
    again = _run(airflow_home, configs, "sanitize_credit", port)
    assert again["state"] == "success" and again["events"] == []
    assert _ledger(root) == ledger

    trained = _run(airflow_home, configs, "retrain_credit", port)
    assert trained["state"] == "success", trained
    meta = json.loads((root / "models" / "credit" / "v0001" / "model.json").read_text())
    assert meta["batch_ids"] == [clean_id] and meta["promoted"] is True
    assert bad_id not in meta["batch_ids"] and ledger["malformed.csv"][0] not in meta["batch_ids"]
    assert (root / "models" / "credit" / "CURRENT").read_text().strip() == "v0001"


@pytest.mark.parametrize(
    ("option", "state", "zone", "events"),
    [
        ("Release", "released", "accepted", ["publish_released"]),
        ("Reject", "rejected", "rejected", []),
    ],
)
def test_review_decision_records_the_reviewer(  # type: ignore[no-untyped-def]
    airflow_home: Path, tmp_path: Path, smtp, option: str, state: str, zone: str, events: list[str]
) -> None:
    port, box = smtp
    name = f"reviewed_{option.lower()}"
    configs, root, (_, bad, _) = _dataset(tmp_path, name, review=True)
    bad = bad.copy()
    bad.loc[3, "x0"] = 1e6
    bad.to_csv(root / "landing" / name / "odd.csv", index=False)
    out = _run(
        airflow_home, configs, f"sanitize_{name}", port, respond=f"{option}:alice:checked by hand"
    )
    assert out["state"] == "success", out
    assert out["tasks"]["review[0]"] == "success"  # the review task waited for the answer
    assert len(box.messages) == 1  # the alert went out before the decision
    batch_id, got = _ledger(root)["odd.csv"]
    assert got == state
    assert (root / zone / name / batch_id / "odd.csv").exists()
    assert not (root / "quarantine" / name / batch_id).exists()
    assert _actors(root, batch_id)[-1] == (state, "alice", "checked by hand")
    assert [e["task"] for e in out["events"]] == events
    for event in out["events"]:
        assert event["extra"]["batch_id"] == batch_id and event["extra"]["via"] == "review"


def test_failed_run_alerts(airflow_home: Path, tmp_path: Path, smtp) -> None:  # type: ignore[no-untyped-def]
    port, box = smtp
    configs, root, (clean, _, _) = _dataset(tmp_path, "broken", review=False)
    clean.to_csv(root / "landing" / "broken" / "clean.csv", index=False)
    (configs / "reference.csv").unlink()  # the run cannot fit: it must fail loudly
    out = _run(airflow_home, configs, "sanitize_broken", port)
    assert out["state"] == "failed"
    assert any("run failed" in str(m["Subject"]) for m in box.messages), [
        m["Subject"] for m in box.messages
    ]
    assert (root / "landing" / "broken" / "clean.csv").exists()  # nothing lost


def _body(message: Message) -> str:
    parts = message.walk() if message.is_multipart() else [message]
    return "".join(
        p.get_payload(decode=True).decode("utf-8", "replace")  # type: ignore[union-attr]
        for p in parts
        if p.get_content_maintype() == "text"
    )
