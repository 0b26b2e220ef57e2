"""The real ``sanitizer`` command, run in subprocesses on real files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

BASE = ["--reference", "reference.csv", "--label-column", "label"]


def _config(d: Path) -> str:
    (d / "ds.toml").write_text(
        '[dataset]\nname = "demo"\nlabel_column = "label"\nid_columns = ["record_id"]\n'
        'reference = "reference.csv"\n'
    )
    return "ds.toml"


def test_clean_batch_exits_0_with_json_report(cli, data_dir: Path) -> None:
    cfg = _config(data_dir)
    res = cli(
        "scan",
        "clean.csv",
        "--config",
        cfg,
        "--json-report",
        "out/clean.json",
        "--html-report",
        "out/clean.html",
        cwd=data_dir,
    )
    assert res.returncode == 0, res.stderr
    assert "verdict: PASS" in res.stdout
    assert res.stderr == ""
    report = json.loads((data_dir / "out/clean.json").read_text())
    assert report["verdict"] == "pass" and report["rows"] == 400 and report["dataset"] == "demo"
    assert len(report["row_scores"]) == 400
    assert "<html" in (data_dir / "out/clean.html").read_text()


def test_parquet_batch_and_quiet(cli, data_dir: Path) -> None:
    cfg = _config(data_dir)
    res = cli("scan", "clean.parquet", "--config", cfg, "--quiet", cwd=data_dir)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "" and res.stderr == ""


def test_schema_violation_exits_3_naming_the_expectation(cli, data_dir: Path) -> None:
    cfg = _config(data_dir)
    res = cli(
        "scan", "schema_violation.csv", "--config", cfg, "--json-report", "bad.json", cwd=data_dir
    )
    assert res.returncode == 3, res.stderr
    assert "QUARANTINE" in res.stdout
    report = json.loads((data_dir / "bad.json").read_text())
    assert report["verdict"] == "quarantine"
    schema = report["checks"][0]
    assert schema["status"] == "fail"
    assert "expect_column_values_to_be_between(x0)" in schema["message"]
    assert "expect_column_values_to_be_in_set(region)" in schema["message"]
    assert {r["row"] for r in report["rows_flagged"]} == {5, 9}


def test_suite_init_then_scan_with_it(cli, data_dir: Path) -> None:
    res = cli("suite", "init", *BASE, "--out", "suites/demo.json", cwd=data_dir)
    assert res.returncode == 0, res.stderr
    suite = json.loads((data_dir / "suites/demo.json").read_text())
    assert suite["name"] == "demo"
    # The id column is a feature here (no config): it is in the suite too.
    assert any(e["kwargs"].get("column") == "record_id" for e in suite["expectations"])
    res = cli("scan", "clean.csv", *BASE, "--suite", "suites/demo.json", "--quiet", cwd=data_dir)
    assert res.returncode == 0, res.stderr


def _bad_inputs(d: Path, clean: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """name -> (file, expected fragment of the one-line error)."""
    cases: dict[str, tuple[str, str]] = {}

    def put(name: str, data: bytes | pd.DataFrame, fragment: str) -> None:
        path = d / name
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            data.to_csv(path, index=False)
        cases[name] = (name, fragment)

    header = ",".join(clean.columns).encode()
    put("empty.csv", b"", "file is empty")
    put("header_only.csv", header + b"\n", "header but no data rows")
    put("no_label.csv", clean.drop(columns=["label"]), "missing label column 'label'")
    put("missing_feature.csv", clean.drop(columns=["x3"]), "missing columns 'x3'")
    put("extra_feature.csv", clean.assign(surprise=1), "unexpected columns 'surprise'")
    put(
        "wrong_type.csv",
        clean.assign(x1=clean["x1"].astype(object).where(clean.index != 7, "twelve")),
        "'x1' must be numeric but holds 'twelve'",
    )
    put(
        "nan.csv",
        clean.assign(x2=clean["x2"].where(clean.index != 3)),
        "'x2' has missing values at rows 3",
    )
    put(
        "inf.csv",
        clean.assign(x2=clean["x2"].where(clean.index != 4, float("inf"))),
        "'x2' has infinite values at rows 4",
    )
    put(
        "dup_columns.csv",
        header + b",x0\n" + b"1," * len(clean.columns) + b"1\n",
        "duplicate column names: 'x0'",
    )
    put("latin1.csv", header + b"\n" + "caf\xe9".encode("latin-1") + b"\n", "not valid UTF-8")
    put("ragged.csv", header + b"\n1,2\n", "line 2 has 2 fields")
    put("truncated.parquet", b"PAR1\x15\x00garbage-without-footer", "not a readable Parquet file")
    put(
        "new_label.csv",
        clean.assign(label=clean["label"].where(clean.index != 0, 9)),
        "never seen in the reference: '9'",
    )
    (d / "a_directory.csv").mkdir(exist_ok=True)
    cases["a_directory.csv"] = ("a_directory.csv", "is a directory")
    cases["does_not_exist.csv"] = ("does_not_exist.csv", "file does not exist")
    return cases


def test_every_bad_input_exits_2_with_one_line(
    cli, data_dir: Path, clean_batch: pd.DataFrame
) -> None:
    bad_dir = data_dir / "bad"
    bad_dir.mkdir(exist_ok=True)
    (bad_dir / "reference.csv").write_bytes((data_dir / "reference.csv").read_bytes())
    cases = _bad_inputs(bad_dir, clean_batch)
    before = {p.name: p.read_bytes() for p in bad_dir.iterdir() if p.is_file()}
    failures = []
    for name, (file, fragment) in cases.items():
        res = cli(
            "scan",
            file,
            "--reference",
            "reference.csv",
            "--label-column",
            "label",
            "--json-report",
            f"{name}.json",
            cwd=bad_dir,
        )
        lines = res.stderr.strip().splitlines()
        ok = (
            res.returncode == 2
            and len(lines) == 1
            and fragment in lines[0]
            and file in lines[0]
            and "Traceback" not in res.stderr
            and not (bad_dir / f"{name}.json").exists()
        )
        if not ok:
            failures.append((name, res.returncode, res.stderr))
    assert not failures, failures
    after = {p.name: p.read_bytes() for p in bad_dir.iterdir() if p.is_file() and p.name in before}
    assert after == before  # nothing modified


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["scan", "clean.csv", "--label-column", "label"], "--reference is required"),
        (["scan", "clean.csv", "--reference", "reference.csv"], "--label-column is required"),
        (["scan", "clean.csv", *BASE, "--config", "missing.toml"], "config file does not exist"),
        (["scan", "clean.csv", *BASE, "--suite", "missing.json"], "suite file does not exist"),
        (
            ["scan", "clean.csv", "--reference", "reference.csv", "--label-column", "nope"],
            "reference has no label column 'nope'",
        ),
    ],
)
def test_usage_errors_exit_2(cli, data_dir: Path, args: list[str], fragment: str) -> None:
    res = cli(*args, cwd=data_dir)
    assert res.returncode == 2
    assert fragment in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_no_command_prints_help_and_exits_2(cli, data_dir: Path) -> None:
    res = cli(cwd=data_dir)
    assert res.returncode == 2 and "usage: sanitizer" in res.stderr
