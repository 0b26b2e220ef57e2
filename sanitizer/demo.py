"""`make demo`: the sanitizer CLI on sample data generated at run time.

Writes everything under ``demo-output/`` (or the folder given as the first
argument) and runs the real ``sanitizer`` command on it, printing what happened
and where the reports are.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from sanitizer.samples import make_dataset, split

CONFIG = """\
[dataset]
name = "demo"
label_column = "label"
id_columns = ["record_id"]
reference = "reference.csv"
suite = "expectations/demo.json"
"""


def _sanitizer(*args: str, cwd: Path) -> int:
    cmd = [sys.executable, "-m", "sanitizer.cli", *args]
    print(f"\n$ sanitizer {' '.join(args)}", flush=True)
    rc = subprocess.run(cmd, cwd=cwd, check=False).returncode
    print(f"(exit code {rc})", flush=True)
    return rc


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else "demo-output").resolve()
    if out.exists():
        shutil.rmtree(out)
    (out / "batches").mkdir(parents=True)
    population = make_dataset(6000, seed=42)
    reference, clean, broken = split(population, [4000, 500, 500], seed=42)
    reference.to_csv(out / "reference.csv", index=False)
    clean.to_csv(out / "batches" / "clean.csv", index=False)
    broken = broken.copy()
    broken.loc[[12, 40], "x1"] = 250.0  # far outside anything the reference has seen
    broken.loc[77, "region"] = "atlantis"  # a category the reference never had
    broken.to_csv(out / "batches" / "schema_violation.csv", index=False)
    (out / "batches" / "malformed.csv").write_text("record_id,x0,label\n1,0.5,1\n2,0.7\n")
    (out / "demo.toml").write_text(CONFIG)
    print(f"Sample data written to {out}: a 4000-row trusted reference and three batches.")

    expected = {"suite": 0, "clean.csv": 0, "schema_violation.csv": 3, "malformed.csv": 2}
    got = {
        "suite": _sanitizer(
            "suite", "init", "--config", "demo.toml", "--out", "expectations/demo.json", cwd=out
        )
    }
    for name in ("clean.csv", "schema_violation.csv", "malformed.csv"):
        stem = Path(name).stem
        got[name] = _sanitizer(
            "scan", f"batches/{name}", "--config", "demo.toml",
            "--json-report", f"reports/{stem}.json", "--html-report", f"reports/{stem}.html",
            cwd=out,
        )  # fmt: skip
    print("\nSummary")
    for name, rc in got.items():
        meaning = {0: "pass", 2: "refused (bad input)", 3: "QUARANTINE"}.get(rc, f"exit {rc}")
        print(f"  {name:<22} {meaning}")
    print(f"\nReports: {out / 'reports'}   suite: {out / 'expectations' / 'demo.json'}")
    if got != expected:
        print(f"demo: unexpected exit codes {got}, expected {expected}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
