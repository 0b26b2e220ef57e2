"""Parse time of the DAG files, as the DAG processor pays it on every parse loop.

    .venv/bin/python benchmarks/dag_parse.py [--datasets 1,10] [--repeats 7]

For each DAG file and number of dataset configs, a fresh interpreter (Airflow
already imported, as in a DAG processor) times ``DagBag`` parsing that one file;
the table shows the median over the repeats and whether any heavy module
(pandas, scikit-learn, Great Expectations, SciPy, PyArrow) got imported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

DAGS = Path(__file__).resolve().parents[1] / "dags"
CHILD = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
import airflow.sdk, airflow.providers.standard.operators.hitl  # paid once per processor
t = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
elapsed = time.perf_counter() - t
heavy = [m for m in ("pandas", "sklearn", "great_expectations", "scipy", "pyarrow") if m in sys.modules]
print(json.dumps({"seconds": elapsed, "dags": len(bag.dag_ids), "errors": len(bag.import_errors), "heavy": heavy}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="1,10")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print("| DAG file | dataset configs | DAGs | median parse ms | heavy imports |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        for n in (int(x) for x in args.datasets.split(",")):
            configs = Path(tmp) / f"configs{n}"
            configs.mkdir()
            for i in range(n):
                (configs / f"ds{i}.toml").write_text(
                    f'[dataset]\nname = "ds{i}"\nlabel_column = "label"\n'
                )
            env = {**os.environ, "AIRFLOW_HOME": str(home), "SANITIZER_CONFIG_DIR": str(configs),
                   "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}  # fmt: skip
            for dag_file in sorted(DAGS.glob("*.py")):
                runs = []
                for _ in range(args.repeats):
                    res = subprocess.run([sys.executable, "-c", CHILD, str(dag_file)], env=env,
                                         capture_output=True, text=True, check=True)  # fmt: skip
                    runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
                ms = statistics.median(r["seconds"] for r in runs) * 1000
                heavy = ", ".join(runs[-1]["heavy"]) or "none"
                print(
                    f"| {dag_file.name} | {n} | {runs[-1]['dags']} | {ms:.0f} | {heavy} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
