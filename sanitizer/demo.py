"""`make demo`: an embedded Airflow (SQLite) sanitizing sample batches end to end.

Everything is generated at run time under ``demo-output/`` (or the folder given
as the first argument): a trusted reference, a holdout, and eight batches landing
for the dataset ``demo`` — two clean ones and six that are poisoned or broken in
the ways the sanitizer exists to catch. The real DAGs then run through
``dag.test()`` on a fresh Airflow metadata DB:

1. ``sanitize_demo`` discovers, scans (mapped) and routes every batch, alerts,
   and emits one ``sanitizer_accepted_demo`` Asset event per accepted batch;
2. an operator rejects one quarantined batch with the CLI (as from an alert);
3. ``retrain_demo`` trains on the reference plus the accepted batches only.

Airflow's own logs go to ``demo-output/airflow.log``; this prints what happened
and where the reports are.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from sanitizer import attacks
from sanitizer.samples import make_dataset, split

REPO_DAGS = Path(__file__).resolve().parents[1] / "dags"

CONFIG = """\
[dataset]
name = "demo"
label_column = "label"
id_columns = ["record_id"]
reference = "reference.csv"

[storage]
root = "{root}"
settle_seconds = 0

[airflow]
schedule = "@hourly"
review = false      # in production: a Release/Reject task per quarantined batch
retries = 0

[training]
holdout = "holdout.csv"
"""

EXPECTED = {
    "clean_monday.csv": "accepted",
    "clean_tuesday.parquet": "accepted",
    "label_flips.csv": "quarantined",
    "truth_serum_replicas.csv": "quarantined",
    "backdoor_trigger.csv": "quarantined",
    "in_range_outliers.csv": "quarantined",
    "schema_violation.csv": "quarantined",
    "malformed.csv": "quarantined",
}


def write_batches(out: Path) -> Path:
    population = make_dataset(10_000, seed=42)
    reference, holdout, *batches = split(population, [5000, 1000] + [500] * 6, seed=42)
    configs, landing = out / "configs", out / "storage" / "landing" / "demo"
    configs.mkdir(parents=True)
    landing.mkdir(parents=True)
    reference.to_csv(configs / "reference.csv", index=False)
    holdout.to_csv(configs / "holdout.csv", index=False)
    (configs / "demo.toml").write_text(CONFIG.format(root=out / "storage"))
    a, b, c, d, e, f = batches
    a.to_csv(landing / "clean_monday.csv", index=False)
    b.to_parquet(landing / "clean_tuesday.parquet", index=False)
    attacks.flip_labels_random(c, "label", 1, rate=0.10)[0].to_csv(
        landing / "label_flips.csv", index=False
    )
    attacks.truth_serum_replicas(d, "label", 2, reference=reference, rate=0.02)[0].to_csv(
        landing / "truth_serum_replicas.csv", index=False
    )
    attacks.backdoor_trigger(e, "label", 3, reference=reference, rate=0.02)[0].to_csv(
        landing / "backdoor_trigger.csv", index=False
    )
    attacks.in_range_outliers(f, "label", 4, reference=reference, rate=0.03)[0].to_csv(
        landing / "in_range_outliers.csv", index=False
    )
    broken = a.sample(300, random_state=5).copy()
    broken["record_id"] += 100_000
    broken.loc[broken.index[:2], "x1"] = 250.0  # far outside anything the reference has seen
    broken.loc[broken.index[2], "region"] = "atlantis"  # a category the reference never had
    broken.to_csv(landing / "schema_violation.csv", index=False)
    (landing / "malformed.csv").write_text("record_id,x0,label\n1,0.5,1\n2,0.7\n")
    return configs / "demo.toml"


def _env(out: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(out / "airflow-home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_DAGS),
        "SANITIZER_CONFIG_DIR": str(out / "configs"),
        "GX_ANALYTICS_ENABLED": "false",
    }


def _run(cmd: list[str], out: Path, log: Any) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(cmd, env=_env(out), capture_output=True, text=True, check=False)
    log.write(f"$ {' '.join(cmd)}\n{res.stdout}\n{res.stderr}\n")
    log.flush()
    return res


def _dag(dag_id: str, out: Path, log: Any) -> dict[str, Any]:
    res = _run([sys.executable, "-m", "sanitizer.airflow.dagtest", dag_id], out, log)
    lines = [line for line in res.stdout.splitlines() if line.startswith('{"import_errors"')]
    if res.returncode != 0 or not lines:
        raise SystemExit(f"demo: {dag_id} did not run; see {out / 'airflow.log'}")
    return dict(json.loads(lines[-1]))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else "demo-output").resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    config = write_batches(out)
    print(f"Sample data in {out}: a 5000-row trusted reference and {len(EXPECTED)} landed batches.")
    with (out / "airflow.log").open("w") as log:
        print("Preparing an embedded Airflow (SQLite metadata DB) ...", flush=True)
        res = _run([sys.executable, "-m", "airflow", "db", "migrate"], out, log)
        if res.returncode != 0:
            raise SystemExit(f"demo: airflow db migrate failed; see {out / 'airflow.log'}")
        print("Running DAG sanitize_demo (discover → scan ×8 → route → alert) ...", flush=True)
        run = _dag("sanitize_demo", out, log)
        states = _ledger_summary(config)
        _print_batches(states)
        events = run["events"]
        print(f"\nAsset events on sanitizer_accepted_demo: {len(events)}")
        for event in events:
            extra = event["extra"]
            print(f"  batch {extra['batch_id']}  {extra['name']:<24} {extra['rows']} rows")

        replicas = states["truth_serum_replicas.csv"]
        print("\nAn operator rejects the Truth Serum batch after reading its report:")
        cmd = ["quarantine", "reject", replicas["id"], "--actor", "demo-operator",
               "--reason", "mislabeled replicas of reference records", "--config", str(config)]  # fmt: skip
        print(f"$ sanitizer {' '.join(cmd[:5])} --reason '...' --config {config.name}")
        decided = _run([sys.executable, "-m", "sanitizer.cli", *cmd], out, log)
        print((decided.stdout or decided.stderr).strip())

        print("\nRunning DAG retrain_demo (scheduled on the accepted Asset) ...", flush=True)
        retrain = _dag("retrain_demo", out, log)
    model_dir = out / "storage" / "models" / "demo"
    current = (
        (model_dir / "CURRENT").read_text().strip() if (model_dir / "CURRENT").exists() else None
    )
    if current:
        meta = json.loads((model_dir / current / "model.json").read_text())
        print(
            f"Model {current} promoted: balanced accuracy {meta['metrics']['balanced_accuracy']:.3f} "
            f"on the trusted holdout; trained on the reference + {len(meta['batch_ids'])} accepted "
            f"batches {meta['batch_ids']}"
        )
    print(f"\nReports:   {out / 'storage' / 'quarantine' / 'demo'}/<batch>/report.html")
    print(f"Zones:     {out / 'storage'}/{{landing,accepted,quarantine,rejected}}/demo")
    print(
        f"Ledger:    {out / 'storage' / 'ledger.sqlite'}  (sanitizer quarantine list --config {config})"
    )
    print(f"Airflow:   {out / 'airflow-home'}  (logs: {out / 'airflow.log'})")
    got = {name: s["state"] for name, s in states.items()}
    ok = got == EXPECTED and run["state"] == "success" and retrain["state"] == "success" and current
    if not ok:
        print(
            f"demo: unexpected outcome {got}, runs {run['state']}/{retrain['state']}",
            file=sys.stderr,
        )
        return 1
    print(
        "\nAll poisoned and broken batches were quarantined; both clean batches reached training."
    )
    return 0


def _ledger_summary(config: Path) -> dict[str, dict[str, Any]]:
    from sanitizer.config import load_config
    from sanitizer.quarantine.review import list_batches
    from sanitizer.quarantine.runner import open_workspace

    ws = open_workspace(load_config(config))
    try:
        return {b["original_name"]: b for b in list_batches(ws, dataset="demo")}
    finally:
        ws.close()


def _print_batches(states: dict[str, dict[str, Any]]) -> None:
    print(f"\n{'batch':<26} {'outcome':<12} why")
    for name in EXPECTED:
        s = states.get(name, {"state": "missing", "failing_checks": [], "reason": ""})
        why = (
            ", ".join(s.get("failing_checks") or [])
            if s["state"] != "accepted"
            else "all checks passed"
        )
        if s.get("reason") not in (None, "checks_failed", "passed"):
            message = str(s.get("message") or "").rsplit(f"{name}: ", 1)[-1]
            why = f"{s['reason']}: {message[:70]}"
        print(f"{name:<26} {s['state']:<12} {why}")


if __name__ == "__main__":
    raise SystemExit(main())
